/* simd-avx512.h — the SIMD macro layer for AVX-512 F/BW/VL: 16 fp32 lanes, 32 registers. */
#include <immintrin.h>
#include <stdint.h>

#ifndef MFA_KERNELS_NAME
#define MFA_KERNELS_NAME mfa_cpu_kernels_avx512
#define MFA_ISA "avx512"
#endif
#define VW 16
/* Microkernel 12 rows x 2 vectors: 24 accumulators + 2 B vectors + 1 broadcast = 27 of 32 zmm. */
#define GEMM_MR 12
#define GEMM_NV 2

typedef __m512 vec;
#define VLOAD(p) _mm512_loadu_ps(p)
#define VSTORE(p, v) _mm512_storeu_ps(p, v)
#define VSET1(x) _mm512_set1_ps(x)
#define VZERO() _mm512_setzero_ps()
#define VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VMUL(a, b) _mm512_mul_ps(a, b)
#define VADD(a, b) _mm512_add_ps(a, b)
#define VSUB(a, b) _mm512_sub_ps(a, b)
#define VMAX(a, b) _mm512_max_ps(a, b)
#define VMIN(a, b) _mm512_min_ps(a, b)

static inline __mmask16 tail_mask(int64_t n) {
    return n <= 0 ? 0 : n >= VW ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
}
#define VLOAD_PART(p, n) _mm512_maskz_loadu_ps(tail_mask(n), p)
#define VSTORE_PART(p, v, n) _mm512_mask_storeu_ps(p, tail_mask(n), v)

static inline float vreduce_add(vec v) { return _mm512_reduce_add_ps(v); }
static inline float vreduce_max(vec v) { return _mm512_reduce_max_ps(v); }

static inline vec vscale2(vec p, vec n) { return _mm512_scalef_ps(p, n); }
#define VROUND(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define VZERO_BELOW(x, v, bound) _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, VSET1(bound), _CMP_GE_OQ), v)

static inline vec vload_bf16(const uint16_t *p) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
static inline vec vload_f16(const uint16_t *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
