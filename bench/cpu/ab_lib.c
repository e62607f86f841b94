/* ab_lib.c — A/B timing of two builds of libmfa inside one process, for a shared, noisy
 * machine: both libraries are dlopen'ed side by side and their calls alternate A B A B ... on
 * the same tensors, so both see the same machine state; it prints the median ms of each and the
 * median of the pairwise ratios (B time / A time: > 1 means A is faster) with its spread.
 * Time is wall time; with --threads 1 it is also the calling thread's CPU time (the library runs
 * one thread on the caller), which other processes' load does not inflate.
 *
 * Build: gcc -O2 -Iinclude bench/cpu/ab_lib.c -o /tmp/ab_lib -ldl -lm
 * Run:   /tmp/ab_lib A/libmfa.so B/libmfa.so [--seq 2048] [--dim 128] [--heads 8] [--causal]
 *                    [--window LEFT] (causal sliding window: keys i - LEFT .. i)
 *                    [--bhsd] (every tensor [1, heads, seq, dim], torch's layout; default BSHD)
 *                    [--bwd] [--threads 1] [--pairs 15] [--bf16] (every tensor bf16)
 *                    [--bf16-b] (B runs the same values in bf16 while A runs fp32: the target
 *                    "bf16 inputs >= 1.5x the fp32 throughput", measured alternating)
 *                    [--seq-q N --heads-kv N] (decode shapes: N query rows against --seq keys,
 *                    forward, no mask; GQA with fewer kv heads)
 *                    [--causal-b] (B runs causal while A runs the full mask: the causal
 *                    target "GFLOP/s over the visited half within 10% of full", measured with
 *                    the two alternating; A and B may then be the same library)
 *                    [--window-b LEFT] (B runs the causal sliding window of LEFT keys while A
 *                    runs the full mask: the window target "time <= 1.3 x (LEFT / seq) x full
 *                    time", measured alternating)
 * Copy one of two libraries of the same path elsewhere first: dlopen loads a path once. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mfa.h"

typedef struct {
    void (*params_init)(mfa_attention_params_t *);
    void (*options_init)(mfa_context_options_t *);
    mfa_error_t (*create)(mfa_context_t *, const mfa_context_options_t *);
    mfa_error_t (*fwd)(mfa_context_t, const mfa_attention_params_t *);
    mfa_error_t (*bwd)(mfa_context_t, const mfa_attention_params_t *);
    const char *(*describe)(mfa_context_t);
    mfa_context_t ctx;
} lib_t;

static void (*tensor_contiguous)(mfa_tensor_t *, void *, int32_t, int64_t, int64_t, int64_t);

static int open_lib(const char *path, int threads, lib_t *l) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (!h) return fprintf(stderr, "ab_lib: %s\n", dlerror()), -1;
    *(void **)&l->params_init = dlsym(h, "mfa_attention_params_init");
    *(void **)&l->options_init = dlsym(h, "mfa_context_options_init");
    *(void **)&l->create = dlsym(h, "mfa_create_context_ex");
    *(void **)&l->fwd = dlsym(h, "mfa_attention_fwd");
    *(void **)&l->bwd = dlsym(h, "mfa_attention_bwd");
    *(void **)&l->describe = dlsym(h, "mfa_context_description");
    *(void **)&tensor_contiguous = dlsym(h, "mfa_tensor_contiguous");
    mfa_context_options_t o;
    l->options_init(&o);
    o.backend = MFA_BACKEND_CPU;
    o.num_threads = threads;
    return l->create(&l->ctx, &o) == MFA_SUCCESS ? 0 : -1;
}

static double seconds(clockid_t clock) {
    struct timespec t;
    clock_gettime(clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *x, int n) {
    double s[256];
    memcpy(s, x, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof s[0], cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static int32_t dtype = MFA_DTYPE_F32; /* --bf16: every tensor bf16 (the LSE stays fp32) */
static int bhsd;                      /* --bhsd: [1, heads, seq, dim] (torch's SDPA layout), not BSHD */

/* contiguous [1, seq, heads, dim] (or [1, heads, seq, dim] with --bhsd) of `dtype`, uniform in [-2, 2) from a fixed LCG (bf16: the
 * fp32 value's upper half, which is exact for these values' 8-bit mantissas often enough) */
static void *tensor(mfa_tensor_t *t, int64_t seq, int64_t heads, int64_t dim, unsigned *state) {
    const size_t n = (size_t)(seq * heads * dim);
    float *p = malloc(n * sizeof(float));
    uint16_t *h = (uint16_t *)p;
    for (size_t i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        const float x = (float)(*state >> 8) / 4194304.0f - 2.0f;
        if (dtype == MFA_DTYPE_BF16) {
            uint32_t u;
            memcpy(&u, &x, sizeof u);
            h[i] = (uint16_t)(u >> 16);
        } else {
            p[i] = x;
        }
    }
    tensor_contiguous(t, p, dtype, seq, heads, dim);
    if (bhsd) t->stride[1] = dim, t->stride[2] = seq * dim;
    return p;
}

/* A decode shape (forward, no mask): sq query rows of `heads` q heads against sk keys of hkv kv
 * heads, both libraries alternating; prints the median ms of each and of the pairwise ratios. */
static int decode(lib_t *lib, int64_t sq, int64_t sk, int64_t heads, int64_t hkv, int64_t dim, int pairs,
                  int threads) {
    unsigned state = 42;
    mfa_attention_params_t p;
    lib[0].params_init(&p);
    p.batch = 1, p.seqlen_q = sq, p.seqlen_kv = sk, p.heads_q = heads, p.heads_kv = hkv;
    p.head_dim_qk = p.head_dim_v = dim;
    tensor(&p.q, sq, heads, dim, &state), tensor(&p.k, sk, hkv, dim, &state); /* freed at exit */
    tensor(&p.v, sk, hkv, dim, &state), tensor(&p.o, sq, heads, dim, &state);
    double t[2][256], ratio[256];
    for (int i = -1; i < pairs; i++)
        for (int s = 0; s < 2; s++) {
            const double w0 = seconds(CLOCK_MONOTONIC);
            if (lib[s].fwd(lib[s].ctx, &p)) return fprintf(stderr, "ab_lib: call failed\n"), 1;
            if (i >= 0) t[s][i] = seconds(CLOCK_MONOTONIC) - w0;
            if (i >= 0 && s == 1) ratio[i] = t[1][i] / t[0][i];
        }
    printf("decode: %lld query rows x %lld q heads (%lld kv) against %lld keys, dim %lld, %d thread(s), %d pairs\n",
           (long long)sq, (long long)heads, (long long)hkv, (long long)sk, (long long)dim, threads, pairs);
    printf("  wall: A %.2f ms  B %.2f ms  speedup B/A %.3f\n", 1e3 * median(t[0], pairs), 1e3 * median(t[1], pairs),
           median(ratio, pairs));
    return 0;
}

/* (query, key) pairs a causal sliding window of `left` keys visits at seq x seq */
static double window_pairs(int64_t seq, int64_t left) {
    double pairs = 0;
    for (int64_t i = 0; i < seq; i++) pairs += (double)(i < left ? i + 1 : left + 1);
    return pairs;
}

int main(int argc, char **argv) {
    if (argc < 3) return fprintf(stderr, "usage: ab_lib A.so B.so [options] (see the top of ab_lib.c)\n"), 2;
    int64_t seq = 2048, dim = 128, heads = 8, seq_q = 0, heads_kv = 0;
    int threads = 1, pairs = 15, causal = 0, bwd = 0, causal_b = 0, bf16_b = 0;
    int64_t window = -1, window_b = -1;
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "0";
        if (!strcmp(a, "--causal")) causal = 1;
        else if (!strcmp(a, "--bwd")) bwd = 1;
        else if (!strcmp(a, "--causal-b")) causal_b = 1;
        else if (!strcmp(a, "--bf16")) dtype = MFA_DTYPE_BF16;
        else if (!strcmp(a, "--bf16-b")) bf16_b = 1;
        else if (!strcmp(a, "--bhsd")) bhsd = 1;
        else if (!strcmp(a, "--seq")) seq = atoll(v), i++;
        else if (!strcmp(a, "--seq-q")) seq_q = atoll(v), i++;
        else if (!strcmp(a, "--heads-kv")) heads_kv = atoll(v), i++;
        else if (!strcmp(a, "--window")) window = atoll(v), i++;
        else if (!strcmp(a, "--window-b")) window_b = atoll(v), i++;
        else if (!strcmp(a, "--dim")) dim = atoll(v), i++;
        else if (!strcmp(a, "--heads")) heads = atoll(v), i++;
        else if (!strcmp(a, "--threads")) threads = atoi(v), i++;
        else if (!strcmp(a, "--pairs")) pairs = atoi(v), i++;
    }
    if (pairs > 256) pairs = 256;
    lib_t lib[2];
    for (int s = 0; s < 2; s++)
        if (open_lib(argv[1 + s], threads, &lib[s])) return 1;
    unsigned state = 42;
    mfa_attention_params_t p;
    lib[0].params_init(&p);
    if (seq_q > 0) return decode(lib, seq_q, seq, heads, heads_kv > 0 ? heads_kv : heads, dim, pairs, threads);
    p.batch = 1, p.seqlen_q = p.seqlen_kv = seq, p.heads_q = p.heads_kv = heads;
    p.head_dim_qk = p.head_dim_v = dim;
    p.mask = causal ? MFA_MASK_CAUSAL : MFA_MASK_NONE;
    if (window >= 0) p.mask = MFA_MASK_WINDOW, p.window_left = window, p.window_right = 0;
    mfa_attention_params_t pb = p; /* B's call: the same, or causal / window / bf16 with --*-b */
    for (int s = 0; s < 1 + bf16_b; s++) { /* --bf16-b: B's tensors are the same values in bf16 */
        mfa_attention_params_t *ps = s ? &pb : &p;
        if (s) dtype = MFA_DTYPE_BF16, state = 42;
        tensor(&ps->q, seq, heads, dim, &state), tensor(&ps->k, seq, heads, dim, &state); /* freed at exit */
        tensor(&ps->v, seq, heads, dim, &state), tensor(&ps->o, seq, heads, dim, &state);
        if (bwd) { /* the backward's inputs: o and lse from one forward */
            ps->lse = malloc(sizeof(float) * (size_t)(heads * seq));
            tensor(&ps->dout, seq, heads, dim, &state), tensor(&ps->dq, seq, heads, dim, &state);
            tensor(&ps->dk, seq, heads, dim, &state), tensor(&ps->dv, seq, heads, dim, &state);
            if (lib[s].fwd(lib[s].ctx, ps)) return fprintf(stderr, "ab_lib: forward failed\n"), 1;
        }
        if (!bf16_b) pb = p;
    }
    double pairs_visited = causal ? 0.5 * (double)seq * (double)(seq + 1) : (double)seq * (double)seq;
    if (window >= 0) pairs_visited = window_pairs(seq, window);
    const double flop_per_pair = (bwd ? 10.0 : 4.0) * (double)heads * (double)dim * 1e-9;
    const double gflop = flop_per_pair * pairs_visited;
    double gflop_b = gflop;
    if (causal_b) pb.mask = MFA_MASK_CAUSAL, gflop_b = flop_per_pair * 0.5 * (double)seq * (double)(seq + 1);
    if (window_b >= 0)
        pb.mask = MFA_MASK_WINDOW, pb.window_left = window_b, pb.window_right = 0,
        gflop_b = flop_per_pair * window_pairs(seq, window_b);
    double wall[2][256], cpu[2][256], ratio_wall[256], ratio_cpu[256];
    for (int i = -1; i < pairs; i++) { /* i = -1: warm-up */
        for (int s = 0; s < 2; s++) {
            const double w0 = seconds(CLOCK_MONOTONIC), c0 = seconds(CLOCK_THREAD_CPUTIME_ID);
            const mfa_attention_params_t *ps = s ? &pb : &p;
            const mfa_error_t e = bwd ? lib[s].bwd(lib[s].ctx, ps) : lib[s].fwd(lib[s].ctx, ps);
            const double c1 = seconds(CLOCK_THREAD_CPUTIME_ID), w1 = seconds(CLOCK_MONOTONIC);
            if (e) return fprintf(stderr, "ab_lib: call failed (%d)\n", e), 1;
            if (i >= 0) wall[s][i] = w1 - w0, cpu[s][i] = c1 - c0;
        }
        if (i >= 0) ratio_wall[i] = wall[1][i] / wall[0][i], ratio_cpu[i] = cpu[1][i] / cpu[0][i];
    }
    double lo = 1e9, hi = 0;
    for (int i = 0; i < pairs; i++) lo = fmin(lo, ratio_wall[i]), hi = fmax(hi, ratio_wall[i]);
    printf("seq %lld dim %lld heads %lld %s %s %s, %d thread(s), %d pairs  [%s]\n", (long long)seq, (long long)dim,
           (long long)heads, window >= 0 ? "window" : causal ? "causal" : "full", bwd ? "bwd" : "fwd",
           bf16_b ? "f32 (A) vs bf16 (B)" : dtype == MFA_DTYPE_BF16 ? "bf16" : "f32", threads, pairs,
           lib[0].describe(lib[0].ctx));
    printf("  wall: A %.2f ms (%.1f GFLOP/s)  B %.2f ms (%.1f GFLOP/s)  speedup B/A %.3f [%.3f, %.3f]\n",
           1e3 * median(wall[0], pairs), gflop / median(wall[0], pairs), 1e3 * median(wall[1], pairs),
           gflop_b / median(wall[1], pairs), median(ratio_wall, pairs), lo, hi);
    if (threads == 1)
        printf("  cpu:  A %.1f GFLOP/s  B %.1f GFLOP/s  speedup %.3f\n", gflop / median(cpu[0], pairs),
               gflop_b / median(cpu[1], pairs), median(ratio_cpu, pairs));
    if (bf16_b) printf("  bf16 B / fp32 A, GFLOP/s: %.3f (target 1.5)\n", 1.0 / median(ratio_wall, pairs));
    if (causal_b) /* per pair: B's GFLOP/s over A's */
        printf("  causal B / full A, GFLOP/s: %.3f\n", gflop_b / gflop / median(ratio_wall, pairs));
    if (window_b >= 0)
        printf("  window B / full A, time: %.4f (limit 1.3 x %lld / %lld = %.4f)\n", median(ratio_wall, pairs),
               (long long)window_b, (long long)seq, 1.3 * (double)window_b / (double)seq);
    return 0;
}
