/* attention.c — the libmfa example every binding repeats (examples/{c,cpp,rust,go,zig}).
 *
 * 1. The seed README's program, unchanged API: a context, four library buffers (seq 128,
 *    head_dim 64, one batch, one head), the 19-argument mfa_attention_forward in FP32.
 * 2. The full API: batch 2, 8 query heads over 2 kv heads (GQA), seq 128, head_dim 64, causal,
 *    with the log-sum-exp, on caller-owned arrays.
 * Inputs come from one small LCG so every language prints the same numbers; .ci/bindings diffs
 * the outputs of all five programs.
 *
 * `attention bench [calls]` instead times the per-call cost on a tiny shape (batch 1, 1 head,
 * seq 1, dim 8, one cpu thread): the baseline the bindings' overhead is measured against.
 *
 * Run: make -C examples/c run      (builds build/libmfa.so first if it is missing)
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mfa.h"

/* The example's inputs: uniform in [-1, 1), the same sequence in every language. */
static float next_uniform(uint64_t *state) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((*state >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
}

static void fill(float *x, size_t n, uint64_t *state) {
    for (size_t i = 0; i < n; i++) x[i] = next_uniform(state);
}

static void summary(const char *name, const float *x, size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += x[i];
    printf("%s[0..4] = %.6f %.6f %.6f %.6f  sum = %.6f\n", name, x[0], x[1], x[2], x[3], sum);
}

static int fail(mfa_context_t ctx, mfa_error_t err, const char *what) {
    fprintf(stderr, "%s: %s: %s\n", what, mfa_error_string(err), mfa_last_error_message(ctx));
    mfa_destroy_context(ctx);
    return 1;
}

/* 1. The seed README's example. */
static int seed_example(void) {
    const uint32_t seq_len = 128;
    const uint16_t head_dim = 64;
    const size_t count = (size_t)seq_len * head_dim, buffer_size = count * sizeof(float);

    mfa_context_t context;
    mfa_error_t err = mfa_create_context(&context);
    if (err) return fail(NULL, err, "mfa_create_context");

    mfa_buffer_t q_buffer, k_buffer, v_buffer, o_buffer;
    mfa_buffer_t *buffers[4] = {&q_buffer, &k_buffer, &v_buffer, &o_buffer};
    for (int i = 0; i < 4; i++)
        if ((err = mfa_create_buffer(context, buffer_size, buffers[i]))) return fail(context, err, "mfa_create_buffer");
    uint64_t rng = 1;
    for (int i = 0; i < 3; i++) fill(mfa_buffer_contents(*buffers[i]), count, &rng);

    err = mfa_attention_forward(context, q_buffer, k_buffer, v_buffer, o_buffer, 1, seq_len, seq_len, 1, head_dim,
                                1.0f / sqrtf(head_dim), false, 2, 2, 2, /* FP32 precision */
                                false, false, false, false);
    if (err) return fail(context, err, "mfa_attention_forward");
    printf("seed example: batch 1, 1 head, seq %u, head_dim %u, fp32\n", seq_len, head_dim);
    summary("  out", mfa_buffer_contents(o_buffer), count);
    mfa_destroy_context(context); /* frees the four buffers too */
    return 0;
}

/* 2. Multi-head, GQA, causal, with LSE, through the params struct. */
static int multihead_causal(void) {
    enum { BATCH = 2, SEQ = 128, HEADS_Q = 8, HEADS_KV = 2, DIM = 64 };
    const size_t nq = (size_t)BATCH * SEQ * HEADS_Q * DIM, nkv = (size_t)BATCH * SEQ * HEADS_KV * DIM;
    float *q = malloc(nq * 4), *k = malloc(nkv * 4), *v = malloc(nkv * 4), *o = malloc(nq * 4);
    float *lse = malloc((size_t)BATCH * HEADS_Q * SEQ * 4);
    uint64_t rng = 2;
    fill(q, nq, &rng), fill(k, nkv, &rng), fill(v, nkv, &rng);

    mfa_context_t ctx;
    mfa_error_t err = mfa_create_context(&ctx);
    if (err) return fail(NULL, err, "mfa_create_context");
    mfa_attention_params_t p;
    mfa_attention_params_init(&p);
    p.batch = BATCH, p.seqlen_q = p.seqlen_kv = SEQ;
    p.heads_q = HEADS_Q, p.heads_kv = HEADS_KV;
    p.head_dim_qk = p.head_dim_v = DIM;
    mfa_tensor_contiguous(&p.q, q, MFA_DTYPE_F32, SEQ, HEADS_Q, DIM); /* [batch, seq, heads, dim] */
    mfa_tensor_contiguous(&p.k, k, MFA_DTYPE_F32, SEQ, HEADS_KV, DIM);
    mfa_tensor_contiguous(&p.v, v, MFA_DTYPE_F32, SEQ, HEADS_KV, DIM);
    mfa_tensor_contiguous(&p.o, o, MFA_DTYPE_F32, SEQ, HEADS_Q, DIM);
    p.lse = lse; /* [batch, heads_q, seq] */
    p.mask = MFA_MASK_CAUSAL;
    if ((err = mfa_attention_fwd(ctx, &p))) return fail(ctx, err, "mfa_attention_fwd");
    printf("multi-head causal: batch %d, heads %d/%d (GQA), seq %d, head_dim %d, fp32\n", BATCH, HEADS_Q,
           HEADS_KV, SEQ, DIM);
    summary("  out", o, nq);
    summary("  lse", lse, (size_t)BATCH * HEADS_Q * SEQ);
    mfa_destroy_context(ctx);
    free(q), free(k), free(v), free(o), free(lse);
    return 0;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Per-call cost of mfa_attention_fwd on a tiny problem: the best of 5 rounds of `calls`. */
static int bench(long calls) {
    mfa_context_options_t opt;
    mfa_context_options_init(&opt);
    opt.backend = MFA_BACKEND_CPU;
    opt.num_threads = 1;
    mfa_context_t ctx;
    mfa_error_t err = mfa_create_context_ex(&ctx, &opt);
    if (err) return fail(NULL, err, "mfa_create_context_ex");
    float q[8], k[8], v[8], o[8];
    uint64_t rng = 3;
    fill(q, 8, &rng), fill(k, 8, &rng), fill(v, 8, &rng);
    mfa_attention_params_t p;
    mfa_attention_params_init(&p);
    p.batch = p.seqlen_q = p.seqlen_kv = p.heads_q = p.heads_kv = 1;
    p.head_dim_qk = p.head_dim_v = 8;
    mfa_tensor_contiguous(&p.q, q, MFA_DTYPE_F32, 1, 1, 8);
    mfa_tensor_contiguous(&p.k, k, MFA_DTYPE_F32, 1, 1, 8);
    mfa_tensor_contiguous(&p.v, v, MFA_DTYPE_F32, 1, 1, 8);
    mfa_tensor_contiguous(&p.o, o, MFA_DTYPE_F32, 1, 1, 8);
    double best = INFINITY;
    for (int round = 0; round < 5; round++) {
        const double t0 = now_seconds();
        for (long i = 0; i < calls; i++)
            if ((err = mfa_attention_fwd(ctx, &p))) return fail(ctx, err, "mfa_attention_fwd");
        const double us = (now_seconds() - t0) / (double)calls * 1e6;
        if (us < best) best = us;
    }
    printf("c: %.3f us/call (best of 5 x %ld calls; batch 1, 1 head, seq 1, dim 8, 1 thread)\n", best, calls);
    mfa_destroy_context(ctx);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "bench")) return bench(argc > 2 ? atol(argv[2]) : 200000);
    int major, minor, patch;
    mfa_get_version(&major, &minor, &patch);
    printf("libmfa %d.%d.%d\n", major, minor, patch);
    return seed_example() || multihead_causal();
}
