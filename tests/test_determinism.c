/* test_determinism.c — the cpu backward gives bitwise the same gradients on every run.
 *
 * The header promises it ("the cpu backend is always deterministic"): dK/dV are owned by one
 * work item each and dQ is summed from per-chunk accumulators in a fixed order, whichever thread
 * ran which item. Run with 1, 2, 3 and 5 threads: with few (batch, kv head) pairs the key range
 * is cut into several chunks, whose count depends on the thread count, so every count is its own
 * check. The inputs: GQA (4 q heads on 1 kv head), a causal mask, seqlen_q 333 / seqlen_kv 517
 * (tails in the query blocks and key tiles), head_dim 40. Each run's outputs are poisoned first. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfa.h"

enum { SQ = 333, SK = 517, HQ = 4, HKV = 1, D = 40, RUNS = 3 };

static float *random_floats(size_t n, unsigned *state) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n && p; i++) {
        *state = *state * 1664525u + 1013904223u;
        p[i] = (float)(*state >> 8) / 4194304.0f - 2.0f;
    }
    return p;
}

static void poison(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = NAN;
}

/* Returns the number of failures for one thread count. */
static int check_threads(int threads) {
    unsigned state = 7;
    const size_t nq = (size_t)SQ * HQ * D, nk = (size_t)SK * HKV * D;
    float *q = random_floats(nq, &state), *k = random_floats(nk, &state), *v = random_floats(nk, &state);
    float *dout = random_floats(nq, &state), *o = malloc(nq * sizeof(float));
    float *lse = malloc((size_t)SQ * HQ * sizeof(float));
    float *grads[RUNS][3] = {{NULL}}; /* dq, dk, dv per run */
    const size_t sizes[3] = {nq, nk, nk};
    int failures = 0;

    mfa_context_options_t opt;
    mfa_context_options_init(&opt);
    opt.backend = MFA_BACKEND_CPU;
    opt.num_threads = threads;
    mfa_context_t ctx;
    if (mfa_create_context_ex(&ctx, &opt) != MFA_SUCCESS) {
        printf("FAIL threads %d: no cpu context\n", threads);
        return 1;
    }
    mfa_attention_params_t p;
    mfa_attention_params_init(&p);
    p.batch = 1, p.seqlen_q = SQ, p.seqlen_kv = SK, p.heads_q = HQ, p.heads_kv = HKV;
    p.head_dim_qk = p.head_dim_v = D;
    p.mask = MFA_MASK_CAUSAL;
    mfa_tensor_contiguous(&p.q, q, MFA_DTYPE_F32, SQ, HQ, D);
    mfa_tensor_contiguous(&p.k, k, MFA_DTYPE_F32, SK, HKV, D);
    mfa_tensor_contiguous(&p.v, v, MFA_DTYPE_F32, SK, HKV, D);
    mfa_tensor_contiguous(&p.o, o, MFA_DTYPE_F32, SQ, HQ, D);
    mfa_tensor_contiguous(&p.dout, dout, MFA_DTYPE_F32, SQ, HQ, D);
    p.lse = lse;
    if (mfa_attention_fwd(ctx, &p) != MFA_SUCCESS) {
        printf("FAIL threads %d: forward: %s\n", threads, mfa_last_error_message(ctx));
        failures++;
    }
    for (int r = 0; r < RUNS && !failures; r++) {
        for (int g = 0; g < 3; g++) grads[r][g] = malloc(sizes[g] * sizeof(float)), poison(grads[r][g], sizes[g]);
        mfa_tensor_contiguous(&p.dq, grads[r][0], MFA_DTYPE_F32, SQ, HQ, D);
        mfa_tensor_contiguous(&p.dk, grads[r][1], MFA_DTYPE_F32, SK, HKV, D);
        mfa_tensor_contiguous(&p.dv, grads[r][2], MFA_DTYPE_F32, SK, HKV, D);
        if (mfa_attention_bwd(ctx, &p) != MFA_SUCCESS) {
            printf("FAIL threads %d: backward: %s\n", threads, mfa_last_error_message(ctx));
            failures++;
            break;
        }
        for (int g = 0; g < 3; g++) {
            size_t nan = 0;
            for (size_t i = 0; i < sizes[g]; i++) nan += isnan(grads[r][g][i]) != 0;
            if (nan) printf("FAIL threads %d run %d: %s has %zu unwritten elements\n", threads, r, "dq\0dk\0dv" + 3 * g,
                            nan), failures++;
            if (r > 0 && memcmp(grads[r][g], grads[0][g], sizes[g] * sizeof(float)))
                printf("FAIL threads %d run %d: %s differs from run 0\n", threads, r, "dq\0dk\0dv" + 3 * g), failures++;
        }
    }
    for (int r = 0; r < RUNS; r++)
        for (int g = 0; g < 3; g++) free(grads[r][g]);
    if (!failures) printf("PASS threads %d: %d backward runs bitwise equal\n", threads, RUNS);
    mfa_destroy_context(ctx);
    free(q), free(k), free(v), free(dout), free(o), free(lse);
    return failures;
}

int main(void) {
    int failures = 0;
    const int threads[] = {1, 2, 3, 5};
    for (size_t i = 0; i < sizeof threads / sizeof threads[0]; i++) failures += check_threads(threads[i]);
    return failures ? 1 : 0;
}
