/*
 * Attention's scaled, masked softmax on the wasm heap, forward and backward,
 * one pass per row instead of tfjs's mul, add, softmax (and five kernels
 * backward). x is [outer, inner, n] float32 (outer = batch; inner = heads x
 * queries), mask is [outer, n] (additive: 0 or -10000), per row:
 *   forward:  z = x * scale + mask, y = exp(z - max z) / sum exp(z - max z)
 *   backward: dx = scale * y * (dy - sum(dy * y))
 * exp is fastmath.h's polynomial; row sums run in double over four fixed
 * lanes added in a fixed order. With -ffp-contract=off (binding.gyp) the bytes
 * are the same on every machine and vector width. Knows nothing of tensors.
 */
#include "args.h"
#include "fastmath.h"
#include "kernels.h"

static inline double lane_sum4(const double a[4]) { return (a[0] + a[1]) + (a[2] + a[3]); }

WB_CLONES static void softmax_fwd(int64_t outer, int64_t inner, int64_t n, float scale, const float *restrict x,
                                  const float *restrict mask, float *restrict y) {
  for (int64_t o = 0; o < outer; o++) {
    const float *mo = mask + o * n;
    for (int64_t r = 0; r < inner; r++) {
      const float *xr = x + (o * inner + r) * n;
      float *yr = y + (o * inner + r) * n;
      float m = xr[0] * scale + mo[0];
      for (int64_t j = 0; j < n; j++) {
        const float z = xr[j] * scale + mo[j];
        yr[j] = z;
        m = z > m ? z : m;
      }
      for (int64_t j = 0; j < n; j++) yr[j] = wb_exp_nonpos(yr[j] - m);
      double acc[4] = {0, 0, 0, 0};
      int64_t j = 0;
      for (; j + 4 <= n; j += 4)
        for (int l = 0; l < 4; l++) acc[l] += (double)yr[j + l];
      for (; j < n; j++) acc[0] += (double)yr[j];
      const float s = (float)lane_sum4(acc);
      for (j = 0; j < n; j++) yr[j] = yr[j] / s;
    }
  }
}

WB_CLONES static void softmax_bwd(int64_t rows, int64_t n, float scale, const float *restrict y,
                                  const float *restrict dy, float *restrict dx) {
  for (int64_t r = 0; r < rows; r++) {
    const float *yr = y + r * n;
    const float *dr = dy + r * n;
    float *xr = dx + r * n;
    double acc[4] = {0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 4 <= n; j += 4)
      for (int l = 0; l < 4; l++) acc[l] += (double)dr[j + l] * (double)yr[j + l];
    for (; j < n; j++) acc[0] += (double)dr[j] * (double)yr[j];
    const float s = (float)lane_sum4(acc);
    for (j = 0; j < n; j++) xr[j] = scale * (yr[j] * (dr[j] - s));
  }
}

/*
 * maskedSoftmax(heap, {outer, inner, n, scale, xOffset, maskOffset, outOffset})
 * maskedSoftmax(heap, {outer, inner, n, scale, yOffset, dyOffset, outOffset}): the backward pass.
 */
napi_value wb_masked_softmax(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!wb_heap_args(env, info, "maskedSoftmax", argv)) return NULL;
  napi_value spec = argv[1];
  wb_heap heap;
  int64_t outer, inner, n, o_off;
  double scale;
  bool backward = false;
  if (!wb_get_heap(env, argv[0], &heap) || !wb_get_int(env, spec, "outer", 0, INT32_MAX, &outer) ||
      !wb_get_int(env, spec, "inner", 0, INT32_MAX, &inner) ||
      !wb_get_int(env, spec, "n", 1, INT32_MAX, &n) ||
      !wb_get_double_opt(env, spec, "scale", 1.0, &scale) ||
      !wb_get_int(env, spec, "outOffset", 0, INT64_MAX, &o_off) || !wb_has(env, spec, "dyOffset", &backward))
    return NULL;
  uint64_t rows, size, mask_size;
  if (!wb_mul(env, "outer x inner", (uint64_t)outer, (uint64_t)inner, &rows) ||
      !wb_mul(env, "rows x n", rows, (uint64_t)n, &size) ||
      !wb_mul(env, "outer x n", (uint64_t)outer, (uint64_t)n, &mask_size))
    return NULL;
  wb_region ro;
  if (!wb_check_region(env, &heap, "outOffset", o_off, size, &ro)) return NULL;
  float *out = (float *)(heap.data + o_off);
  if (!backward) {
    int64_t x_off, m_off;
    wb_region rx, rm;
    if (!wb_get_int(env, spec, "xOffset", 0, INT64_MAX, &x_off) ||
        !wb_get_int(env, spec, "maskOffset", 0, INT64_MAX, &m_off) ||
        !wb_check_region(env, &heap, "xOffset", x_off, size, &rx) ||
        !wb_check_region(env, &heap, "maskOffset", m_off, mask_size, &rm) ||
        !wb_check_disjoint(env, &ro, &rx) || !wb_check_disjoint(env, &ro, &rm))
      return NULL;
    softmax_fwd(outer, inner, n, (float)scale, (const float *)(heap.data + x_off),
                (const float *)(heap.data + m_off), out);
    return NULL;
  }
  int64_t y_off, d_off;
  wb_region ry, rd;
  if (!wb_get_int(env, spec, "yOffset", 0, INT64_MAX, &y_off) ||
      !wb_get_int(env, spec, "dyOffset", 0, INT64_MAX, &d_off) ||
      !wb_check_region(env, &heap, "yOffset", y_off, size, &ry) ||
      !wb_check_region(env, &heap, "dyOffset", d_off, size, &rd) ||
      !wb_check_disjoint(env, &ro, &ry) || !wb_check_disjoint(env, &ro, &rd))
    return NULL;
  softmax_bwd((int64_t)rows, n, (float)scale, (const float *)(heap.data + y_off),
              (const float *)(heap.data + d_off), out);
  return NULL;
}
