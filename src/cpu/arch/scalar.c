/* scalar.c — the plain-C kernels: the readable reference for every SIMD table, and the path
 * for machines without AVX2. Loops are written so the compiler can vectorise them anyway. */
#include <math.h>
#include <string.h>

#include "../../dtype.h"
#include "../kernels.h"

static void gemm(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb,
                 float *C, int64_t ldc, bool accumulate) {
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (!accumulate) memset(c, 0, sizeof(float) * (size_t)N);
        for (int64_t k = 0; k < K; k++) {
            const float a = A[i * lda + k];
            const float *b = B + k * ldb;
            for (int64_t j = 0; j < N; j++) c[j] += a * b[j];
        }
    }
}

static void dots(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
                 int64_t ldc) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            float sum = 0.0f;
            for (int64_t k = 0; k < K; k++) sum += A[i * lda + k] * B[j * ldb + k];
            C[i * ldc + j] = sum;
        }
}

static float exp2_sum(float *x, int64_t n, float mul, float sub) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        x[i] = x[i] == -INFINITY ? 0.0f : exp2f(x[i] * mul - sub);
        sum += x[i];
    }
    return sum;
}

static float max(const float *x, int64_t n) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

static void scale(float *x, int64_t n, float s) {
    for (int64_t i = 0; i < n; i++) x[i] *= s;
}

static void to_f32(float *dst, const void *src, int32_t dtype, int64_t n) {
    if (dtype == MFA_DTYPE_F32) memcpy(dst, src, sizeof(float) * (size_t)n);
    else
        for (int64_t i = 0; i < n; i++) dst[i] = mfa_load(src, dtype, i);
}

const mfa_cpu_kernels_t mfa_cpu_kernels_scalar = {
    .isa = "scalar", .gemm = gemm, .nr = 0 /* plain row-major B */, .dots = dots, .exp2_sum = exp2_sum, .max = max,
    .scale = scale, .to_f32 = to_f32,
};

/* VDPBF16PS's arithmetic: each pair a0*b0 + a1*b1 of bf16 products (exact in fp32) is added to
 * the fp32 accumulator. */
static void gemm_bf16(int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda, const uint16_t *Bp,
                      int64_t ldp, float *C, int64_t ldc, bool accumulate) {
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (!accumulate) memset(c, 0, sizeof(float) * (size_t)N);
        for (int64_t k = 0; k < K; k += 2) {
            const float a0 = mfa_bf16_to_f32(A[i * lda + k]), a1 = mfa_bf16_to_f32(A[i * lda + k + 1]);
            const uint16_t *b = Bp + (k / 2) * ldp;
            for (int64_t j = 0; j < N; j++)
                c[j] += a0 * mfa_bf16_to_f32(b[2 * j]) + a1 * mfa_bf16_to_f32(b[2 * j + 1]);
        }
    }
}

static void to_bf16(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) dst[i] = mfa_f32_to_bf16(src[i]);
}

static void to_bf16_pairs(const float *a, const float *b, int64_t n, uint16_t *out) {
    for (int64_t i = 0; i < n; i++) out[2 * i] = mfa_f32_to_bf16(a[i]), out[2 * i + 1] = b ? mfa_f32_to_bf16(b[i]) : 0;
}

const mfa_cpu_kernels_t mfa_cpu_kernels_scalar_bf16 = {
    .isa = "scalar-bf16", .gemm = gemm, .nr = 0, .dots = dots, .exp2_sum = exp2_sum, .max = max, .scale = scale, .to_f32 = to_f32,
    .gemm_bf16 = gemm_bf16, .to_bf16 = to_bf16, .to_bf16_pairs = to_bf16_pairs,
};
