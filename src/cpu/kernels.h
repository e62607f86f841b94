/* kernels.h — the cpu backend's compute kernels, one table per instruction set.
 *
 * The tiled attention in fwd.c / bwd.c is written once against this table; only these few
 * primitives differ per ISA. arch/scalar.c is the plain-C reference (readable, any machine);
 * arch/avx2.c and arch/avx512.c compile the same SIMD source (kernels.inc) against a small macro
 * layer (arch/simd-avx2.h, arch/simd-avx512.h). The table is chosen once per context from CPUID,
 * or forced with the environment variable MFA_CPU_ISA=scalar|scalar-bf16|avx2|avx512|avx512bf16|amx
 * (for tests). */
#ifndef MFA_CPU_KERNELS_H
#define MFA_CPU_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

typedef struct mfa_cpu_kernels {
    const char *isa; /* "scalar", "avx2", "avx512" */

    /* C[M][N] (+)= A[M][K] . B[K][N]: row-major fp32 with leading dimensions (elements).
     * accumulate = false overwrites C. The register-blocked microkernel of each ISA lives here:
     * every GEMM of the forward and backward (S = Q K^T, O += P V, dP = dO V^T, dQ += dS K,
     * dV += P^T dO, dK += dS^T Q) is this one call. */
    void (*gemm)(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                 float *C, int64_t ldc, bool accumulate);
    /* The microkernel's panel width: gemm reads B in panels of nr columns, so B operands packed
     * once per call (K^T, V) are stored panel by panel, each panel contiguous (cpu.h,
     * mfa_cpu_panels_t). 0: no panels, B stays plain row-major (the scalar table). */
    int64_t nr;

    /* C[i][j] = A[i] . B[j] (dot products of rows, K long) for i < M, j < N: C = A B^T with both
     * operands row-major. The decode forward's S = Q K^T, where M is a few query rows and B the
     * key rows in place: there the register-blocked gemm (one broadcast per element of K)
     * wasted most of its lanes and ran far from the memory bound. */
    void (*dots)(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                 float *C, int64_t ldc);

    /* x[i] = 2^(x[i] * mul - sub) for i < n (0 where x[i] = -inf); returns the sum. The online
     * softmax works in base 2: exp(s - m) = 2^(s*log2e - m*log2e). */
    float (*exp2_sum)(float *x, int64_t n, float mul, float sub);

    /* max_i x[i] (-inf for n = 0) */
    float (*max)(const float *x, int64_t n);

    /* x[i] *= s */
    void (*scale)(float *x, int64_t n, float s);

    /* dst[i] = (float)src[i] for a contiguous run of f32 / f16 / bf16 (MFA_DTYPE_*) */
    void (*to_f32)(float *dst, const void *src, int32_t dtype, int64_t n);

    /* (optional) dst[d * ldd + e] = src[e][d] for e < 8, d < dim: eight rows transposed into
     * runs of eight (packing K^T). NULL: the caller's plain loop. */
    void (*transpose8)(const float *const *src, int64_t dim, float *dst, int64_t ldd);

    /* (optional, NULL without a bf16 dot product) C[M][N] (+)= A[M][K] . B with bf16 operands
     * and fp32 accumulation: A is bf16 rows (lda elements, K even: the dot product takes pairs),
     * B is packed in pairs, Bp[(k/2) * ldp + 2*j + (k%2)] = B[k][j] (ldp >= 2N). Products of
     * bf16 are exact in fp32, so S = Q K^T this way differs from the fp32 GEMM only in the order
     * of the fp32 additions. */
    void (*gemm_bf16)(int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda, const uint16_t *Bp,
                      int64_t ldp, float *C, int64_t ldc, bool accumulate);
    /* (with gemm_bf16) dst[i] = bf16(src[i]), round to nearest even */
    void (*to_bf16)(uint16_t *dst, const float *src, int64_t n);
    /* (with gemm_bf16) out[2i] = bf16(a[i]), out[2i + 1] = bf16(b[i]) for i < n, 0 for b[i]
     * where b is NULL: two rows interleaved into gemm_bf16's B pairs. */
    void (*to_bf16_pairs)(const float *a, const float *b, int64_t n, uint16_t *out);
    /* (optional, with gemm_bf16) exp2_sum's values rounded to bf16 into out[i] (x is left as it
     * was); returns the sum of the unrounded values. NULL: exp2_sum, then to_bf16. */
    float (*exp2_sum_bf16)(const float *x, int64_t n, float mul, float sub, uint16_t *out);
} mfa_cpu_kernels_t;

extern const mfa_cpu_kernels_t mfa_cpu_kernels_scalar;
extern const mfa_cpu_kernels_t mfa_cpu_kernels_avx2;   /* AVX2 + FMA + F16C */
extern const mfa_cpu_kernels_t mfa_cpu_kernels_avx512; /* AVX-512 F/BW/VL */
extern const mfa_cpu_kernels_t mfa_cpu_kernels_avx512bf16; /* + AVX512-BF16 (VDPBF16PS) */
extern const mfa_cpu_kernels_t mfa_cpu_kernels_amx;        /* + AMX-BF16: gemm_bf16 on tiles */
/* The scalar table plus a plain-C gemm_bf16 with the same arithmetic as VDPBF16PS: lets every
 * machine (and CI) test the bf16 data path; MFA_CPU_ISA=scalar-bf16 selects it. */
extern const mfa_cpu_kernels_t mfa_cpu_kernels_scalar_bf16;

/* The best table this CPU runs, or the one MFA_CPU_ISA names (falling back, with *note set,
 * when the CPU cannot run the named one or the name is unknown). */
const mfa_cpu_kernels_t *mfa_cpu_kernels_select(const char **note);

#endif
