/* INNA's and INNAprop's updates, element by element, over arrays of tensors (inna.torch's C loop).
 *
 * inna.torch._cbuild compiles this file once per storage type, with one of -DINNA_FLOAT32, -DINNA_FLOAT64,
 * -DINNA_BFLOAT16 or -DINNA_FLOAT16, and loads it with ctypes; inna.torch._fused calls it once per group of
 * tensors of that dtype, with arrays of data pointers and element counts. Every hyperparameter is a runtime
 * argument: one library per dtype serves every optimizer of the process.
 *
 * Each update performs the operations of its readable reference (inna/torch/functional.py:_single_tensor_inna,
 * inna/torch/innaprop_functional.py:_innaprop_core) in their order, each rounded where eager torch rounds it:
 * float32 and float64 natively; bfloat16 and float16 computed in float32 and rounded to the storage type after
 * every operation (R below). Scalars arrive as doubles, computed by Python exactly as the reference computes
 * them, and are rounded to the compute type where torch rounds a Python scalar. The build uses
 * -ffp-contract=off and no fast-math, so the compiler neither fuses nor reorders. INNA's update is adds,
 * subtractions and multiplications, each correctly rounded here and in torch: the result is bitwise the
 * reference's. INNAprop's adds a square root (correctly rounded here, not always in torch's vectorised kernel)
 * and addcmul (an FMA here and in torch's AVX2/AVX-512 kernels, a multiply then an add in its portable one), so
 * it agrees to a few ulp.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(INNA_FLOAT32)
typedef float storage_t;
typedef float opmath_t;
#define LOAD(x) (x)
#define STORE(x) (x)
#define R(x) (x)
#define SQRT sqrtf
#define FMA fmaf
#elif defined(INNA_FLOAT64)
typedef double storage_t;
typedef double opmath_t;
#define LOAD(x) (x)
#define STORE(x) (x)
#define R(x) (x)
#define SQRT sqrt
#define FMA fma
#elif defined(INNA_BFLOAT16)
typedef uint16_t storage_t;
typedef float opmath_t;
static inline float bf16_to_float(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}
static inline uint16_t float_to_bf16(float f) { /* round to nearest even, as c10::BFloat16 */
  uint32_t u;
  memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0;
  u += 0x7fffu + ((u >> 16) & 1u);
  return (uint16_t)(u >> 16);
}
#define LOAD(x) bf16_to_float(x)
#define STORE(x) float_to_bf16(x)
#define R(x) bf16_to_float(float_to_bf16(x))
#define SQRT sqrtf
#define FMA fmaf
#elif defined(INNA_FLOAT16)
typedef _Float16 storage_t;
typedef float opmath_t;
#define LOAD(x) ((float)(x))
#define STORE(x) ((_Float16)(x))
#define R(x) ((float)(_Float16)(x))
#define SQRT sqrtf
#define FMA fmaf
#else
#error "define one of INNA_FLOAT32, INNA_FLOAT64, INNA_BFLOAT16, INNA_FLOAT16"
#endif

#define INLINE static inline __attribute__((always_inline))

/* Below this many elements in all, one thread: opening a parallel region costs more than it saves. */
#define SERIAL_BELOW 65536

/* ------------------------------------------------------------------------------------------------------------
 * Work split: the elements of all tensors, concatenated, cut into one contiguous range per thread; each thread
 * calls `span` on the part of every tensor that falls in its range.
 * ------------------------------------------------------------------------------------------------------------ */

typedef void (*span_fn)(const void *ctx, int64_t t, int64_t a, int64_t b);

static void for_each_span(int64_t n, const int64_t *numels, int64_t nthreads, span_fn span, const void *ctx) {
  int64_t total = 0;
  for (int64_t t = 0; t < n; t++) total += numels[t];
  if (total < SERIAL_BELOW) nthreads = 1;
#pragma omp parallel num_threads((int)nthreads) if (nthreads > 1)
  {
#ifdef _OPENMP
    const int64_t me = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    const int64_t me = 0, nt = 1;
#endif
    const int64_t lo = total * me / nt, hi = total * (me + 1) / nt;
    int64_t base = 0;
    for (int64_t t = 0; t < n && base < hi; base += numels[t], t++) {
      const int64_t m = numels[t];
      const int64_t a = lo > base ? lo - base : 0, b = hi - base < m ? hi - base : m;
      if (a < b) span(ctx, t, a, b);
    }
  }
}

/* The gradient unscaled by GradScaler's inverse scale, written back unscaled (as the scaler's default route
 * leaves it), with the sign of `maximize` (a multiplication by -1 is exact). */
INLINE opmath_t gradient(storage_t *g, int64_t j, opmath_t inv_scale, opmath_t sign, const int scaled) {
  opmath_t d = LOAD(g[j]);
  if (scaled) {
    d = R(d * inv_scale);
    g[j] = STORE(d);
  }
  return d * sign;
}

/* theta <- theta - lr (phase + beta u);  phase <- (1 - lr alpha) phase + lr (1 - alpha beta) u */
typedef struct {
  opmath_t beta, theta_phase, phase_decay, phase_grad;
} inna_step_t;

INLINE void inna_step_on(opmath_t *x, opmath_t *f, opmath_t u, const inna_step_t *c) {
  *x = R(*x - R(c->theta_phase * R(*f + R(c->beta * u))));
  *f = R(R(*f * c->phase_decay) + R(c->phase_grad * u));
}

INLINE inna_step_t inna_step_of(const double *s) {
  inna_step_t c = {(opmath_t)s[0], (opmath_t)s[1], (opmath_t)s[2], (opmath_t)s[3]};
  return c;
}

/* ------------------------------------------------------------------------------------------------------------
 * INNA: roles (theta, g, phase); scalars {sign, l2, beta, theta_phase, phase_decay, phase_grad}, sign = -1 under
 * maximize.
 * ------------------------------------------------------------------------------------------------------------ */

typedef struct {
  void *const *ptrs;
  opmath_t sign, l2, inv_scale;
  inna_step_t c;
} inna_ctx;

INLINE void inna_span(const inna_ctx *k, int64_t t, int64_t a, int64_t b, const int l2_on, const int scaled) {
  storage_t *restrict p = (storage_t *)k->ptrs[3 * t];
  storage_t *restrict g = (storage_t *)k->ptrs[3 * t + 1];
  storage_t *restrict phase = (storage_t *)k->ptrs[3 * t + 2];
  const opmath_t sign = k->sign, l2 = k->l2, inv_scale = k->inv_scale;
  const inna_step_t c = k->c;
#pragma omp simd
  for (int64_t j = a; j < b; j++) {
    opmath_t x = LOAD(p[j]), f = LOAD(phase[j]);
    opmath_t d = gradient(g, j, inv_scale, sign, scaled);
    if (l2_on) d = R(d + R(l2 * x)); /* g + l2 theta */
    inna_step_on(&x, &f, d, &c);
    p[j] = STORE(x);
    phase[j] = STORE(f);
  }
}

#define INNA_SPAN(name, L2, SCALED) \
  static void name(const void *k, int64_t t, int64_t a, int64_t b) { inna_span(k, t, a, b, L2, SCALED); }
INNA_SPAN(inna_plain, 0, 0)
INNA_SPAN(inna_l2, 1, 0)
INNA_SPAN(inna_scaled, 0, 1)
INNA_SPAN(inna_l2_scaled, 1, 1)

/* Both updates take: n tensors, their element counts, their data pointers (roles of tensor t at ptrs[roles t]),
 * one double per tensor (INNAprop's bias corrections; unused by INNA), the scalars, whether the decay term is on
 * (INNA's L2 term, INNAprop's decoupled decay), GradScaler's grad_scale and found_inf (NULL without them), and the
 * number of threads. Nothing is written when *found_inf != 0. */
void inna_update(int64_t n, const int64_t *numels, void *const *ptrs, const double *per_tensor, const double *s,
                 int decay_on, const float *grad_scale, const float *found_inf, int64_t nthreads) {
  (void)per_tensor;
  if (found_inf && *found_inf != 0.0f) return;
  const int l2_on = decay_on != 0, scaled = grad_scale != 0;
  inna_ctx k = {ptrs, (opmath_t)s[0], (opmath_t)s[1], 1, inna_step_of(s + 2)};
  if (scaled) k.inv_scale = (opmath_t)(float)(1.0 / (double)*grad_scale); /* the scaler's own inverse */
  span_fn spans[2][2] = {{inna_plain, inna_scaled}, {inna_l2, inna_l2_scaled}};
  for_each_span(n, numels, nthreads, spans[l2_on][scaled], &k);
}

/* ------------------------------------------------------------------------------------------------------------
 * INNAprop: roles (theta, g, v, phase); one bias correction 1/sqrt(1 - sigma^t) per tensor; scalars
 * {sign, shift, decay, sigma, one_minus_sigma, eps, beta, theta_phase, phase_decay, phase_grad}, where shift is
 * the decoupled decay's effect on the phase and decay = 1 - lr weight_decay.
 * ------------------------------------------------------------------------------------------------------------ */

typedef struct {
  void *const *ptrs;
  const double *bias_corrections;
  opmath_t sign, shift, decay, sigma, one_minus_sigma, eps, inv_scale;
  inna_step_t c;
} innaprop_ctx;

INLINE void innaprop_span(const innaprop_ctx *k, int64_t t, int64_t a, int64_t b, const int wd_on,
                          const int scaled) {
  storage_t *restrict p = (storage_t *)k->ptrs[4 * t];
  storage_t *restrict g = (storage_t *)k->ptrs[4 * t + 1];
  storage_t *restrict vv = (storage_t *)k->ptrs[4 * t + 2];
  storage_t *restrict phase = (storage_t *)k->ptrs[4 * t + 3];
  const opmath_t sign = k->sign, shift = k->shift, decay = k->decay, sigma = k->sigma;
  const opmath_t one_minus_sigma = k->one_minus_sigma, eps = k->eps, inv_scale = k->inv_scale;
  const opmath_t bc = (opmath_t)k->bias_corrections[t];
  const inna_step_t c = k->c;
#pragma omp simd
  for (int64_t j = a; j < b; j++) {
    opmath_t x = LOAD(p[j]), v = LOAD(vv[j]), f = LOAD(phase[j]);
    opmath_t d = gradient(g, j, inv_scale, sign, scaled);
    if (wd_on) { /* theta <- (1 - lr wd) theta, and the phase of the decayed point */
      f = R(f + R(shift * x));
      x = R(x * decay);
    }
    /* v <- sigma v + (1 - sigma) g^2 (torch's addcmul: an FMA of (1 - sigma) g and g) */
    v = R(FMA(one_minus_sigma * d, d, R(v * sigma)));
    const opmath_t u = R(d / R(R(R(SQRT(v)) * bc) + eps)); /* u = g / (sqrt(v) bc + eps) */
    inna_step_on(&x, &f, u, &c);
    p[j] = STORE(x);
    vv[j] = STORE(v);
    phase[j] = STORE(f);
  }
}

#define INNAPROP_SPAN(name, WD, SCALED) \
  static void name(const void *k, int64_t t, int64_t a, int64_t b) { innaprop_span(k, t, a, b, WD, SCALED); }
INNAPROP_SPAN(innaprop_plain, 0, 0)
INNAPROP_SPAN(innaprop_wd, 1, 0)
INNAPROP_SPAN(innaprop_scaled, 0, 1)
INNAPROP_SPAN(innaprop_wd_scaled, 1, 1)

void innaprop_update(int64_t n, const int64_t *numels, void *const *ptrs, const double *bias_corrections,
                     const double *s, int decay_on, const float *grad_scale, const float *found_inf,
                     int64_t nthreads) {
  if (found_inf && *found_inf != 0.0f) return;
  const int scaled = grad_scale != 0;
  innaprop_ctx k = {ptrs, bias_corrections, (opmath_t)s[0], (opmath_t)s[1], (opmath_t)s[2], (opmath_t)s[3],
                    (opmath_t)s[4], (opmath_t)s[5], 1, inna_step_of(s + 6)};
  if (scaled) k.inv_scale = (opmath_t)(float)(1.0 / (double)*grad_scale);
  span_fn spans[2][2] = {{innaprop_plain, innaprop_scaled}, {innaprop_wd, innaprop_wd_scaled}};
  for_each_span(n, numels, nthreads, spans[decay_on != 0][scaled], &k);
}

/* ------------------------------------------------------------------------------------------------------------
 * Step counters: read n float32 counters (INNAprop's 0-dim state["step"]) into before[] and add 1 to each,
 * unless *skip != 0 (GradScaler's found_inf).
 * ------------------------------------------------------------------------------------------------------------ */

void inna_advance_counters(int64_t n, float *const *counters, double *before, const float *skip) {
  const float inc = (skip && *skip != 0.0f) ? 0.0f : 1.0f;
  for (int64_t i = 0; i < n; i++) {
    before[i] = (double)*counters[i];
    *counters[i] = *counters[i] + inc;
  }
}
