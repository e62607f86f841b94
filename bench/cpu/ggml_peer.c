/* ggml_peer.c — libmfa's cpu forward against ggml's CPU flash attention (ggml_flash_attn_ext), the
 * C peer the CPU issue names, in one process: the same fp32 inputs (one buffer, read by both
 * through their own layout descriptions), the same thread count, calls alternating A B A B so
 * both see the same machine state. Prints one JSON object per (shape, mask) with the median ms
 * of each, GFLOP/s (4·B·H·S²·D, half for causal), the median of the pairwise time ratios and
 * the largest difference between the two outputs (a peer that computes something else is no
 * peer).
 *
 * ggml is not part of this repository: build it yourself (CPU backend, shared libraries) and
 * point the compiler at it, e.g. with GGML the folder of a ggml checkout built into build/:
 *   gcc -O2 -Iinclude -I$GGML/include bench/cpu/ggml_peer.c -o /tmp/ggml_peer -Lbuild -lmfa \
 *       -L$GGML/build/src -lggml -lggml-base -lggml-cpu -lm \
 *       -Wl,-rpath,$PWD/build:$GGML/build/src
 * Run: /tmp/ggml_peer [--threads 2] [--pairs 5]   (the decode shapes run 4x the pairs)
 *
 * Layouts: ggml's q, k, v are [dim, seq, heads] with dim fastest (memory [heads][seq][dim]);
 * libmfa reads that same memory as a strided BHSD tensor. ggml's result is [dim, heads, seq]
 * (memory [seq][heads][dim]), which is libmfa's contiguous BSHD: both write that layout. The
 * causal mask is ggml's additive F16 mask (-inf above the diagonal); ggml skips a key block whose
 * mask is all -inf, as libmfa skips the tiles a causal mask removes. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml-cpu.h"
#include "ggml.h"
#include "mfa.h"

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_double);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

static void fill(float *p, size_t n, unsigned *state) {
    for (size_t i = 0; i < n; i++) {
        *state = *state * 1664525u + 1013904223u;
        p[i] = (float)(*state >> 8) / 8388608.0f - 1.0f; /* [-1, 1) */
    }
}

/* libmfa's view of ggml's [heads][seq][dim] memory: batch 1, BHSD strides. */
static void bhsd(mfa_tensor_t *t, float *data, int64_t seq, int64_t heads, int64_t dim) {
    mfa_tensor_contiguous(t, data, MFA_DTYPE_F32, seq, heads, dim);
    t->stride[0] = heads * seq * dim, t->stride[1] = dim, t->stride[2] = seq * dim, t->stride[3] = 1;
}

enum { MAX_PAIRS = 64 };

static int run_shape(int64_t H, int64_t HKV, int64_t SQ, int64_t S, int64_t D, int causal, int threads, int pairs) {
    const size_t nq = (size_t)(H * SQ * D), n = (size_t)(HKV * S * D);
    const size_t mask_bytes = causal ? (size_t)(SQ * S) * sizeof(ggml_fp16_t) : 0;
    struct ggml_init_params ip = {.mem_size = (2 * nq + 2 * n) * sizeof(float) + mask_bytes + ggml_graph_overhead() +
                                              ((size_t)256 << 20), /* + the work buffer */
                                  .mem_buffer = NULL,
                                  .no_alloc = false};
    struct ggml_context *g = ggml_init(ip);
    if (!g) return fprintf(stderr, "ggml_peer: ggml_init failed\n"), 1;
    struct ggml_tensor *q = ggml_new_tensor_3d(g, GGML_TYPE_F32, D, SQ, H);
    struct ggml_tensor *k = ggml_new_tensor_3d(g, GGML_TYPE_F32, D, S, HKV);
    struct ggml_tensor *v = ggml_new_tensor_3d(g, GGML_TYPE_F32, D, S, HKV);
    struct ggml_tensor *mask = NULL;
    unsigned state = 1234;
    fill(q->data, nq, &state), fill(k->data, n, &state), fill(v->data, n, &state);
    if (causal) {
        mask = ggml_new_tensor_2d(g, GGML_TYPE_F16, S, SQ); /* [n_kv, n_batch]: row i, key j */
        ggml_fp16_t *m = mask->data;
        const ggml_fp16_t zero = ggml_fp32_to_fp16(0.0f), minus_inf = ggml_fp32_to_fp16(-INFINITY);
        for (int64_t i = 0; i < SQ; i++)
            for (int64_t j = 0; j < S; j++) m[i * S + j] = j <= i ? zero : minus_inf;
    }
    const float scale = 1.0f / sqrtf((float)D);
    struct ggml_tensor *out = ggml_flash_attn_ext(g, q, k, v, mask, scale, 0.0f, 0.0f);
    ggml_flash_attn_ext_set_prec(out, GGML_PREC_F32);
    struct ggml_cgraph *gf = ggml_new_graph(g);
    ggml_build_forward_expand(gf, out);

    mfa_context_options_t o;
    mfa_context_options_init(&o);
    o.backend = MFA_BACKEND_CPU, o.num_threads = threads;
    mfa_context_t ctx;
    if (mfa_create_context_ex(&ctx, &o) != MFA_SUCCESS) return fprintf(stderr, "ggml_peer: no mfa context\n"), 1;
    float *o_mfa = malloc(nq * sizeof(float));
    mfa_attention_params_t p;
    mfa_attention_params_init(&p);
    p.batch = 1, p.seqlen_q = SQ, p.seqlen_kv = S, p.heads_q = H, p.heads_kv = HKV, p.head_dim_qk = p.head_dim_v = D;
    p.mask = causal ? MFA_MASK_CAUSAL : MFA_MASK_NONE;
    bhsd(&p.q, q->data, SQ, H, D), bhsd(&p.k, k->data, S, HKV, D), bhsd(&p.v, v->data, S, HKV, D);
    mfa_tensor_contiguous(&p.o, o_mfa, MFA_DTYPE_F32, SQ, H, D); /* [seq][heads][dim], as ggml's result */

    double t_mfa[MAX_PAIRS], t_ggml[MAX_PAIRS], ratio[MAX_PAIRS];
    if (pairs > MAX_PAIRS) pairs = MAX_PAIRS;
    for (int i = -1; i < pairs; i++) { /* i = -1: warm-up of both */
        double t0 = seconds();
        if (mfa_attention_fwd(ctx, &p) != MFA_SUCCESS)
            return fprintf(stderr, "ggml_peer: mfa: %s\n", mfa_last_error_message(ctx)), 1;
        const double t1 = seconds();
        if (ggml_graph_compute_with_ctx(g, gf, threads) != GGML_STATUS_SUCCESS)
            return fprintf(stderr, "ggml_peer: ggml compute failed\n"), 1;
        const double t2 = seconds();
        if (i >= 0) t_mfa[i] = t1 - t0, t_ggml[i] = t2 - t1, ratio[i] = (t2 - t1) / (t1 - t0);
    }
    double max_diff = 0;
    const float *o_ggml = out->data;
    for (size_t i = 0; i < nq; i++) max_diff = fmax(max_diff, fabs((double)o_ggml[i] - (double)o_mfa[i]));

    const double gflop = 4.0 * (double)H * (double)SQ * (double)S * (double)D * (causal ? 0.5 : 1.0) * 1e-9;
    const double ms_mfa = 1e3 * median(t_mfa, pairs), ms_ggml = 1e3 * median(t_ggml, pairs);
    printf("{\"shape\": [1, %lld, %lld, %lld], \"heads_kv\": %lld, \"seqlen_kv\": %lld, \"mask\": \"%s\", \"dtype\": \"f32\", \"threads\": %d, \"pairs\": %d, "
           "\"mfa_ms\": %.3f, \"mfa_gflops\": %.1f, \"ggml_ms\": %.3f, \"ggml_gflops\": %.1f, "
           "\"ggml_over_mfa_time\": %.3f, \"max_abs_diff\": %.3g}\n",
           (long long)H, (long long)SQ, (long long)D, (long long)HKV, (long long)S, causal ? "causal" : "none", threads, pairs, ms_mfa,
           gflop / ms_mfa * 1e3, ms_ggml, gflop / ms_ggml * 1e3, median(ratio, pairs), max_diff);
    fflush(stdout);
    mfa_destroy_context(ctx);
    free(o_mfa);
    ggml_free(g);
    return max_diff > 1e-3; /* both compute softmax(QK^T/sqrt(D))V in fp32: they must agree */
}

int main(int argc, char **argv) {
    int threads = 2, pairs = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--pairs")) pairs = atoi(argv[i + 1]);
    }
    if (pairs < 1) pairs = 1;
    if (pairs > MAX_PAIRS) pairs = MAX_PAIRS;
    ggml_cpu_init();
    const int64_t shapes[][3] = {{8, 2048, 64}, {8, 2048, 128}, {16, 4096, 128}}; /* heads, seq, dim */
    int failed = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int causal = 0; causal < 2; causal++)
            failed |= run_shape(shapes[s][0], shapes[s][0], shapes[s][1], shapes[s][1], shapes[s][2], causal, threads, pairs);
    /* decode: new tokens against a long cache, 32 q heads of 128 (no mask), with 32 kv heads
     * (MHA) or 8 (GQA 4, as Llama 3 8B) */
    const int64_t decode[][2] = {{32, 1}, {32, 16}, {8, 1}, {8, 4}}; /* kv heads, query rows */
    for (size_t s = 0; s < sizeof decode / sizeof decode[0]; s++)
        failed |= run_shape(32, decode[s][0], decode[s][1], 8192, 128, 0, threads, pairs * 4);
    return failed;
}
