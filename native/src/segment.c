/*
 * UnsortedSegmentSum on the wasm heap, in place (TF semantics): x is
 * [numIds, rowSize] once its leading (segment-id) dims are flattened, ids is
 * [numIds] int32, out is [numSegments, rowSize]. Rows whose id is negative or
 * >= numSegments are dropped, as TF and tfjs-backend-cpu do. Rows are added in
 * index order with float32 accumulation, so the result is deterministic.
 * Knows nothing of tensors or the tfjs engine.
 */
#include <string.h>

#include "args.h"
#include "kernels.h"

napi_value wb_unsorted_segment_sum(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!wb_heap_args(env, info, "unsortedSegmentSum", argv)) return NULL;
  napi_value spec = argv[1];
  wb_heap heap;
  if (!wb_get_heap(env, argv[0], &heap)) return NULL;

  int64_t x_off, ids_off, o_off, num_ids, row, num_segments, x_size, o_size;
  if (!wb_get_int(env, spec, "xOffset", 0, INT64_MAX, &x_off) ||
      !wb_get_int(env, spec, "idsOffset", 0, INT64_MAX, &ids_off) ||
      !wb_get_int(env, spec, "outOffset", 0, INT64_MAX, &o_off) ||
      !wb_get_int(env, spec, "numIds", 0, INT32_MAX, &num_ids) ||
      !wb_get_int(env, spec, "rowSize", 0, INT32_MAX, &row) ||
      !wb_get_int(env, spec, "numSegments", 0, INT32_MAX, &num_segments) ||
      !wb_get_int(env, spec, "xSize", 0, INT64_MAX, &x_size) ||
      !wb_get_int(env, spec, "outSize", 0, INT64_MAX, &o_size))
    return NULL;

  uint64_t x_need, o_need;
  if (!wb_mul(env, "xSize", (uint64_t)num_ids, (uint64_t)row, &x_need) ||
      !wb_mul(env, "outSize", (uint64_t)num_segments, (uint64_t)row, &o_need))
    return NULL;
  if ((uint64_t)x_size != x_need) {
    wb_fail(env, "xSize", "expected %llu (numIds %lld x rowSize %lld), got %lld",
            (unsigned long long)x_need, (long long)num_ids, (long long)row, (long long)x_size);
    return NULL;
  }
  if ((uint64_t)o_size != o_need) {
    wb_fail(env, "outSize", "expected %llu (numSegments %lld x rowSize %lld), got %lld",
            (unsigned long long)o_need, (long long)num_segments, (long long)row, (long long)o_size);
    return NULL;
  }
  wb_region rx, rids, ro;
  if (!wb_check_region(env, &heap, "xOffset", x_off, x_need, &rx) ||
      !wb_check_region(env, &heap, "idsOffset", ids_off, (uint64_t)num_ids, &rids) ||
      !wb_check_region(env, &heap, "outOffset", o_off, o_need, &ro) ||
      !wb_check_disjoint(env, &ro, &rx) || !wb_check_disjoint(env, &ro, &rids))
    return NULL;

  const float *x = (const float *)(heap.data + x_off);
  const int32_t *ids = (const int32_t *)(heap.data + ids_off);
  float *out = (float *)(heap.data + o_off);
  memset(out, 0, (size_t)o_need * sizeof(float));
  int64_t dropped = 0;
  for (int64_t i = 0; i < num_ids; i++) {
    const int32_t id = ids[i];
    if (id < 0 || id >= num_segments) {
      dropped++;
      continue;
    }
    float *dst = out + (int64_t)id * row;
    const float *src = x + i * row;
    for (int64_t j = 0; j < row; j++) dst[j] += src[j];
  }
  napi_value result; /* how many rows were dropped for an out-of-range id */
  napi_create_int64(env, dropped, &result);
  return result;
}
