/*
 * Sum over one contiguous run of axes, on the wasm heap: x is viewed as
 * [outer, reduce, inner] and out[o, i] = sum over r of x[o, r, i], added in
 * ascending r with float32 accumulation starting from 0. That is the exact
 * order of tfjs-backend-wasm's Sum after its transpose (reduced axes moved
 * innermost, in their order), so the bytes are the same as stock wasm's;
 * it only skips the transpose and streams rows (vectorised across i, which
 * never reorders one output's additions). Knows nothing of tensors.
 */
#include <string.h>

#include "args.h"
#include "fastmath.h"
#include "kernels.h"

/* dst[i] += row[i]: one float add per element, so every build of the loop gives the same bytes. */
WB_CLONES __attribute__((noinline)) static void add_row(float *restrict dst, const float *restrict row, int64_t n) {
  for (int64_t i = 0; i < n; i++) dst[i] += row[i];
}

napi_value wb_sum_axis(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!wb_heap_args(env, info, "sumAxis", argv)) return NULL;
  wb_heap heap;
  if (!wb_get_heap(env, argv[0], &heap)) return NULL;
  int64_t x_off, o_off, outer, reduce, inner;
  if (!wb_get_int(env, argv[1], "xOffset", 0, INT64_MAX, &x_off) ||
      !wb_get_int(env, argv[1], "outOffset", 0, INT64_MAX, &o_off) ||
      !wb_get_int(env, argv[1], "outer", 0, INT32_MAX, &outer) ||
      !wb_get_int(env, argv[1], "reduce", 0, INT32_MAX, &reduce) ||
      !wb_get_int(env, argv[1], "inner", 0, INT32_MAX, &inner))
    return NULL;
  uint64_t o_count, x_count;
  if (!wb_mul(env, "outer x inner", (uint64_t)outer, (uint64_t)inner, &o_count) ||
      !wb_mul(env, "outer x reduce x inner", o_count, (uint64_t)reduce, &x_count))
    return NULL;
  wb_region rx, ro;
  if (!wb_check_region(env, &heap, "xOffset", x_off, x_count, &rx) ||
      !wb_check_region(env, &heap, "outOffset", o_off, o_count, &ro) ||
      !wb_check_disjoint(env, &ro, &rx))
    return NULL;
  const float *x = (const float *)(heap.data + x_off);
  float *out = (float *)(heap.data + o_off);
  for (int64_t o = 0; o < outer; o++) {
    const float *xo = x + o * reduce * inner;
    float *dst = out + o * inner;
    if (inner == 1) {
      float s = 0.0f;
      for (int64_t r = 0; r < reduce; r++) s += xo[r];
      dst[0] = s;
      continue;
    }
    for (int64_t i = 0; i < inner; i++) dst[i] = 0.0f;
    for (int64_t r = 0; r < reduce; r++) add_row(dst, xo + r * inner, inner);
  }
  return NULL;
}
