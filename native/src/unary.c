/*
 * Elementwise float32 functions on the wasm heap, in place: exp and erf, which
 * tfjs-backend-wasm 4.22 computes at ~10 and ~90 ns per element (the exact GELU
 * and the softmax-free parts of training hit them on every step); libm's expf
 * and erff here. Input and output may be the same region (elementwise).
 * Knows nothing of tensors or the tfjs engine.
 */
#include <math.h>

#include "args.h"
#include "kernels.h"

enum { WB_EXP = 0, WB_ERF = 1 };

napi_value wb_unary(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!wb_heap_args(env, info, "unary", argv)) return NULL;
  wb_heap heap;
  if (!wb_get_heap(env, argv[0], &heap)) return NULL;
  int64_t op, x_off, o_off, size;
  if (!wb_get_int(env, argv[1], "op", WB_EXP, WB_ERF, &op) ||
      !wb_get_int(env, argv[1], "xOffset", 0, INT64_MAX, &x_off) ||
      !wb_get_int(env, argv[1], "outOffset", 0, INT64_MAX, &o_off) ||
      !wb_get_int(env, argv[1], "size", 0, INT64_MAX, &size))
    return NULL;
  wb_region rx, ro;
  if (!wb_check_region(env, &heap, "xOffset", x_off, (uint64_t)size, &rx) ||
      !wb_check_region(env, &heap, "outOffset", o_off, (uint64_t)size, &ro))
    return NULL;
  const float *x = (const float *)(heap.data + x_off);
  float *out = (float *)(heap.data + o_off);
  if (op == WB_EXP) {
    for (int64_t i = 0; i < size; i++) out[i] = expf(x[i]);
  } else {
    for (int64_t i = 0; i < size; i++) out[i] = erff(x[i]);
  }
  return NULL;
}
