/*
 * Argument parsing and validation for the wasm-blas addon. Every JS value that
 * reaches a kernel passes through here first, so a bad call throws a JS Error
 * naming the argument with expected-vs-got instead of scribbling over memory.
 * Knows N-API and byte arithmetic; knows nothing of BLAS or tfjs.
 */
#ifndef WASM_BLAS_ARGS_H
#define WASM_BLAS_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <node_api.h>

/* Most outer (batch) dims we accept; tfjs matmuls are rank <= 6 in practice. */
#define WB_MAX_BATCH_RANK 8

/* The wasm heap as seen for one call: valid until JS runs again. */
typedef struct {
  uint8_t *data;
  uint64_t byte_length;
} wb_heap;

/* A byte region inside the heap, already bounds-checked. */
typedef struct {
  const char *name;
  uint64_t offset;
  uint64_t bytes;
} wb_region;

/* Throws `name: message` as a JS Error with code ERR_WASM_BLAS_ARG; returns false. */
bool wb_fail(napi_env env, const char *name, const char *fmt, ...);

/* A heap kernel's call: exactly 2 arguments (heap, spec), put in argv; else throws naming `fn`. */
bool wb_heap_args(napi_env env, napi_callback_info info, const char *fn, napi_value argv[2]);

/* argv[index] must be a (non-detached) ArrayBuffer. */
bool wb_get_heap(napi_env env, napi_value value, wb_heap *out);

/* Property `name` of obj as an integer in [min, max] (JS numbers, exact). */
bool wb_get_int(napi_env env, napi_value obj, const char *name, int64_t min, int64_t max,
                int64_t *out);
/* Like wb_get_int, but an absent/undefined/null property yields `fallback`. */
bool wb_get_int_opt(napi_env env, napi_value obj, const char *name, int64_t min, int64_t max,
                    int64_t fallback, int64_t *out);
bool wb_get_bool(napi_env env, napi_value obj, const char *name, bool *out);
bool wb_get_double_opt(napi_env env, napi_value obj, const char *name, double fallback,
                       double *out);
/* Property `name` as an array of integers in [min, max], at most max_len long. */
bool wb_get_int_array(napi_env env, napi_value obj, const char *name, int64_t min, int64_t max,
                      int64_t *out, size_t max_len, size_t *len);
/* True when the property is present and not undefined/null. */
bool wb_has(napi_env env, napi_value obj, const char *name, bool *out);

/*
 * Checks that `count` 4-byte elements at byte `offset` lie inside the heap and
 * the offset is 4-byte aligned; fills `region`.
 */
bool wb_check_region(napi_env env, const wb_heap *heap, const char *name, int64_t offset,
                     uint64_t count, wb_region *region);
/* The output region must not overlap an input region (BLAS and our epilogues read inputs late). */
bool wb_check_disjoint(napi_env env, const wb_region *out, const wb_region *in);

/* Overflow-checked products; false (with a thrown error) on overflow. */
bool wb_mul(napi_env env, const char *what, uint64_t a, uint64_t b, uint64_t *out);

#endif
