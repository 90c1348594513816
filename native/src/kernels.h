/*
 * The N-API entry points of the wasm-blas addon, one per kernel family.
 * Each takes (heap: ArrayBuffer, spec: object) and validates everything itself.
 */
#ifndef WASM_BLAS_KERNELS_H
#define WASM_BLAS_KERNELS_H

#include <node_api.h>

napi_value wb_matmul(napi_env env, napi_callback_info info);
napi_value wb_unsorted_segment_sum(napi_env env, napi_callback_info info);
napi_value wb_unary(napi_env env, napi_callback_info info);

#endif
