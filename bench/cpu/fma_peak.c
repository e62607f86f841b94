/* fma_peak.c — the machine's fp32 FMA peak, measured: independent FMA chains on every thread,
 * widest vectors the compiler was allowed (-march=native), best of several runs. Prints one
 * JSON object: {"isa": ..., "threads": N, "gflops": X, "gflops_per_thread": Y}.
 * Used by compare.py so that "% of peak" is against this machine, in the same run. */
#define _POSIX_C_SOURCE 200809L
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__AVX512F__)
typedef __m512 vec;
#define LANES 16
#define FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define SET1(x) _mm512_set1_ps(x)
#define FIRST(v) _mm512_cvtss_f32(v)
#define ISA "avx512"
#elif defined(__FMA__)
typedef __m256 vec;
#define LANES 8
#define FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define SET1(x) _mm256_set1_ps(x)
#define FIRST(v) _mm256_cvtss_f32(v)
#define ISA "avx2-fma"
#else
#error "fma_peak needs FMA (compile with -march=native on an x86-64 CPU with FMA)"
#endif

enum { ITERS = 20000000 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* 12 independent chains hide the FMA latency (4-5 cycles) on 2 pipes. */
static void *spin(void *out) {
    vec a0 = SET1(0.1f), a1 = SET1(0.2f), a2 = SET1(0.3f), a3 = SET1(0.4f), a4 = SET1(0.5f), a5 = SET1(0.6f);
    vec a6 = SET1(0.7f), a7 = SET1(0.8f), a8 = SET1(0.9f), a9 = SET1(1.0f), a10 = SET1(1.1f), a11 = SET1(1.2f);
    const vec b = SET1(0.99999f), c = SET1(1e-6f);
    for (long i = 0; i < ITERS; i++) {
        a0 = FMA(a0, b, c), a1 = FMA(a1, b, c), a2 = FMA(a2, b, c), a3 = FMA(a3, b, c);
        a4 = FMA(a4, b, c), a5 = FMA(a5, b, c), a6 = FMA(a6, b, c), a7 = FMA(a7, b, c);
        a8 = FMA(a8, b, c), a9 = FMA(a9, b, c), a10 = FMA(a10, b, c), a11 = FMA(a11, b, c);
    }
    *(float *)out = FIRST(a0) + FIRST(a1) + FIRST(a2) + FIRST(a3) + FIRST(a4) + FIRST(a5) + FIRST(a6) +
                    FIRST(a7) + FIRST(a8) + FIRST(a9) + FIRST(a10) + FIRST(a11);
    return NULL;
}

static double run(int threads) {
    pthread_t tid[256];
    float sink[256];
    double t = now();
    for (int i = 0; i < threads; i++) pthread_create(&tid[i], NULL, spin, &sink[i]);
    for (int i = 0; i < threads; i++) pthread_join(tid[i], NULL);
    t = now() - t;
    return (double)threads * ITERS * 12.0 * LANES * 2.0 / t * 1e-9;
}

int main(int argc, char **argv) {
    const int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (threads < 1 || threads > 256) return 2;
    double best = 0, best1 = 0;
    for (int i = 0; i < 5; i++) {
        const double g = run(threads), g1 = run(1);
        best = g > best ? g : best;
        best1 = g1 > best1 ? g1 : best1;
    }
    printf("{\"isa\": \"%s\", \"threads\": %d, \"gflops\": %.1f, \"gflops_per_thread\": %.1f}\n", ISA, threads, best,
           best1);
    return 0;
}
