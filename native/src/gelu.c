/*
 * The exact (erf) GELU on the wasm heap, one pass instead of tfjs's five
 * (mul, mul, erf, add, mul), that also writes the derivative the backward
 * pass multiplies dy by (so erf is evaluated once per element, not twice):
 *   y    = 0.5 x (1 + erf(x / sqrt 2))
 *   dydx = 0.5 (1 + erf(x / sqrt 2)) + x exp(-x^2 / 2) / sqrt(2 pi)
 * with fastmath.h's erf and exp, so the loop vectorises and the bytes are the
 * same on every machine. Knows nothing of tensors.
 */
#include "args.h"
#include "fastmath.h"
#include "kernels.h"

WB_CLONES static void gelu_fwd(int64_t n, const float *x, float *y, float *dydx) {
  for (int64_t i = 0; i < n; i++) {
    const float v = x[i];
    const float e = 1.0f + wb_erf(v * 0.70710678118654752f);
    y[i] = 0.5f * v * e;
    const float pdf = wb_exp_nonpos(-0.5f * v * v) * 0.39894228040143268f;
    dydx[i] = 0.5f * e + v * pdf;
  }
}

/* gelu(heap, {size, xOffset, outOffset, derivOffset}) */
napi_value wb_gelu(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!wb_heap_args(env, info, "gelu", argv)) return NULL;
  wb_heap heap;
  int64_t size, x_off, o_off, d_off;
  if (!wb_get_heap(env, argv[0], &heap) || !wb_get_int(env, argv[1], "size", 0, INT64_MAX, &size) ||
      !wb_get_int(env, argv[1], "xOffset", 0, INT64_MAX, &x_off) ||
      !wb_get_int(env, argv[1], "outOffset", 0, INT64_MAX, &o_off) ||
      !wb_get_int(env, argv[1], "derivOffset", 0, INT64_MAX, &d_off))
    return NULL;
  wb_region rx, ro, rd;
  if (!wb_check_region(env, &heap, "xOffset", x_off, (uint64_t)size, &rx) ||
      !wb_check_region(env, &heap, "outOffset", o_off, (uint64_t)size, &ro) ||
      !wb_check_region(env, &heap, "derivOffset", d_off, (uint64_t)size, &rd) ||
      !wb_check_disjoint(env, &ro, &rd) || !wb_check_disjoint(env, &rd, &rx))
    return NULL;
  gelu_fwd(size, (const float *)(heap.data + x_off), (float *)(heap.data + o_off), (float *)(heap.data + d_off));
  return NULL;
}
