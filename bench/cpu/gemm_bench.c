/* gemm_bench.c — the lab bench for the avx2 kernel table on the forward's tile shapes:
 *   - the softmax work of one 64 x 64 score tile (max, then exp2_sum per row), in ns;
 *   - S = Q K^T and O += P V streamed over 4 / 16 / 64 K/V tiles (the last do not fit in L2, as
 *     for seq 2048), with the next tile prefetched as the forward does, B row-major against B in
 *     the microkernel's column panels (median of 9 alternated runs and of their ratios);
 *   - the same two GEMMs with every operand hot in cache, the microkernel's ceiling.
 * It times with the thread's CPU clock (the machine is shared), and it is not a test: nothing
 * here asserts. It compiles the kernel source itself, so an edit to kernels.inc shows here
 * without rebuilding the library.
 *
 * Build (from the repository root):
 *   gcc -O3 -mavx2 -mfma -mf16c -Isrc -Iinclude bench/cpu/gemm_bench.c -o /tmp/gemm_bench -lm
 * Run: /tmp/gemm_bench [head_dim ...]   (default 64 128), or /tmp/gemm_bench softmax */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cpu/arch/avx2.c" /* the avx2 table itself, compiled into this program */

static double thread_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void fill(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return x[n / 2];
}

/* Best GFLOP/s of C[M][N] (+)= A[M][K] B[K][N], `reps` calls per timing. */
static double time_gemm(const mfa_cpu_kernels_t *k, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                        const float *B, int64_t ldb, float *C, int64_t ldc, bool acc) {
    const int reps = 2000;
    double best = 1e30;
    for (int run = 0; run < 7; run++) {
        const double t0 = thread_seconds();
        for (int r = 0; r < reps; r++) k->gemm(M, N, K, A, lda, B, ldb, C, ldc, acc);
        const double t = thread_seconds() - t0;
        best = t < best ? t : best;
    }
    return 2.0 * (double)(M * N * K) * reps / best * 1e-9;
}

/* B as NR-column panels, each [K][NR] contiguous: the gemm called once per panel. */
static void gemm_panels(const mfa_cpu_kernels_t *k, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                        const float *Bp, float *C, int64_t ldc, bool acc) {
    for (int64_t j = 0; j < N; j += NR) k->gemm(M, NR, K, A, lda, Bp + j * K, NR, C + j, ldc, acc);
}

/* The forward's two GEMMs over `tiles` K/V tiles that do not fit in L2 (as for seq 2048), no
 * softmax: what the memory system costs the GEMM. panels: K^T and V stored panel-major. */
static double time_stream(const mfa_cpu_kernels_t *k, int64_t D, int64_t tiles, bool panels) {
    const int64_t BQ = 64, BK = 64;
    float *q = aligned_alloc(64, sizeof(float) * BQ * D), *s = aligned_alloc(64, sizeof(float) * BQ * BK);
    float *o = aligned_alloc(64, sizeof(float) * BQ * D);
    float *kt = aligned_alloc(64, sizeof(float) * tiles * D * BK);
    float *v = aligned_alloc(64, sizeof(float) * tiles * BK * D);
    fill(q, BQ * D), fill(s, BQ * BK), fill(o, BQ * D), fill(kt, tiles * D * BK), fill(v, tiles * BK * D);
    double best = 1e30;
    const int blocks = 16;
    for (int run = 0; run < 2; run++) {
        const double t0 = thread_seconds();
        for (int b = 0; b < blocks; b++)
            for (int64_t t = 0; t < tiles; t++) {
                const float *ktt = kt + t * D * BK, *vt = v + t * BK * D;
                if (t + 1 < tiles) /* as the forward does: the next tile toward L2 */
                    for (int64_t line = 0; line < D * BK / 16; line++) {
                        __builtin_prefetch(ktt + D * BK + line * 16, 0, 2);
                        __builtin_prefetch(vt + BK * D + line * 16, 0, 2);
                    }
                if (panels) {
                    gemm_panels(k, BQ, BK, D, q, D, ktt, s, BK, false);
                    gemm_panels(k, BQ, D, BK, s, BK, vt, o, D, true);
                } else {
                    k->gemm(BQ, BK, D, q, D, ktt, BK, s, BK, false);
                    k->gemm(BQ, D, BK, s, BK, vt, D, o, D, true);
                }
            }
        const double t = thread_seconds() - t0;
        best = t < best ? t : best;
    }
    free(q), free(s), free(o), free(kt), free(v);
    return 4.0 * (double)(BQ * BK * D) * (double)(tiles * blocks) / best * 1e-9;
}

/* The forward's per-row softmax work on one 64 x 64 score tile (max, then exp2 and sum), in
 * nanoseconds per tile, best of several runs. */
static double time_softmax(const mfa_cpu_kernels_t *k) {
    enum { BQ = 64, BK = 64, REPS = 20000 };
    static float s[BQ * BK], x[BQ * BK];
    fill(s, BQ * BK);
    double best = 1e30;
    volatile float sink = 0.0f;
    for (int run = 0; run < 7; run++) {
        const double t0 = thread_seconds();
        for (int rep = 0; rep < REPS; rep++) {
            memcpy(x, s, sizeof x); /* fresh logits: exp2_sum works in place */
            for (int r = 0; r < BQ; r++) {
                const float m = k->max(x + r * BK, BK) * 0.125f;
                sink += k->exp2_sum(x + r * BK, BK, 0.125f, m);
            }
        }
        const double t = thread_seconds() - t0;
        best = t < best ? t : best;
    }
    return best / REPS * 1e9;
}

int main(int argc, char **argv) {
    int64_t dims[8] = {64, 128};
    int nd = 2;
    if (argc > 1 && strcmp(argv[1], "softmax")) {
        nd = 0;
        for (int i = 1; i < argc && nd < 8; i++) dims[nd++] = atoll(argv[i]);
    }
    const mfa_cpu_kernels_t *k = &mfa_cpu_kernels_avx2;
    const int64_t BQ = 64, BK = 64;
    printf("softmax (max + exp2_sum per row) of a 64 x 64 tile: %.0f ns\n", time_softmax(k));
    if (argc > 1 && !strcmp(argv[1], "softmax")) return 0;
    for (int i = 0; i < nd; i++) {
        const int64_t D = dims[i];
        float *q = aligned_alloc(64, sizeof(float) * BQ * D), *kt = aligned_alloc(64, sizeof(float) * D * BK);
        float *s = aligned_alloc(64, sizeof(float) * BQ * BK), *v = aligned_alloc(64, sizeof(float) * BK * D);
        float *o = aligned_alloc(64, sizeof(float) * BQ * D);
        fill(q, BQ * D), fill(kt, D * BK), fill(s, BQ * BK), fill(v, BK * D), fill(o, BQ * D);
        for (int64_t tiles = 4; tiles <= 64; tiles *= 4) {
            double rm[9], pm[9], ratio[9];
            for (int i = 0; i < 9; i++) {
                rm[i] = time_stream(k, D, tiles, false), pm[i] = time_stream(k, D, tiles, true);
                ratio[i] = pm[i] / rm[i];
            }
            printf("   stream %2lld tiles (%5lld KiB): row-major %6.1f  panel-major %6.1f GFLOP/s  ratio %.3f\n",
                   (long long)tiles, (long long)(tiles * 2 * BK * D * 4 / 1024), median(rm, 9), median(pm, 9),
                   median(ratio, 9));
        }
        const double qk = time_gemm(k, BQ, BK, D, q, D, kt, BK, s, BK, false);
        const double pv = time_gemm(k, BQ, D, BK, s, BK, v, D, o, D, true);
        printf("D=%-4lld S=QK^T (64x64x%lld) %6.1f GFLOP/s   O+=PV (64x%lldx64) %6.1f GFLOP/s\n", (long long)D,
               (long long)D, qk, (long long)D, pv);
        free(q), free(kt), free(s), free(v), free(o);
    }
    return 0;
}
