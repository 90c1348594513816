/*
 * exp and erf in plain float arithmetic (no libm, no branches), so loops over
 * them vectorise and give the same bytes on every machine and vector width
 * (build without FMA contraction: the addon is compiled for baseline x86-64).
 */
#ifndef WASM_BLAS_FASTMATH_H
#define WASM_BLAS_FASTMATH_H

#include <stdint.h>

/*
 * AVX-512, AVX2 and baseline builds of a loop, picked at load time; all give the same bytes: no FMA
 * (-ffp-contract=off), elementwise IEEE operations, and every sum over fixed lanes written out.
 */
#if defined(__x86_64__) && defined(__GNUC__)
#define WB_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define WB_CLONES
#endif

/* exp(x) for x <= 0 (softmax arguments), |rel err| < 2e-7; 0 below -87.3. Cephes expf. */
static inline float wb_exp_nonpos(float x) {
  const float lo = -87.3365447505531f;
  const float xc = x < lo ? lo : x;
  /* n = round(xc / ln 2) by the 1.5 * 2^23 trick (no int conversion); its low bits are n + 2^22 + 2^23. */
  const float shifted = xc * 1.44269504088896341f + 12582912.0f;
  const float n = shifted - 12582912.0f;
  union { float f; int32_t i; } nb = {shifted};
  const int32_t ni = nb.i - 0x4B400000;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  const float z = r * r;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * z + r + 1.0f;
  union { int32_t i; float f; } pow2;
  pow2.i = (ni + 127) << 23;
  const float e = y * pow2.f;
  return x < lo ? 0.0f : e;
}

/*
 * erf(x), absolute error < 2e-7: Eigen's / TensorFlow's rational approximation
 * on [-4, 4] (erf is +-1 in float32 beyond).
 */
static inline float wb_erf(float x) {
  const float xc = x > 4.0f ? 4.0f : (x < -4.0f ? -4.0f : x);
  const float x2 = xc * xc;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 + -2.10102402082508e-06f;
  p = p * x2 + -5.69250639462346e-05f;
  p = p * x2 + -7.34990630326855e-04f;
  p = p * x2 + -2.95459980854025e-03f;
  p = p * x2 + -1.60960333262415e-02f;
  p = p * xc;
  float q = -1.45660718464996e-05f;
  q = q * x2 + -2.13374055278905e-04f;
  q = q * x2 + -1.68282697438203e-03f;
  q = q * x2 + -7.37332916720468e-03f;
  q = q * x2 + -1.42647390514189e-02f;
  return p / q;
}

#endif
