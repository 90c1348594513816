/*
 * Softmax cross-entropy with integer labels on the wasm heap, forward and
 * backward, for the vocabulary projection of masked-LM training ([n, C] with
 * C ~ 30 000): one pass per row instead of tfjs's softmax, gather, log,
 * one-hot, sub, mul and argmax kernels.
 *   forward:  probs[i, :] = softmax(logits[i, :]), loss[i] = -log(max(probs[i, y_i], 1e-37)),
 *             argmax[i] = first index of the row's largest logit
 *   backward: grad[i, j] = (probs[i, j] - [j == y_i]) * dy[i]
 * Every sum runs over eight fixed lanes, then the lanes in order, so the bytes
 * do not depend on the vector width the compiler chose; exp is a polynomial
 * in plain float arithmetic (no libm), so they do not depend on libm either.
 * A label outside [0, C) throws (tfjs's gather of the label's probability
 * does too). Knows nothing of tensors.
 */
#include <math.h>
#include <string.h>

#include "args.h"
#include "fastmath.h"
#include "kernels.h"

/* Eight explicit lanes (two GCC 4-float vectors): the same bytes whatever SIMD width runs them. */
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));
#define LANES 8

static inline v4f load4(const float *p) {
  v4f v;
  memcpy(&v, p, sizeof v);
  return v;
}
static inline v4f vmax(v4f a, v4f b) {
  const v4i gt = b > a;
  return (v4f)((gt & (v4i)b) | (~gt & (v4i)a));
}

/* The elementwise loops are their own functions: GCC vectorises them there, not inlined beside the lane code. */
WB_CLONES __attribute__((noinline)) static void exp_shifted(const float *x, int64_t c, float m, float *p) {
  for (int64_t j = 0; j < c; j++) p[j] = wb_exp_nonpos(x[j] - m);
}

WB_CLONES __attribute__((noinline)) static void divide(float *p, int64_t c, float s) {
  for (int64_t j = 0; j < c; j++) p[j] = p[j] / s;
}

static void forward_row(const float *x, int64_t c, int32_t label, float *p, float *loss, int32_t *argmax) {
  /* The row's largest logit (max is exact, so lanes do not change it) and its first index. */
  v4f m0 = {x[0], x[0], x[0], x[0]}, m1 = m0; /* lanes 0-3 and 4-7 */
  int64_t j = 0;
  for (; j + LANES <= c; j += LANES) {
    m0 = vmax(m0, load4(x + j));
    m1 = vmax(m1, load4(x + j + 4));
  }
  float m = m0[0];
  for (int l = 1; l < 4; l++) m = m0[l] > m ? m0[l] : m;
  for (int l = 0; l < 4; l++) m = m1[l] > m ? m1[l] : m;
  for (; j < c; j++) m = x[j] > m ? x[j] : m;
  int64_t at = 0;
  while (at < c && !(x[at] == m)) at++;
  *argmax = (int32_t)(at < c ? at : 0);
  exp_shifted(x, c, m, p);
  v4f s0 = {0}, s1 = {0};
  j = 0;
  for (; j + LANES <= c; j += LANES) {
    s0 += load4(p + j);
    s1 += load4(p + j + 4);
  }
  float s = 0.0f;
  for (int l = 0; l < 4; l++) s += s0[l];
  for (int l = 0; l < 4; l++) s += s1[l];
  for (; j < c; j++) s += p[j];
  divide(p, c, s);
  const float py = p[label] > 1e-37f ? p[label] : 1e-37f;
  *loss = -logf(py);
}

static bool check_labels(napi_env env, const int32_t *y, int64_t n, int64_t c) {
  for (int64_t i = 0; i < n; i++) {
    if (y[i] < 0 || y[i] >= c) {
      return wb_fail(env, "labels", "expected every label in [0, %lld), got %d at row %lld", (long long)c, y[i],
                     (long long)i);
    }
  }
  return true;
}

static bool read_common(napi_env env, napi_callback_info info, const char *fn, wb_heap *heap,
                        napi_value *spec, int64_t *n, int64_t *c) {
  napi_value argv[2];
  if (!wb_heap_args(env, info, fn, argv)) return false;
  *spec = argv[1];
  return wb_get_heap(env, argv[0], heap) && wb_get_int(env, argv[1], "rows", 0, INT32_MAX, n) &&
         wb_get_int(env, argv[1], "classes", 1, INT32_MAX, c);
}

/* softmaxXent(heap, {rows, classes, logitsOffset, labelsOffset, probsOffset, lossOffset, argmaxOffset}) */
napi_value wb_softmax_xent(napi_env env, napi_callback_info info) {
  wb_heap heap;
  napi_value spec = NULL;
  int64_t n, c, x_off, y_off, p_off, l_off, a_off;
  if (!read_common(env, info, "softmaxXent", &heap, &spec, &n, &c) ||
      !wb_get_int(env, spec, "logitsOffset", 0, INT64_MAX, &x_off) ||
      !wb_get_int(env, spec, "labelsOffset", 0, INT64_MAX, &y_off) ||
      !wb_get_int(env, spec, "probsOffset", 0, INT64_MAX, &p_off) ||
      !wb_get_int(env, spec, "lossOffset", 0, INT64_MAX, &l_off) ||
      !wb_get_int(env, spec, "argmaxOffset", 0, INT64_MAX, &a_off))
    return NULL;
  uint64_t nc;
  wb_region rx, ry, rp, rl, ra;
  if (!wb_mul(env, "rows x classes", (uint64_t)n, (uint64_t)c, &nc) ||
      !wb_check_region(env, &heap, "logitsOffset", x_off, nc, &rx) ||
      !wb_check_region(env, &heap, "labelsOffset", y_off, (uint64_t)n, &ry) ||
      !wb_check_region(env, &heap, "probsOffset", p_off, nc, &rp) ||
      !wb_check_region(env, &heap, "lossOffset", l_off, (uint64_t)n, &rl) ||
      !wb_check_region(env, &heap, "argmaxOffset", a_off, (uint64_t)n, &ra) ||
      !wb_check_disjoint(env, &rp, &rx) || !wb_check_disjoint(env, &rp, &ry) ||
      !wb_check_disjoint(env, &rl, &rx) || !wb_check_disjoint(env, &rl, &rp) ||
      !wb_check_disjoint(env, &ra, &rx) || !wb_check_disjoint(env, &ra, &rp) ||
      !wb_check_disjoint(env, &ra, &rl))
    return NULL;
  const float *x = (const float *)(heap.data + x_off);
  const int32_t *y = (const int32_t *)(heap.data + y_off);
  float *p = (float *)(heap.data + p_off);
  float *loss = (float *)(heap.data + l_off);
  int32_t *am = (int32_t *)(heap.data + a_off);
  if (!check_labels(env, y, n, c)) return NULL;
  for (int64_t i = 0; i < n; i++) forward_row(x + i * c, c, y[i], p + i * c, loss + i, am + i);
  return NULL;
}

/* softmaxXentGrad(heap, {rows, classes, probsOffset, labelsOffset, dyOffset, outOffset}) */
napi_value wb_softmax_xent_grad(napi_env env, napi_callback_info info) {
  wb_heap heap;
  napi_value spec = NULL;
  int64_t n, c, p_off, y_off, d_off, o_off;
  if (!read_common(env, info, "softmaxXentGrad", &heap, &spec, &n, &c) ||
      !wb_get_int(env, spec, "probsOffset", 0, INT64_MAX, &p_off) ||
      !wb_get_int(env, spec, "labelsOffset", 0, INT64_MAX, &y_off) ||
      !wb_get_int(env, spec, "dyOffset", 0, INT64_MAX, &d_off) ||
      !wb_get_int(env, spec, "outOffset", 0, INT64_MAX, &o_off))
    return NULL;
  uint64_t nc;
  wb_region rp, ry, rd, ro;
  if (!wb_mul(env, "rows x classes", (uint64_t)n, (uint64_t)c, &nc) ||
      !wb_check_region(env, &heap, "probsOffset", p_off, nc, &rp) ||
      !wb_check_region(env, &heap, "labelsOffset", y_off, (uint64_t)n, &ry) ||
      !wb_check_region(env, &heap, "dyOffset", d_off, (uint64_t)n, &rd) ||
      !wb_check_region(env, &heap, "outOffset", o_off, nc, &ro) ||
      !wb_check_disjoint(env, &ro, &rp) || !wb_check_disjoint(env, &ro, &ry) ||
      !wb_check_disjoint(env, &ro, &rd))
    return NULL;
  const float *p = (const float *)(heap.data + p_off);
  const int32_t *y = (const int32_t *)(heap.data + y_off);
  const float *dy = (const float *)(heap.data + d_off);
  float *g = (float *)(heap.data + o_off);
  if (!check_labels(env, y, n, c)) return NULL;
  for (int64_t i = 0; i < n; i++) {
    const float d = dy[i];
    const float *pr = p + i * c;
    float *gr = g + i * c;
    for (int64_t j = 0; j < c; j++) gr[j] = pr[j] * d; /* (p - 0) * dy: the same float as p * dy */
    gr[y[i]] = (pr[y[i]] - 1.0f) * d;
  }
  return NULL;
}
