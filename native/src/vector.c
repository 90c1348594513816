/*
 * Flat-vector kernels of the training step, on any Float32Array (not only the
 * wasm heap): a += b (the tree sum of gradients), one AdamW update, and the
 * sum of squares and scaling of global-norm clipping. Each one reproduces its
 * JavaScript twin in shared/training/vector-js.ts bit for bit, because mixed
 * clusters and the byte-identity tests rely on the two paths giving the same
 * bytes:
 *  - float32 adds are IEEE float32 adds, as JS's double add rounded to float32;
 *  - AdamW and the scaling compute in double with the JS loop's operation
 *    order, then store float32 (no FMA: built with -ffp-contract=off; sqrt is
 *    IEEE correctly rounded, as Math.sqrt);
 *  - the sum of squares accumulates in double in index order (each product of
 *    two floats is exact in double; the sum is a sequential chain the compiler
 *    may not reassociate without -ffast-math, which is refused below).
 * The one exception: an operation on two NaNs with different bits, whose
 * payload IEEE leaves open (V8 itself varies by JIT tier); both sides give NaN.
 * Elementwise loops are vectorized, and on x86-64 built twice (baseline SSE2
 * and AVX2, chosen per call): a lane computes the same IEEE operations on one
 * element as the scalar loop, so width never changes a bit (and neither
 * target has FMA). The reduction stays one scalar chain. Built as its own
 * static library (binding.gyp) with -ffp-contract=off and -fno-math-errno, the
 * latter so that sqrt is the bare, vectorizable IEEE instruction (errno is
 * never read; values are unchanged). Knows nothing of tensors, models or BERT.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "args.h"
#include "kernels.h"

#if defined(__FAST_MATH__)
#error "vector.c must not be built with -ffast-math: it would change the bits JS computes"
#endif

/*
 * Each loop is written once (always_inline) and compiled twice on x86-64:
 * baseline SSE2 and AVX2, the latter run when the CPU has it unless
 * setVectorIsa('baseline') asked otherwise (tests hold both to the JS bytes).
 */
#define WB_BODY static inline __attribute__((always_inline))
#if defined(__x86_64__) && defined(__GNUC__)
#define WB_HAVE_AVX2 1
#define WB_AVX2 __attribute__((target("avx2")))
#endif

/* 1 = baseline requested by setVectorIsa; read on every call, from any thread. */
static _Atomic int force_baseline = 0;

static bool run_avx2(void) {
#ifdef WB_HAVE_AVX2
  return !force_baseline && __builtin_cpu_supports("avx2");
#else
  return false;
#endif
}

/* ---- the loops, on plain pointers ---- */

/* No `restrict`: a and b may alias (a += a); GCC's runtime alias check keeps
   the forward-loop semantics of the JS loop for any overlap. */
WB_BODY void add_into_body(size_t n, float *a, const float *b) {
  for (size_t i = 0; i < n; i++) a[i] += b[i];
}

WB_BODY void scale_body(size_t n, float *x, double factor) {
  for (size_t i = 0; i < n; i++) x[i] = (float)((double)x[i] * factor);
}

/* `when` ? a : b on the bits, which the vectorizer accepts where a branch on a
   float it would have to speculate is refused. */
WB_BODY double select_bits(int when, double a, double b) {
  uint64_t ua, ub;
  memcpy(&ua, &a, sizeof ua);
  memcpy(&ub, &b, sizeof ub);
  const uint64_t mask = -(uint64_t)(when != 0);
  const uint64_t r = (ua & mask) | (ub & ~mask);
  double out;
  memcpy(&out, &r, sizeof out);
  return out;
}

/*
 * The JS loop of adamWStep, line for line. `update` divides the double mi by
 * the root of the double vi, not their float32 stores. Where decay[i] != 1 the
 * JS loop adds nothing; this one adds -0.0, which is the exact identity of IEEE
 * addition (x + -0 == x bit for bit, -0 and NaN included), so the loop needs
 * no branch.
 */
WB_BODY void adamw_body(size_t n, float *params, const float *grad, float *m, float *v,
                        const uint8_t *decay, double lr, double beta1, double beta2,
                        double epsilon, double weight_decay) {
  /* JS evaluates (1 - beta1) each iteration; the value is the same double. */
  const double one_minus_beta1 = 1.0 - beta1;
  const double one_minus_beta2 = 1.0 - beta2;
  for (size_t i = 0; i < n; i++) {
    const double g = grad[i];
    const double mi = beta1 * (double)m[i] + one_minus_beta1 * g;
    const double vi = beta2 * (double)v[i] + one_minus_beta2 * g * g;
    m[i] = (float)mi;
    v[i] = (float)vi;
    const double p = params[i];
    const double decayed = weight_decay * p;
    const double update = mi / (sqrt(vi) + epsilon) + select_bits(decay[i] == 1, decayed, -0.0);
    params[i] = (float)(p - lr * update);
  }
}

/* One scalar chain in index order: never vectorized, never reassociated. */
static double sum_of_squares_f32(size_t n, const float *x) {
  double sum = 0;
  for (size_t i = 0; i < n; i++) {
    const double xi = x[i];
    sum += xi * xi;
  }
  return sum;
}

#ifdef WB_HAVE_AVX2
WB_AVX2 static void add_into_avx2(size_t n, float *a, const float *b) { add_into_body(n, a, b); }
WB_AVX2 static void scale_avx2(size_t n, float *x, double factor) { scale_body(n, x, factor); }
WB_AVX2 static void adamw_avx2(size_t n, float *params, const float *grad, float *m, float *v,
                               const uint8_t *decay, double lr, double beta1, double beta2,
                               double epsilon, double weight_decay) {
  adamw_body(n, params, grad, m, v, decay, lr, beta1, beta2, epsilon, weight_decay);
}
#endif

static void add_into_f32(size_t n, float *a, const float *b) {
#ifdef WB_HAVE_AVX2
  if (run_avx2()) {
    add_into_avx2(n, a, b);
    return;
  }
#endif
  add_into_body(n, a, b);
}

static void scale_f32(size_t n, float *x, double factor) {
#ifdef WB_HAVE_AVX2
  if (run_avx2()) {
    scale_avx2(n, x, factor);
    return;
  }
#endif
  scale_body(n, x, factor);
}

static void adamw_f32(size_t n, float *params, const float *grad, float *m, float *v,
                      const uint8_t *decay, double lr, double beta1, double beta2, double epsilon,
                      double weight_decay) {
#ifdef WB_HAVE_AVX2
  if (run_avx2()) {
    adamw_avx2(n, params, grad, m, v, decay, lr, beta1, beta2, epsilon, weight_decay);
    return;
  }
#endif
  adamw_body(n, params, grad, m, v, decay, lr, beta1, beta2, epsilon, weight_decay);
}

/* ---- N-API glue ---- */

typedef struct {
  void *data;
  size_t length;
} wb_array;

static const char *typed_array_name(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "an Int8Array";
    case napi_uint8_array: return "a Uint8Array";
    case napi_uint8_clamped_array: return "a Uint8ClampedArray";
    case napi_int16_array: return "an Int16Array";
    case napi_uint16_array: return "a Uint16Array";
    case napi_int32_array: return "an Int32Array";
    case napi_uint32_array: return "a Uint32Array";
    case napi_float32_array: return "a Float32Array";
    case napi_float64_array: return "a Float64Array";
    case napi_bigint64_array: return "a BigInt64Array";
    case napi_biguint64_array: return "a BigUint64Array";
  }
  return "a typed array";
}

/* argv value as a typed array of type `want` (a zero-length array may have no storage). */
static bool get_array(napi_env env, napi_value value, const char *name, napi_typedarray_type want,
                      wb_array *out) {
  bool is_ta = false;
  if (napi_is_typedarray(env, value, &is_ta) != napi_ok || !is_ta) {
    return wb_fail(env, name, "expected %s, got a value that is not a typed array", typed_array_name(want));
  }
  napi_typedarray_type type;
  size_t length = 0;
  void *data = NULL;
  if (napi_get_typedarray_info(env, value, &type, &length, &data, NULL, NULL) != napi_ok) {
    return wb_fail(env, name, "expected a readable typed array, got an N-API failure");
  }
  if (type != want) {
    return wb_fail(env, name, "expected %s, got %s", typed_array_name(want), typed_array_name(type));
  }
  if (data == NULL && length > 0) {
    return wb_fail(env, name, "expected storage for %zu elements, got none (detached buffer?)", length);
  }
  out->data = data;
  out->length = length;
  return true;
}

static bool get_double(napi_env env, napi_value value, const char *name, double *out) {
  napi_valuetype t = napi_undefined;
  napi_typeof(env, value, &t);
  if (t != napi_number) return wb_fail(env, name, "expected a number, got a non-number");
  napi_get_value_double(env, value, out);
  return true;
}

static bool same_length(napi_env env, const char *name, size_t got, size_t want) {
  if (got == want) return true;
  return wb_fail(env, name, "expected %zu elements (the first vector's length), got %zu", want, got);
}

static bool get_args(napi_env env, napi_callback_info info, const char *fn, size_t want,
                     napi_value *argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc != want) return wb_fail(env, fn, "expected %zu arguments, got %zu", want, argc);
  return true;
}

/* addInto(a: Float32Array, b: Float32Array): a[i] += b[i]. */
napi_value wb_add_into(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  wb_array a = {0}, b = {0};
  if (!get_args(env, info, "addInto", 2, argv) || !get_array(env, argv[0], "a", napi_float32_array, &a) ||
      !get_array(env, argv[1], "b", napi_float32_array, &b) || !same_length(env, "b", b.length, a.length))
    return NULL;
  add_into_f32(a.length, a.data, b.data);
  return NULL;
}

/* adamWStep(params, grad, m, v: Float32Array, decay: Uint8Array, lr, beta1, beta2, epsilon, weightDecay: number). */
napi_value wb_adamw_step(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  wb_array p = {0}, g = {0}, m = {0}, v = {0}, d = {0};
  double lr = 0, beta1 = 0, beta2 = 0, epsilon = 0, weight_decay = 0;
  if (!get_args(env, info, "adamWStep", 10, argv) ||
      !get_array(env, argv[0], "params", napi_float32_array, &p) ||
      !get_array(env, argv[1], "grad", napi_float32_array, &g) ||
      !get_array(env, argv[2], "m", napi_float32_array, &m) ||
      !get_array(env, argv[3], "v", napi_float32_array, &v) ||
      !get_array(env, argv[4], "decay", napi_uint8_array, &d) ||
      !same_length(env, "grad", g.length, p.length) || !same_length(env, "m", m.length, p.length) ||
      !same_length(env, "v", v.length, p.length) || !same_length(env, "decay", d.length, p.length) ||
      !get_double(env, argv[5], "lr", &lr) || !get_double(env, argv[6], "beta1", &beta1) ||
      !get_double(env, argv[7], "beta2", &beta2) || !get_double(env, argv[8], "epsilon", &epsilon) ||
      !get_double(env, argv[9], "weightDecay", &weight_decay))
    return NULL;
  adamw_f32(p.length, p.data, g.data, m.data, v.data, d.data, lr, beta1, beta2, epsilon, weight_decay);
  return NULL;
}

/* sumOfSquares(x: Float32Array): number — sum of x[i]*x[i] in double, index order. */
napi_value wb_sum_of_squares(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  wb_array x = {0};
  if (!get_args(env, info, "sumOfSquares", 1, argv) || !get_array(env, argv[0], "x", napi_float32_array, &x))
    return NULL;
  const double sum = sum_of_squares_f32(x.length, x.data);
  napi_value r;
  napi_create_double(env, sum, &r);
  return r;
}

/* scaleInPlace(x: Float32Array, factor: number): x[i] = float32(double(x[i]) * factor). */
napi_value wb_scale_in_place(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  wb_array x = {0};
  double factor;
  if (!get_args(env, info, "scaleInPlace", 2, argv) || !get_array(env, argv[0], "x", napi_float32_array, &x) ||
      !get_double(env, argv[1], "factor", &factor))
    return NULL;
  scale_f32(x.length, x.data, factor);
  return NULL;
}

/* setVectorIsa('auto' | 'baseline'): 'baseline' keeps the AVX2 builds from running (for tests). */
napi_value wb_set_vector_isa(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (!get_args(env, info, "setVectorIsa", 1, argv)) return NULL;
  char name[16] = "";
  size_t len = 0;
  napi_valuetype t = napi_undefined;
  napi_typeof(env, argv[0], &t);
  if (t == napi_string) napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len);
  if (strcmp(name, "auto") != 0 && strcmp(name, "baseline") != 0) {
    wb_fail(env, "isa", "expected 'auto' or 'baseline', got %s", t == napi_string ? "another string" : "a non-string");
    return NULL;
  }
  force_baseline = strcmp(name, "baseline") == 0;
  return NULL;
}

/* getVectorIsa(): 'avx2' or 'baseline', the build of the elementwise loops that runs now. */
napi_value wb_get_vector_isa(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_create_string_utf8(env, run_avx2() ? "avx2" : "baseline", NAPI_AUTO_LENGTH, &r);
  return r;
}
