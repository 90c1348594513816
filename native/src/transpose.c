/*
 * Transpose on the wasm heap for permutations that keep the last axis in
 * place (e.g. [B,S,heads,d] <-> [B,heads,S,d]): each output row of the last
 * dim is one memcpy from its input row. A copy, so the bytes are the same as
 * stock wasm's Transpose. Knows nothing of tensors.
 */
#include <string.h>

#include "args.h"
#include "kernels.h"

enum { TR_MAX_RANK = 8 };

/* transposeRows(heap, {xOffset, outOffset, shape: x's dims, perm, elementBytes}) with perm[rank-1] = rank-1. */
napi_value wb_transpose_rows(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!wb_heap_args(env, info, "transposeRows", argv)) return NULL;
  napi_value spec = argv[1];
  wb_heap heap;
  int64_t x_off, o_off, eb, shape[TR_MAX_RANK], perm[TR_MAX_RANK];
  size_t rank = 0, prank = 0;
  if (!wb_get_heap(env, argv[0], &heap) || !wb_get_int(env, spec, "xOffset", 0, INT64_MAX, &x_off) ||
      !wb_get_int(env, spec, "outOffset", 0, INT64_MAX, &o_off) ||
      !wb_get_int(env, spec, "elementBytes", 1, 8, &eb) ||
      !wb_get_int_array(env, spec, "shape", 0, INT32_MAX, shape, TR_MAX_RANK, &rank) ||
      !wb_get_int_array(env, spec, "perm", 0, TR_MAX_RANK - 1, perm, TR_MAX_RANK, &prank))
    return NULL;
  if (rank < 1 || prank != rank) {
    wb_fail(env, "perm", "expected %zu axes (one per dim of shape, rank >= 1), got %zu", rank, prank);
    return NULL;
  }
  bool seen[TR_MAX_RANK] = {false};
  for (size_t d = 0; d < rank; d++) {
    if (perm[d] >= (int64_t)rank || seen[perm[d]]) {
      wb_fail(env, "perm", "expected a permutation of 0..%zu, got a repeated or out-of-range axis %lld", rank - 1,
              (long long)perm[d]);
      return NULL;
    }
    seen[perm[d]] = true;
  }
  if (perm[rank - 1] != (int64_t)rank - 1) {
    wb_fail(env, "perm", "expected the last axis to stay last, got axis %lld", (long long)perm[rank - 1]);
    return NULL;
  }
  uint64_t count = 1;
  for (size_t d = 0; d < rank; d++)
    if (!wb_mul(env, "shape", count, (uint64_t)shape[d], &count)) return NULL;
  uint64_t bytes;
  if (!wb_mul(env, "shape x elementBytes", count, (uint64_t)eb, &bytes)) return NULL;
  /* Regions are checked in float32 units: round the byte count up. */
  wb_region rx, ro;
  if (!wb_check_region(env, &heap, "xOffset", x_off, (bytes + 3) / 4, &rx) ||
      !wb_check_region(env, &heap, "outOffset", o_off, (bytes + 3) / 4, &ro) ||
      !wb_check_disjoint(env, &ro, &rx))
    return NULL;
  if (count == 0) return NULL;
  int64_t in_stride[TR_MAX_RANK], out_dims[TR_MAX_RANK], src_stride[TR_MAX_RANK];
  int64_t s = 1;
  for (size_t d = rank; d-- > 0;) {
    in_stride[d] = s;
    s *= shape[d];
  }
  for (size_t d = 0; d < rank; d++) {
    out_dims[d] = shape[perm[d]];
    src_stride[d] = in_stride[perm[d]];
  }
  const size_t row_bytes = (size_t)(shape[rank - 1] * eb);
  const uint64_t n_rows = count / (uint64_t)shape[rank - 1];
  const uint8_t *x = heap.data + x_off;
  uint8_t *out = heap.data + o_off;
  int64_t idx[TR_MAX_RANK] = {0};
  for (uint64_t r = 0; r < n_rows; r++) {
    int64_t src = 0;
    for (size_t d = 0; d + 1 < rank; d++) src += idx[d] * src_stride[d];
    memcpy(out + r * row_bytes, x + (size_t)src * (size_t)eb, row_bytes);
    for (size_t d = rank - 1; d-- > 0;) { /* odometer over the output's leading dims */
      if (++idx[d] < out_dims[d]) break;
      idx[d] = 0;
    }
  }
  return NULL;
}
