/*
 * The N-API entry points of the wasm-blas addon, one per kernel family.
 * The heap kernels take (heap: ArrayBuffer, spec: object); the vector kernels
 * take typed arrays. Each validates everything itself.
 */
#ifndef WASM_BLAS_KERNELS_H
#define WASM_BLAS_KERNELS_H

#include <node_api.h>

napi_value wb_matmul(napi_env env, napi_callback_info info);
napi_value wb_unsorted_segment_sum(napi_env env, napi_callback_info info);
napi_value wb_unary(napi_env env, napi_callback_info info);
napi_value wb_sum_axis(napi_env env, napi_callback_info info);
napi_value wb_gather_rows(napi_env env, napi_callback_info info);
napi_value wb_dropout_mask(napi_env env, napi_callback_info info);
napi_value wb_gelu(napi_env env, napi_callback_info info);
napi_value wb_softmax_xent(napi_env env, napi_callback_info info);
napi_value wb_softmax_xent_grad(napi_env env, napi_callback_info info);
napi_value wb_layer_norm(napi_env env, napi_callback_info info);
napi_value wb_masked_softmax(napi_env env, napi_callback_info info);
napi_value wb_transpose_rows(napi_env env, napi_callback_info info);
napi_value wb_head_matmul(napi_env env, napi_callback_info info);

/* Flat-vector kernels of the training step (vector.c): typed arrays, not the heap. */
napi_value wb_add_into(napi_env env, napi_callback_info info);
napi_value wb_adamw_step(napi_env env, napi_callback_info info);
napi_value wb_sum_of_squares(napi_env env, napi_callback_info info);
napi_value wb_scale_in_place(napi_env env, napi_callback_info info);
napi_value wb_set_vector_isa(napi_env env, napi_callback_info info);
napi_value wb_get_vector_isa(napi_env env, napi_callback_info info);

#endif
