/* simd-avx2.h — the SIMD macro layer for AVX2 + FMA + F16C: 8 fp32 lanes, 16 registers. */
#include <immintrin.h>
#include <stdint.h>

#define MFA_KERNELS_NAME mfa_cpu_kernels_avx2
#define MFA_ISA "avx2"
#define VW 8 /* lanes */
/* Microkernel 6 rows x 2 vectors: 12 accumulators + 2 B vectors + 1 broadcast = 15 of 16 ymm. */
#ifndef GEMM_MR
#define GEMM_MR 6
#define GEMM_NV 2
#endif

typedef __m256 vec;
#define VLOAD(p) _mm256_loadu_ps(p)
#define VSTORE(p, v) _mm256_storeu_ps(p, v)
#define VSET1(x) _mm256_set1_ps(x)
#define VZERO() _mm256_setzero_ps()
#define VFMA(a, b, c) _mm256_fmadd_ps(a, b, c) /* a * b + c */
#define VMUL(a, b) _mm256_mul_ps(a, b)
#define VADD(a, b) _mm256_add_ps(a, b)
#define VSUB(a, b) _mm256_sub_ps(a, b)
#define VMAX(a, b) _mm256_max_ps(a, b)
#define VMIN(a, b) _mm256_min_ps(a, b)

/* Lanes [0, n) active (n clamped to [0, VW]). */
static inline __m256i tail_mask(int64_t n) {
    const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const int count = n < 0 ? 0 : n > VW ? VW : (int)n;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), iota);
}
#define VLOAD_PART(p, n) _mm256_maskload_ps(p, tail_mask(n))
#define VSTORE_PART(p, v, n) _mm256_maskstore_ps(p, tail_mask(n), v)

static inline float vreduce_add(vec v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float vreduce_max(vec v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 2^n * p for integer-valued n in [-126, 127]: add n to p's exponent field. */
static inline vec vscale2(vec p, vec n) {
    const __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
}
#define VROUND(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
/* x where keep (x >= bound), else 0 */
#define VZERO_BELOW(x, v, bound) _mm256_and_ps(v, _mm256_cmp_ps(x, VSET1(bound), _CMP_GE_OQ))

/* 8 bf16 / f16 values to fp32 */
static inline vec vload_bf16(const uint16_t *p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
static inline vec vload_f16(const uint16_t *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
