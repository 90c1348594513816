/*
 * wasm-blas: module entry of the N-API addon that runs tfjs-backend-wasm's
 * matmuls (and a few kernels wasm lacks) on OpenBLAS, reading and writing the
 * wasm heap in place, and the flat-vector kernels of the training step (tree
 * sum, AdamW, clipping; vector.c) on any Float32Array. Exports the kernels plus
 * OpenBLAS thread/config queries.
 * Loaded only by shared/backend/native-addon.ts; knows nothing of tfjs.
 */
#include <cblas.h>

#include "args.h"
#include "kernels.h"

static napi_value set_num_threads(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_valuetype t = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &t);
  double d = 0;
  if (t == napi_number) napi_get_value_double(env, argv[0], &d);
  if (t != napi_number || d != (double)(int)d || d < 1 || d > 1024) {
    wb_fail(env, "threads", "expected an integer in [1, 1024], got %s",
            t == napi_number ? "an out-of-range or fractional number" : "a non-number");
    return NULL;
  }
  openblas_set_num_threads((int)d);
  return NULL;
}

static napi_value get_num_threads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_create_int32(env, openblas_get_num_threads(), &r);
  return r;
}

static napi_value get_config(napi_env env, napi_callback_info info) {
  (void)info;
  /* e.g. "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64"; the
     core name matters: different cores may round differently. */
  const char *cfg = openblas_get_config();
  napi_value r;
  napi_create_string_utf8(env, cfg != NULL ? cfg : "", NAPI_AUTO_LENGTH, &r);
  return r;
}

static napi_value get_corename(napi_env env, napi_callback_info info) {
  (void)info;
  const char *core = openblas_get_corename();
  napi_value r;
  napi_create_string_utf8(env, core != NULL ? core : "", NAPI_AUTO_LENGTH, &r);
  return r;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"matmul", NULL, wb_matmul, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unsortedSegmentSum", NULL, wb_unsorted_segment_sum, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unary", NULL, wb_unary, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sumAxis", NULL, wb_sum_axis, NULL, NULL, NULL, napi_enumerable, NULL},
      {"gatherRows", NULL, wb_gather_rows, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dropoutMask", NULL, wb_dropout_mask, NULL, NULL, NULL, napi_enumerable, NULL},
      {"gelu", NULL, wb_gelu, NULL, NULL, NULL, napi_enumerable, NULL},
      {"softmaxXent", NULL, wb_softmax_xent, NULL, NULL, NULL, napi_enumerable, NULL},
      {"softmaxXentGrad", NULL, wb_softmax_xent_grad, NULL, NULL, NULL, napi_enumerable, NULL},
      {"layerNorm", NULL, wb_layer_norm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"maskedSoftmax", NULL, wb_masked_softmax, NULL, NULL, NULL, napi_enumerable, NULL},
      {"transposeRows", NULL, wb_transpose_rows, NULL, NULL, NULL, napi_enumerable, NULL},
      {"headMatmul", NULL, wb_head_matmul, NULL, NULL, NULL, napi_enumerable, NULL},
      {"addInto", NULL, wb_add_into, NULL, NULL, NULL, napi_enumerable, NULL},
      {"adamWStep", NULL, wb_adamw_step, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sumOfSquares", NULL, wb_sum_of_squares, NULL, NULL, NULL, napi_enumerable, NULL},
      {"scaleInPlace", NULL, wb_scale_in_place, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setVectorIsa", NULL, wb_set_vector_isa, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getVectorIsa", NULL, wb_get_vector_isa, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setNumThreads", NULL, set_num_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getNumThreads", NULL, get_num_threads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getConfig", NULL, get_config, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getCorename", NULL, get_corename, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
