/*
 * Dropout keep masks on the wasm heap, the same bytes as dropoutMask() in
 * shared/model/dropout.ts: element i is `scale` when
 * fmix32(seed + i * 0x9e3779b9) >= threshold, else 0 (all uint32 arithmetic,
 * as the JS Math.imul / >>> 0 code). `scale` arrives as the float32 the JS
 * Float32Array store would hold. With xOffset, writes x * mask instead (the
 * same bytes as multiplying by the mask tensor). Knows nothing of tensors.
 */
#include "args.h"
#include "fastmath.h"
#include "kernels.h"

static inline uint32_t mix32(uint32_t h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

/* Integer hashing only (the bytes do not depend on the clone); AVX2 gives 8-lane pmulld. */
WB_CLONES static void mask_fill(int64_t size, uint32_t s, uint32_t t, float keep, float *out) {
  for (int64_t i = 0; i < size; i++) out[i] = mix32(s + (uint32_t)i * 0x9e3779b9u) >= t ? keep : 0.0f;
}

WB_CLONES static void mask_apply(int64_t size, uint32_t s, uint32_t t, float keep, const float *x, float *out) {
  for (int64_t i = 0; i < size; i++) out[i] = x[i] * (mix32(s + (uint32_t)i * 0x9e3779b9u) >= t ? keep : 0.0f);
}

napi_value wb_dropout_mask(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!wb_heap_args(env, info, "dropoutMask", argv)) return NULL;
  wb_heap heap;
  if (!wb_get_heap(env, argv[0], &heap)) return NULL;
  int64_t o_off, size, seed, threshold;
  double scale;
  if (!wb_get_int(env, argv[1], "outOffset", 0, INT64_MAX, &o_off) ||
      !wb_get_int(env, argv[1], "size", 0, UINT32_MAX, &size) ||
      !wb_get_int(env, argv[1], "seed", 0, UINT32_MAX, &seed) ||
      !wb_get_int(env, argv[1], "threshold", 0, UINT32_MAX, &threshold) ||
      !wb_get_double_opt(env, argv[1], "scale", 1.0, &scale))
    return NULL;
  bool apply = false;
  int64_t x_off = 0;
  if (!wb_has(env, argv[1], "xOffset", &apply) ||
      !wb_get_int_opt(env, argv[1], "xOffset", 0, INT64_MAX, 0, &x_off))
    return NULL;
  wb_region ro, rx;
  if (!wb_check_region(env, &heap, "outOffset", o_off, (uint64_t)size, &ro) ||
      !wb_check_region(env, &heap, "xOffset", x_off, apply ? (uint64_t)size : 0, &rx) ||
      !wb_check_disjoint(env, &ro, &rx))
    return NULL;
  float *out = (float *)(heap.data + o_off);
  const float keep = (float)scale;
  const uint32_t s = (uint32_t)seed, t = (uint32_t)threshold;
  if (apply) { /* out = x * mask: the bytes of tf.mul(x, mask), without the mask tensor */
    mask_apply(size, s, t, keep, (const float *)(heap.data + x_off), out);
  } else {
    mask_fill(size, s, t, keep, out);
  }
  return NULL;
}
