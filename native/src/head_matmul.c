/*
 * Attention's per-head products without moving data: for every batch item b
 * and head h, C[b,h] = op(A[b,h]) @ op(B[b,h]), one sgemm each, where each
 * operand is stored either
 *   packed: [batch, heads, rows, cols] (head h's matrix contiguous, ld = cols), or
 *   split:  [batch * rows, heads * cols] (head h's matrix is a column block, ld = heads * cols),
 * the latter being how a dense layer's [tokens, hidden] output already holds
 * the heads. So the query/key/value projections feed the scores, and the
 * context comes out ready for the output projection, with no transposes.
 * The sgemm calls are those of a matmul on transposed copies (same m, n, k and
 * transposition flags; only the leading dimension differs).
 * Knows BLAS and the two layouts; nothing of tfjs.
 */
#include <cblas.h>

#include "args.h"
#include "kernels.h"

typedef struct {
  const char *name;
  int64_t offset; /* bytes */
  bool split;
  int64_t rows, cols; /* one head's stored matrix */
} wb_heads_operand;

static bool read_heads_operand(napi_env env, napi_value spec, const char *off_key, const char *split_key,
                               wb_heads_operand *op) {
  op->name = off_key;
  return wb_get_int(env, spec, off_key, 0, INT64_MAX, &op->offset) && wb_get_bool(env, spec, split_key, &op->split);
}

/* Head (b, h)'s matrix and its leading dimension. */
static float *head_at(uint8_t *heap, const wb_heads_operand *op, int64_t heads, int64_t b, int64_t h, int *ld) {
  float *base = (float *)(heap + op->offset);
  if (op->split) {
    *ld = (int)(heads * op->cols);
    return base + (b * op->rows) * heads * op->cols + h * op->cols;
  }
  *ld = (int)op->cols;
  return base + ((b * heads + h) * op->rows) * op->cols;
}

/* headMatmul(heap, {batch, heads, m, n, k, transposeA, transposeB, aOffset, aSplit, bOffset, bSplit, outOffset, outSplit}) */
napi_value wb_head_matmul(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (!wb_heap_args(env, info, "headMatmul", argv)) return NULL;
  napi_value spec = argv[1];
  wb_heap heap;
  int64_t batch, heads, m, n, k;
  bool ta, tb;
  wb_heads_operand a, b, c;
  if (!wb_get_heap(env, argv[0], &heap) || !wb_get_int(env, spec, "batch", 0, INT32_MAX, &batch) ||
      !wb_get_int(env, spec, "heads", 1, INT32_MAX, &heads) || !wb_get_int(env, spec, "m", 0, INT32_MAX, &m) ||
      !wb_get_int(env, spec, "n", 0, INT32_MAX, &n) || !wb_get_int(env, spec, "k", 1, INT32_MAX, &k) ||
      !wb_get_bool(env, spec, "transposeA", &ta) || !wb_get_bool(env, spec, "transposeB", &tb) ||
      !read_heads_operand(env, spec, "aOffset", "aSplit", &a) ||
      !read_heads_operand(env, spec, "bOffset", "bSplit", &b) ||
      !read_heads_operand(env, spec, "outOffset", "outSplit", &c))
    return NULL;
  a.rows = ta ? k : m;
  a.cols = ta ? m : k;
  b.rows = tb ? n : k;
  b.cols = tb ? k : n;
  c.rows = m;
  c.cols = n;
  /* Each operand holds batch x heads x rows x cols floats in either layout; leading dims fit an int. */
  wb_region regions[3];
  wb_heads_operand *ops[3] = {&a, &b, &c};
  for (int i = 0; i < 3; i++) {
    uint64_t count;
    if (!wb_mul(env, ops[i]->name, (uint64_t)batch, (uint64_t)heads, &count) ||
        !wb_mul(env, ops[i]->name, count, (uint64_t)ops[i]->rows, &count) ||
        !wb_mul(env, ops[i]->name, count, (uint64_t)ops[i]->cols, &count) ||
        !wb_check_region(env, &heap, ops[i]->name, ops[i]->offset, count, &regions[i]))
      return NULL;
    if ((uint64_t)heads * (uint64_t)ops[i]->cols > INT32_MAX) {
      wb_fail(env, ops[i]->name, "expected heads x cols within %d, got %lld x %lld", INT32_MAX, (long long)heads,
              (long long)ops[i]->cols);
      return NULL;
    }
  }
  if (!wb_check_disjoint(env, &regions[2], &regions[0]) || !wb_check_disjoint(env, &regions[2], &regions[1])) return NULL;
  if (m == 0 || n == 0) return NULL;
  const enum CBLAS_TRANSPOSE cta = ta ? CblasTrans : CblasNoTrans;
  const enum CBLAS_TRANSPOSE ctb = tb ? CblasTrans : CblasNoTrans;
  for (int64_t bi = 0; bi < batch; bi++) {
    for (int64_t hi = 0; hi < heads; hi++) {
      int lda, ldb, ldc;
      const float *pa = head_at(heap.data, &a, heads, bi, hi, &lda);
      const float *pb = head_at(heap.data, &b, heads, bi, hi, &ldb);
      float *pc = head_at(heap.data, &c, heads, bi, hi, &ldc);
      cblas_sgemm(CblasRowMajor, cta, ctb, (int)m, (int)n, (int)k, 1.0f, pa, lda, pb, ldb, 0.0f, pc, ldc);
    }
  }
  return NULL;
}
