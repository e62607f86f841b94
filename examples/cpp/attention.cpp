// attention.cpp — the libmfa example every binding repeats (see examples/c/attention.c), through
// the header-only C++ wrapper include/mfa.hpp: the seed README's program (library buffers, the
// 19-argument forward), then multi-head GQA causal attention with the log-sum-exp on
// std::vectors. Prints the same numbers as the C program; errors arrive as mfa::error.
//
// `attention bench [calls]` times the per-call cost on a tiny shape (batch 1, 1 head, seq 1,
// dim 8, one cpu thread) through the wrapper and through the C call itself, in the same process.
//
// Run: make -C examples/cpp run
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "mfa.hpp"

// The example's inputs: uniform in [-1, 1), the same sequence in every language.
static void fill(float *x, size_t n, uint64_t &state) {
    for (size_t i = 0; i < n; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((state >> 40) & 0xffffff) / 16777216.0f * 2.0f - 1.0f;
    }
}

static void summary(const char *name, const float *x, size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += x[i];
    std::printf("%s[0..4] = %.6f %.6f %.6f %.6f  sum = %.6f\n", name, x[0], x[1], x[2], x[3], sum);
}

// 1. The seed README's example.
static void seed_example() {
    const uint32_t seq_len = 128;
    const uint16_t head_dim = 64;
    const size_t count = (size_t)seq_len * head_dim;
    mfa::context context;
    mfa::buffer q = context.create_buffer(count * 4), k = context.create_buffer(count * 4),
                v = context.create_buffer(count * 4), o = context.create_buffer(count * 4);
    uint64_t rng = 1;
    for (mfa::buffer *b : {&q, &k, &v}) fill(b->as<float>(), count, rng);
    mfa::seed_forward a;
    a.batch_size = 1, a.seq_len_q = a.seq_len_kv = seq_len, a.num_heads = 1, a.head_dim = head_dim;
    a.softmax_scale = 1.0f / std::sqrt((float)head_dim), a.causal = false;
    a.input_precision = a.intermediate_precision = a.output_precision = MFA_PRECISION_FP32;
    context.attention_forward(q, k, v, o, a);
    std::printf("seed example: batch 1, 1 head, seq %u, head_dim %u, fp32\n", seq_len, head_dim);
    summary("  out", o.as<float>(), count);
}

// 2. Multi-head, GQA, causal, with LSE, through mfa::params.
static void multihead_causal() {
    const int64_t batch = 2, seq = 128, heads_q = 8, heads_kv = 2, dim = 64;
    std::vector<float> q((size_t)(batch * seq * heads_q * dim)), k((size_t)(batch * seq * heads_kv * dim));
    std::vector<float> v(k.size()), o(q.size()), lse((size_t)(batch * heads_q * seq));
    uint64_t rng = 2;
    fill(q.data(), q.size(), rng), fill(k.data(), k.size(), rng), fill(v.data(), v.size(), rng);

    mfa::context ctx;
    mfa::params p;
    p.batch = batch, p.seqlen_q = p.seqlen_kv = seq;
    p.heads_q = heads_q, p.heads_kv = heads_kv; // GQA: 4 query heads per kv head
    p.head_dim_qk = p.head_dim_v = dim;
    p.q = mfa::contiguous(q.data(), seq, heads_q, dim); // [batch, seq, heads, dim]
    p.k = mfa::contiguous(k.data(), seq, heads_kv, dim);
    p.v = mfa::contiguous(v.data(), seq, heads_kv, dim);
    p.o = mfa::contiguous(o.data(), seq, heads_q, dim);
    p.lse = lse.data(); // [batch, heads_q, seq]
    p.mask = MFA_MASK_CAUSAL;
    ctx.forward(p);
    std::printf("multi-head causal: batch %d, heads %d/%d (GQA), seq %d, head_dim %d, fp32\n", (int)batch,
                (int)heads_q, (int)heads_kv, (int)seq, (int)dim);
    summary("  out", o.data(), o.size());
    summary("  lse", lse.data(), lse.size());
}

// Per-call cost on a tiny problem through the wrapper (context::forward) and, interleaved on the
// same context, through the C call itself: the best of 10 rounds of `calls` each.
static void bench(long calls) {
    mfa::context ctx(mfa::backend::cpu, 1);
    float q[8], k[8], v[8], o[8];
    uint64_t rng = 3;
    fill(q, 8, rng), fill(k, 8, rng), fill(v, 8, rng);
    mfa::params p;
    p.batch = p.seqlen_q = p.seqlen_kv = p.heads_q = p.heads_kv = 1;
    p.head_dim_qk = p.head_dim_v = 8;
    p.q = mfa::contiguous(q, 1, 1, 8), p.k = mfa::contiguous(k, 1, 1, 8);
    p.v = mfa::contiguous(v, 1, 1, 8), p.o = mfa::contiguous(o, 1, 1, 8);
    double wrapper = INFINITY, direct = INFINITY;
    using clock = std::chrono::steady_clock;
    for (int round = 0; round < 10; round++) {
        auto t0 = clock::now();
        for (long i = 0; i < calls; i++) ctx.forward(p);
        wrapper = std::min(wrapper, std::chrono::duration<double, std::micro>(clock::now() - t0).count() / (double)calls);
        t0 = clock::now();
        for (long i = 0; i < calls; i++)
            if (mfa_attention_fwd(ctx.get(), &p) != MFA_SUCCESS) throw mfa::error(1, "direct call failed");
        direct = std::min(direct, std::chrono::duration<double, std::micro>(clock::now() - t0).count() / (double)calls);
    }
    std::printf("cpp: %.3f us/call; direct C call %.3f us/call; overhead %.3f us (best of 10 x %ld calls each; batch "
                "1, 1 head, seq 1, dim 8, 1 thread)\n",
                wrapper, direct, wrapper - direct, calls);
}

int main(int argc, char **argv) {
    try {
        if (argc > 1 && !std::strcmp(argv[1], "bench")) {
            bench(argc > 2 ? std::atol(argv[2]) : 200000);
            return 0;
        }
        std::printf("libmfa %s\n", mfa::version().c_str());
        seed_example();
        multihead_causal();
    } catch (const mfa::error &e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
