/*
 * LayerNorm over the last axis on the wasm heap, forward and backward, one
 * pass over each row instead of tfjs's mean/sub/square/mean/add/rsqrt/mul/mul/add
 * (and a dozen kernels backward). x is [rows, width] float32.
 *   forward:  mean = sum(x) / w, var = sum((x - mean)^2) / w, rstd = 1 / sqrt(var + eps),
 *             y = (x - mean) * rstd * gamma + beta; also writes mean and rstd per row.
 *   backward: xhat = (x - mean) * rstd, g = dy * gamma,
 *             dx = rstd * (g - sum(g) / w - xhat * sum(g * xhat) / w),
 *             dgamma = sum over rows of dy * xhat, dbeta = sum over rows of dy.
 * Row sums run in double over four fixed lanes (j mod 4) added in a fixed
 * order; the column sums add rows in ascending order. With -ffp-contract=off
 * (binding.gyp) the bytes are the same on every machine and vector width.
 * Knows nothing of tensors.
 */
#include <math.h>

#include "args.h"
#include "fastmath.h"
#include "kernels.h"

static inline double lane_sum(const double acc[4]) { return (acc[0] + acc[1]) + (acc[2] + acc[3]); }

WB_CLONES static void ln_fwd(int64_t rows, int64_t w, const float *restrict x, const float *restrict gamma,
                             const float *restrict beta, double eps, float *restrict y, float *restrict mean_out,
                             float *restrict rstd_out) {
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * w;
    float *yr = y + r * w;
    double acc[4] = {0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 4 <= w; j += 4)
      for (int l = 0; l < 4; l++) acc[l] += (double)xr[j + l];
    for (; j < w; j++) acc[0] += (double)xr[j];
    const float mean = (float)(lane_sum(acc) / (double)w);
    double sq[4] = {0, 0, 0, 0};
    for (j = 0; j + 4 <= w; j += 4)
      for (int l = 0; l < 4; l++) {
        const double d = (double)(xr[j + l] - mean);
        sq[l] += d * d;
      }
    for (; j < w; j++) {
      const double d = (double)(xr[j] - mean);
      sq[0] += d * d;
    }
    const float rstd = (float)(1.0 / sqrt(lane_sum(sq) / (double)w + eps));
    for (j = 0; j < w; j++) yr[j] = (xr[j] - mean) * rstd * gamma[j] + beta[j];
    mean_out[r] = mean;
    rstd_out[r] = rstd;
  }
}

WB_CLONES static void ln_bwd(int64_t rows, int64_t w, const float *restrict x, const float *restrict gamma,
                             const float *restrict mean, const float *restrict rstd, const float *restrict dy,
                             float *restrict dx, float *restrict dgamma, float *restrict dbeta) {
  for (int64_t j = 0; j < w; j++) dgamma[j] = 0.0f, dbeta[j] = 0.0f;
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * w;
    const float *dyr = dy + r * w;
    float *dxr = dx + r * w;
    const float m = mean[r], s = rstd[r];
    double a1[4] = {0, 0, 0, 0}, a2[4] = {0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 4 <= w; j += 4)
      for (int l = 0; l < 4; l++) {
        const float xhat = (xr[j + l] - m) * s;
        const float g = dyr[j + l] * gamma[j + l];
        a1[l] += (double)g;
        a2[l] += (double)g * (double)xhat;
      }
    for (; j < w; j++) {
      const float xhat = (xr[j] - m) * s;
      const float g = dyr[j] * gamma[j];
      a1[0] += (double)g;
      a2[0] += (double)g * (double)xhat;
    }
    const float mg = (float)(lane_sum(a1) / (double)w);
    const float mgx = (float)(lane_sum(a2) / (double)w);
    for (j = 0; j < w; j++) {
      const float xhat = (xr[j] - m) * s;
      dxr[j] = s * (dyr[j] * gamma[j] - mg - xhat * mgx);
      dgamma[j] += dyr[j] * xhat;
      dbeta[j] += dyr[j];
    }
  }
}

/*
 * layerNorm(heap, {rows, width, eps, xOffset, gammaOffset, betaOffset, outOffset, meanOffset, rstdOffset})
 * layerNorm(heap, {rows, width, xOffset, gammaOffset, meanOffset, rstdOffset, dyOffset, outOffset,
 *                  dgammaOffset, dbetaOffset}): with dyOffset, the backward pass.
 */
napi_value wb_layer_norm(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!wb_heap_args(env, info, "layerNorm", argv)) return NULL;
  napi_value spec = argv[1];
  wb_heap heap;
  int64_t rows, w, x_off, g_off, m_off, s_off, o_off;
  bool backward = false;
  if (!wb_get_heap(env, argv[0], &heap) || !wb_get_int(env, spec, "rows", 0, INT32_MAX, &rows) ||
      !wb_get_int(env, spec, "width", 1, INT32_MAX, &w) ||
      !wb_get_int(env, spec, "xOffset", 0, INT64_MAX, &x_off) ||
      !wb_get_int(env, spec, "gammaOffset", 0, INT64_MAX, &g_off) ||
      !wb_get_int(env, spec, "meanOffset", 0, INT64_MAX, &m_off) ||
      !wb_get_int(env, spec, "rstdOffset", 0, INT64_MAX, &s_off) ||
      !wb_get_int(env, spec, "outOffset", 0, INT64_MAX, &o_off) ||
      !wb_has(env, spec, "dyOffset", &backward))
    return NULL;
  uint64_t size;
  if (!wb_mul(env, "rows x width", (uint64_t)rows, (uint64_t)w, &size)) return NULL;
  wb_region rx, rg, rm, rs, ro;
  if (!wb_check_region(env, &heap, "xOffset", x_off, size, &rx) ||
      !wb_check_region(env, &heap, "gammaOffset", g_off, (uint64_t)w, &rg) ||
      !wb_check_region(env, &heap, "meanOffset", m_off, (uint64_t)rows, &rm) ||
      !wb_check_region(env, &heap, "rstdOffset", s_off, (uint64_t)rows, &rs) ||
      !wb_check_region(env, &heap, "outOffset", o_off, size, &ro) ||
      !wb_check_disjoint(env, &ro, &rx) || !wb_check_disjoint(env, &ro, &rg))
    return NULL;
  const float *x = (const float *)(heap.data + x_off);
  const float *gamma = (const float *)(heap.data + g_off);
  float *out = (float *)(heap.data + o_off);
  if (!backward) {
    int64_t b_off;
    double eps;
    wb_region rb;
    if (!wb_get_int(env, spec, "betaOffset", 0, INT64_MAX, &b_off) ||
        !wb_get_double_opt(env, spec, "eps", 1e-12, &eps) ||
        !wb_check_region(env, &heap, "betaOffset", b_off, (uint64_t)w, &rb) ||
        !wb_check_disjoint(env, &ro, &rb) || !wb_check_disjoint(env, &rm, &rx) ||
        !wb_check_disjoint(env, &rs, &rx) || !wb_check_disjoint(env, &rm, &rs) ||
        !wb_check_disjoint(env, &ro, &rm) || !wb_check_disjoint(env, &ro, &rs))
      return NULL;
    ln_fwd(rows, w, x, gamma, (const float *)(heap.data + b_off), eps, out, (float *)(heap.data + m_off),
           (float *)(heap.data + s_off));
    return NULL;
  }
  int64_t d_off, dg_off, db_off;
  wb_region rd, rdg, rdb;
  if (!wb_get_int(env, spec, "dyOffset", 0, INT64_MAX, &d_off) ||
      !wb_get_int(env, spec, "dgammaOffset", 0, INT64_MAX, &dg_off) ||
      !wb_get_int(env, spec, "dbetaOffset", 0, INT64_MAX, &db_off) ||
      !wb_check_region(env, &heap, "dyOffset", d_off, size, &rd) ||
      !wb_check_region(env, &heap, "dgammaOffset", dg_off, (uint64_t)w, &rdg) ||
      !wb_check_region(env, &heap, "dbetaOffset", db_off, (uint64_t)w, &rdb) ||
      !wb_check_disjoint(env, &ro, &rd) || !wb_check_disjoint(env, &ro, &rm) ||
      !wb_check_disjoint(env, &ro, &rs) || !wb_check_disjoint(env, &rdg, &rdb) ||
      !wb_check_disjoint(env, &rdg, &rd) || !wb_check_disjoint(env, &rdb, &rd) ||
      !wb_check_disjoint(env, &rdg, &rx) || !wb_check_disjoint(env, &rdb, &rx) ||
      !wb_check_disjoint(env, &rdg, &ro) || !wb_check_disjoint(env, &rdb, &ro) ||
      !wb_check_disjoint(env, &rdg, &rg) || !wb_check_disjoint(env, &rdb, &rg) ||
      !wb_check_disjoint(env, &rdg, &rm) || !wb_check_disjoint(env, &rdb, &rm) ||
      !wb_check_disjoint(env, &rdg, &rs) || !wb_check_disjoint(env, &rdb, &rs))
    return NULL;
  ln_bwd(rows, w, x, gamma, (const float *)(heap.data + m_off), (const float *)(heap.data + s_off),
         (const float *)(heap.data + d_off), out, (float *)(heap.data + dg_off),
         (float *)(heap.data + db_off));
  return NULL;
}
