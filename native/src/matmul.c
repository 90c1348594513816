/*
 * Batched float32 matmul on the wasm heap, in place, with tfjs's fused
 * epilogue (bias add, then activation). Inputs and output are byte offsets into
 * the heap ArrayBuffer; nothing is copied. Knows BLAS and the epilogue math of
 * tfjs-backend-cpu; knows nothing of tensors, dataIds or the tfjs engine.
 *
 * Batch semantics: A is [...aBatch, m, k] (or [..., k, m] when transposed),
 * B is [...bBatch, k, n] (or [..., n, k]); the batch shapes broadcast
 * numpy-style (right-aligned, a dim of 1 broadcasts) to outBatch, and the
 * output is [...outBatch, m, n], row-major.
 */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "args.h"
#include "fastmath.h"
#include "kernels.h"

enum { ACT_LINEAR = 0, ACT_RELU, ACT_RELU6, ACT_ELU, ACT_LEAKYRELU, ACT_PRELU, ACT_SIGMOID };

/* A broadcast operand of the epilogue (bias or prelu weights). */
typedef struct {
  const float *data; /* NULL when absent */
  int64_t strides[WB_MAX_BATCH_RANK + 2]; /* element strides over [...outBatch, m, n]; 0 = broadcast */
} wb_operand;

/*
 * The activations, written to match tfjs-backend-cpu bit for bit where its
 * JS double math allows: products and sums of two float32s are exact in double,
 * exp is computed in double and rounded once.
 */
static inline float activate(float x, int act, double alpha, float prelu) {
  switch (act) {
    case ACT_RELU: /* Math.max(0, x): NaN stays NaN, -0 becomes +0 */
      return x > 0.0f ? x : (x != x ? x : 0.0f);
    case ACT_RELU6: /* Math.min(Math.max(0, x), 6) */
      return x > 0.0f ? (x > 6.0f ? 6.0f : x) : (x != x ? x : 0.0f);
    case ACT_ELU:
      return x >= 0.0f ? x : (float)(exp((double)x) - 1.0);
    case ACT_LEAKYRELU:
      return x < 0.0f ? (float)(alpha * (double)x) : x;
    case ACT_PRELU:
      return x < 0.0f ? prelu * x : x;
    case ACT_SIGMOID:
      return (float)(1.0 / (1.0 + exp(-(double)x)));
    default:
      return x;
  }
}

/* row[j] += b[j]: the common case of a contiguous bias row, in its own function so it vectorises (one add per element: the same bytes). */
WB_CLONES __attribute__((noinline)) static void add_row(float *row, const float *b, int64_t n) {
  for (int64_t j = 0; j < n; j++) row[j] = row[j] + b[j];
}

/* One output matrix [m, n]: out = act(out + bias). `base` offsets are this batch's. */
static void epilogue(float *out, int64_t m, int64_t n, const wb_operand *bias, int64_t bias_base,
                     const wb_operand *prelu, int64_t prelu_base, size_t rank, int act,
                     double alpha) {
  const int64_t bsm = bias->strides[rank - 2], bsn = bias->strides[rank - 1];
  const int64_t psm = prelu->strides[rank - 2], psn = prelu->strides[rank - 1];
  for (int64_t i = 0; i < m; i++) {
    float *row = out + i * n;
    if (bias->data != NULL) {
      const float *brow = bias->data + bias_base + i * bsm;
      if (bsn == 1) {
        add_row(row, brow, n);
      } else {
        for (int64_t j = 0; j < n; j++) row[j] = row[j] + brow[j * bsn];
      }
    }
    if (act == ACT_LINEAR) continue;
    const float *prow = prelu->data != NULL ? prelu->data + prelu_base + i * psm : NULL;
    for (int64_t j = 0; j < n; j++) {
      row[j] = activate(row[j], act, alpha, prow != NULL ? prow[j * psn] : 0.0f);
    }
  }
}

/*
 * Reads an optional epilogue operand `<name>Offset/Size/Strides`. Its strides
 * must have one entry per output dim and every index it can reach must lie
 * inside `<name>Size` elements, which must lie inside the heap.
 */
static bool read_operand(napi_env env, napi_value spec, const wb_heap *heap, const char *name,
                         const int64_t *out_dims, size_t rank, wb_operand *op, wb_region *region,
                         bool *present) {
  char key_off[32], key_size[32], key_strides[32];
  snprintf(key_off, sizeof key_off, "%sOffset", name);
  snprintf(key_size, sizeof key_size, "%sSize", name);
  snprintf(key_strides, sizeof key_strides, "%sStrides", name);
  memset(op, 0, sizeof *op);
  memset(region, 0, sizeof *region);
  if (!wb_has(env, spec, key_off, present)) return false;
  if (!*present) return true;
  int64_t off = 0, size = 0;
  size_t n_strides = 0;
  if (!wb_get_int(env, spec, key_off, 0, INT64_MAX, &off)) return false;
  if (!wb_get_int(env, spec, key_size, 1, INT64_MAX, &size)) return false;
  if (!wb_get_int_array(env, spec, key_strides, 0, INT32_MAX, op->strides,
                        WB_MAX_BATCH_RANK + 2, &n_strides))
    return false;
  if (n_strides != rank) {
    return wb_fail(env, key_strides, "expected %zu strides (one per output dim), got %zu", rank,
                   n_strides);
  }
  uint64_t max_index = 0;
  for (size_t d = 0; d < rank; d++) {
    if (out_dims[d] > 0) max_index += (uint64_t)(out_dims[d] - 1) * (uint64_t)op->strides[d];
  }
  if (max_index >= (uint64_t)size) {
    return wb_fail(env, key_strides, "expected strides reaching at most index %lld (%s %lld), got %llu",
                   (long long)(size - 1), key_size, (long long)size, (unsigned long long)max_index);
  }
  if (!wb_check_region(env, heap, key_off, off, (uint64_t)size, region)) return false;
  op->data = (const float *)(heap->data + off);
  return true;
}

napi_value wb_matmul(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!wb_heap_args(env, info, "matmul", argv)) return NULL;
  napi_value spec = argv[1];
  wb_heap heap;
  if (!wb_get_heap(env, argv[0], &heap)) return NULL;

  int64_t m, n, k, a_off, b_off, o_off, a_size, b_size, o_size, act;
  bool ta, tb;
  double alpha;
  int64_t a_batch[WB_MAX_BATCH_RANK], b_batch[WB_MAX_BATCH_RANK];
  size_t ra = 0, rb = 0;
  if (!wb_get_int(env, spec, "m", 0, INT32_MAX, &m) || !wb_get_int(env, spec, "n", 0, INT32_MAX, &n) ||
      !wb_get_int(env, spec, "k", 0, INT32_MAX, &k) || !wb_get_bool(env, spec, "transposeA", &ta) ||
      !wb_get_bool(env, spec, "transposeB", &tb) ||
      !wb_get_int_array(env, spec, "aBatch", 1, INT32_MAX, a_batch, WB_MAX_BATCH_RANK, &ra) ||
      !wb_get_int_array(env, spec, "bBatch", 1, INT32_MAX, b_batch, WB_MAX_BATCH_RANK, &rb) ||
      !wb_get_int(env, spec, "aOffset", 0, INT64_MAX, &a_off) ||
      !wb_get_int(env, spec, "bOffset", 0, INT64_MAX, &b_off) ||
      !wb_get_int(env, spec, "outOffset", 0, INT64_MAX, &o_off) ||
      !wb_get_int(env, spec, "aSize", 0, INT64_MAX, &a_size) ||
      !wb_get_int(env, spec, "bSize", 0, INT64_MAX, &b_size) ||
      !wb_get_int(env, spec, "outSize", 0, INT64_MAX, &o_size) ||
      !wb_get_int_opt(env, spec, "activation", ACT_LINEAR, ACT_SIGMOID, ACT_LINEAR, &act) ||
      !wb_get_double_opt(env, spec, "alpha", 0.2, &alpha))
    return NULL;

  /* Broadcast the batch shapes, right-aligned: [...outBatch]. */
  const size_t rbatch = ra > rb ? ra : rb;
  int64_t a_dims[WB_MAX_BATCH_RANK], b_dims[WB_MAX_BATCH_RANK], out_dims[WB_MAX_BATCH_RANK + 2];
  uint64_t a_count = 1, b_count = 1, p_count = 1;
  for (size_t d = 0; d < rbatch; d++) {
    a_dims[d] = d + ra >= rbatch ? a_batch[d + ra - rbatch] : 1;
    b_dims[d] = d + rb >= rbatch ? b_batch[d + rb - rbatch] : 1;
    if (a_dims[d] != b_dims[d] && a_dims[d] != 1 && b_dims[d] != 1) {
      wb_fail(env, "bBatch", "expected batch dim %zu broadcastable with aBatch's %lld, got %lld", d,
              (long long)a_dims[d], (long long)b_dims[d]);
      return NULL;
    }
    out_dims[d] = a_dims[d] > b_dims[d] ? a_dims[d] : b_dims[d];
    if (!wb_mul(env, "aBatch", a_count, (uint64_t)a_dims[d], &a_count) ||
        !wb_mul(env, "bBatch", b_count, (uint64_t)b_dims[d], &b_count) ||
        !wb_mul(env, "outBatch", p_count, (uint64_t)out_dims[d], &p_count))
      return NULL;
  }
  out_dims[rbatch] = m;
  out_dims[rbatch + 1] = n;
  const size_t rank = rbatch + 2;

  /* Element counts must match the shapes exactly, so no region is over- or under-sized. */
  uint64_t a_mat, b_mat, o_mat, a_need, b_need, o_need;
  if (!wb_mul(env, "aSize", (uint64_t)m, (uint64_t)k, &a_mat) ||
      !wb_mul(env, "bSize", (uint64_t)k, (uint64_t)n, &b_mat) ||
      !wb_mul(env, "outSize", (uint64_t)m, (uint64_t)n, &o_mat) ||
      !wb_mul(env, "aSize", a_count, a_mat, &a_need) ||
      !wb_mul(env, "bSize", b_count, b_mat, &b_need) ||
      !wb_mul(env, "outSize", p_count, o_mat, &o_need))
    return NULL;
  if ((uint64_t)a_size != a_need) {
    wb_fail(env, "aSize", "expected %llu (aBatch x m %lld x k %lld), got %lld",
            (unsigned long long)a_need, (long long)m, (long long)k, (long long)a_size);
    return NULL;
  }
  if ((uint64_t)b_size != b_need) {
    wb_fail(env, "bSize", "expected %llu (bBatch x k %lld x n %lld), got %lld",
            (unsigned long long)b_need, (long long)k, (long long)n, (long long)b_size);
    return NULL;
  }
  if ((uint64_t)o_size != o_need) {
    wb_fail(env, "outSize", "expected %llu (outBatch x m %lld x n %lld), got %lld",
            (unsigned long long)o_need, (long long)m, (long long)n, (long long)o_size);
    return NULL;
  }

  wb_region ra_reg, rb_reg, ro_reg, rbias, rprelu;
  if (!wb_check_region(env, &heap, "aOffset", a_off, a_need, &ra_reg) ||
      !wb_check_region(env, &heap, "bOffset", b_off, b_need, &rb_reg) ||
      !wb_check_region(env, &heap, "outOffset", o_off, o_need, &ro_reg))
    return NULL;
  wb_operand bias, prelu;
  bool has_bias = false, has_prelu = false;
  if (!read_operand(env, spec, &heap, "bias", out_dims, rank, &bias, &rbias, &has_bias) ||
      !read_operand(env, spec, &heap, "prelu", out_dims, rank, &prelu, &rprelu, &has_prelu))
    return NULL;
  if (act == ACT_PRELU && !has_prelu) {
    wb_fail(env, "preluOffset", "expected prelu weights for activation prelu, got none");
    return NULL;
  }
  if (!wb_check_disjoint(env, &ro_reg, &ra_reg) || !wb_check_disjoint(env, &ro_reg, &rb_reg) ||
      !wb_check_disjoint(env, &ro_reg, &rbias) || !wb_check_disjoint(env, &ro_reg, &rprelu))
    return NULL;

  const float *A = (const float *)(heap.data + a_off);
  const float *B = (const float *)(heap.data + b_off);
  float *C = (float *)(heap.data + o_off);
  /* Row-major leading dims: A is [m,k] or [k,m]; B is [k,n] or [n,k]; BLAS wants >= 1. */
  const int lda = (int)((ta ? m : k) > 0 ? (ta ? m : k) : 1);
  const int ldb = (int)((tb ? k : n) > 0 ? (tb ? k : n) : 1);
  const int ldc = (int)(n > 0 ? n : 1);
  const enum CBLAS_TRANSPOSE cta = ta ? CblasTrans : CblasNoTrans;
  const enum CBLAS_TRANSPOSE ctb = tb ? CblasTrans : CblasNoTrans;
  int64_t calls = 0;

  /* Strides in whole matrices of A and B over the padded batch dims (0 = broadcast). */
  int64_t a_stride[WB_MAX_BATCH_RANK], b_stride[WB_MAX_BATCH_RANK];
  int64_t sa = 1, sb = 1;
  for (size_t d = rbatch; d-- > 0;) {
    a_stride[d] = a_dims[d] == 1 ? 0 : sa;
    b_stride[d] = b_dims[d] == 1 ? 0 : sb;
    sa *= a_dims[d];
    sb *= b_dims[d];
  }

  if (o_need > 0) {
    if (k == 0) {
      memset(C, 0, (size_t)o_need * sizeof(float));
    } else if (b_count == 1 && !ta && a_count == p_count && p_count * (uint64_t)m <= INT32_MAX) {
      /* B is shared and A's batches are contiguous rows: one sgemm over [batch*m, k]. */
      cblas_sgemm(CblasRowMajor, cta, ctb, (int)(p_count * (uint64_t)m), (int)n, (int)k, 1.0f, A,
                  lda, B, ldb, 0.0f, C, ldc);
      calls = 1;
    } else {
      int64_t idx[WB_MAX_BATCH_RANK] = {0};
      for (uint64_t p = 0; p < p_count; p++) {
        int64_t ai = 0, bi = 0;
        for (size_t d = 0; d < rbatch; d++) {
          ai += idx[d] * a_stride[d];
          bi += idx[d] * b_stride[d];
        }
        cblas_sgemm(CblasRowMajor, cta, ctb, (int)m, (int)n, (int)k, 1.0f, A + ai * (int64_t)a_mat,
                    lda, B + bi * (int64_t)b_mat, ldb, 0.0f, C + p * o_mat, ldc);
        calls++;
        for (size_t d = rbatch; d-- > 0;) { /* odometer over outBatch */
          if (++idx[d] < out_dims[d]) break;
          idx[d] = 0;
        }
      }
    }
    if (has_bias || act != ACT_LINEAR) {
      int64_t idx[WB_MAX_BATCH_RANK] = {0};
      for (uint64_t p = 0; p < p_count; p++) {
        int64_t bb = 0, pb = 0;
        for (size_t d = 0; d < rbatch; d++) {
          bb += idx[d] * bias.strides[d];
          pb += idx[d] * prelu.strides[d];
        }
        epilogue(C + p * o_mat, m, n, &bias, bb, &prelu, pb, rank, (int)act, alpha);
        for (size_t d = rbatch; d-- > 0;) {
          if (++idx[d] < out_dims[d]) break;
          idx[d] = 0;
        }
      }
    }
  }
  napi_value result;
  napi_create_int64(env, calls, &result);
  return result;
}
