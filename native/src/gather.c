/*
 * Gather of whole slices on the wasm heap (GatherV2 with batchDims 0): x is
 * viewed as [outer, dim, slice] of 4-byte elements, ids [n] int32, and
 * out[o, j, :] = x[o, ids[j], :]. A copy, so the bytes equal tfjs's gather;
 * ids outside [0, dim) throw (tfjs asserts the same). Knows nothing of tensors.
 */
#include <string.h>

#include "args.h"
#include "kernels.h"

napi_value wb_gather_rows(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!wb_heap_args(env, info, "gatherRows", argv)) return NULL;
  wb_heap heap;
  if (!wb_get_heap(env, argv[0], &heap)) return NULL;
  int64_t x_off, ids_off, o_off, outer, dim, slice, n;
  if (!wb_get_int(env, argv[1], "xOffset", 0, INT64_MAX, &x_off) ||
      !wb_get_int(env, argv[1], "idsOffset", 0, INT64_MAX, &ids_off) ||
      !wb_get_int(env, argv[1], "outOffset", 0, INT64_MAX, &o_off) ||
      !wb_get_int(env, argv[1], "outer", 0, INT32_MAX, &outer) ||
      !wb_get_int(env, argv[1], "dim", 0, INT32_MAX, &dim) ||
      !wb_get_int(env, argv[1], "slice", 0, INT32_MAX, &slice) ||
      !wb_get_int(env, argv[1], "numIds", 0, INT32_MAX, &n))
    return NULL;
  uint64_t x_row, x_count, o_row, o_count;
  if (!wb_mul(env, "dim x slice", (uint64_t)dim, (uint64_t)slice, &x_row) ||
      !wb_mul(env, "outer x dim x slice", (uint64_t)outer, x_row, &x_count) ||
      !wb_mul(env, "numIds x slice", (uint64_t)n, (uint64_t)slice, &o_row) ||
      !wb_mul(env, "outer x numIds x slice", (uint64_t)outer, o_row, &o_count))
    return NULL;
  wb_region rx, rids, ro;
  if (!wb_check_region(env, &heap, "xOffset", x_off, x_count, &rx) ||
      !wb_check_region(env, &heap, "idsOffset", ids_off, (uint64_t)n, &rids) ||
      !wb_check_region(env, &heap, "outOffset", o_off, o_count, &ro) ||
      !wb_check_disjoint(env, &ro, &rx) || !wb_check_disjoint(env, &ro, &rids))
    return NULL;
  const int32_t *ids = (const int32_t *)(heap.data + ids_off);
  for (int64_t j = 0; j < n; j++) {
    if (ids[j] < 0 || ids[j] >= dim) {
      wb_fail(env, "ids", "expected every index in [0, %lld), got %d at position %lld", (long long)dim,
              ids[j], (long long)j);
      return NULL;
    }
  }
  const uint8_t *x = heap.data + x_off;
  uint8_t *out = heap.data + o_off;
  const size_t row_bytes = (size_t)slice * 4;
  for (int64_t o = 0; o < outer; o++) {
    const uint8_t *xo = x + (size_t)o * x_row * 4;
    uint8_t *oo = out + (size_t)o * o_row * 4;
    for (int64_t j = 0; j < n; j++) memcpy(oo + (size_t)j * row_bytes, xo + (size_t)ids[j] * row_bytes, row_bytes);
  }
  return NULL;
}
