/* reference.c — the "reference" backend: naive attention in float64, the oracle for every test.
 *
 * What this is: the definition of what libmfa computes, written as plainly as the math. For each
 * query row it forms the row of scores, takes an exact softmax in double, and sums; the backward
 * recomputes the same row and applies the textbook gradient. Everything (mask semantics, tensor
 * offsets, element conversions) goes through the shared helpers of problem.h and dtype.h, so a
 * backend that disagrees with this file disagrees with the spec, not with a second reading of it.
 *
 * What this is not: fast, tiled, threaded or vectorised. It never materialises the full
 * seqlen_q x seqlen_kv matrix either, but only because one row at a time is the simplest exact
 * scheme. It does not validate (the core did) and it never prints.
 *
 * Deliberate choices, each for exactness:
 *   - All arithmetic is in double; inputs are widened from their dtype on load, and results are
 *     rounded once, on store, to the output tensor's dtype.
 *   - The backward recomputes each row's max and softmax denominator in double instead of
 *     reading p.lse (a float, and possibly written by the backend under test).
 *   - The backward's D_i = dO_i . O_i uses O recomputed in double (as sum_j P_ij dP_ij, the same
 *     number), not the caller's o tensor: that tensor is rounded to its dtype and is the output
 *     of the forward being tested, so using it would make the oracle's gradient inherit the
 *     tested forward's error. FlashAttention reads the stored O because it is cheaper; the
 *     exact gradient of the function needs the exact O.
 *
 * Cost: O(B * H * Sq * Sk * D) time, single-threaded; O(Sk * (head_dim_qk + head_dim_v))
 * doubles of scratch per call (one row of scores, plus the dK/dV accumulators of one
 * (sequence, kv head) in the backward). */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>

#include "backend.h"

/* Not a technical limit (scratch is sized at run time): a sanity bound on what the oracle is
 * asked to check, generous enough for every head dim a real backend supports. */
#define REFERENCE_MAX_HEAD_DIM 1024

/* Element [tb, token, head, d] of t, widened to double. */
static double load(const mfa_tensor_t *t, int64_t tb, int64_t token, int64_t head, int64_t d) {
    return (double)mfa_load(t->data, t->dtype, mfa_offset(t, tb, token, head, d));
}

static void store(const mfa_tensor_t *t, int64_t tb, int64_t token, int64_t head, int64_t d,
                  double x) {
    mfa_store(t->data, t->dtype, mfa_offset(t, tb, token, head, d), (float)x);
}

/* The longest key sequence of the batch, derived here from the primary fields (cu_seqlens or
 * seqlen_kv) so the scratch size never depends on a derived field being right. */
static int64_t longest_kv(const mfa_problem_t *pr) {
    int64_t longest = 0;
    for (int64_t b = 0; b < pr->p.batch; b++) {
        const mfa_seq_t s = mfa_problem_seq(pr, b);
        if (s.sk > longest) longest = s.sk;
    }
    return longest;
}

/* One malloc holding rows * per_row + extra doubles, so each call has a single failure path.
 * A size that does not fit in size_t is refused rather than wrapped. */
static mfa_error_t alloc_doubles(mfa_context *ctx, int64_t rows, int64_t per_row, int64_t extra,
                                 double **out) {
    const uint64_t most = SIZE_MAX / sizeof(double);
    if ((uint64_t)extra >= most || (uint64_t)rows > (most - (uint64_t)extra) / (uint64_t)per_row)
        return mfa_set_error(ctx, MFA_ERROR_MEMORY_ALLOCATION,
                             "reference: scratch for %" PRId64 " keys overflows size_t", rows);
    size_t n = ((size_t)rows * (size_t)per_row + (size_t)extra) * sizeof(double);
    if (n == 0) n = sizeof(double); /* malloc(0) may return NULL, which is not a failure */
    *out = malloc(n);
    if (!*out)
        return mfa_set_error(ctx, MFA_ERROR_MEMORY_ALLOCATION,
                             "reference: cannot allocate %zu bytes", n);
    return MFA_SUCCESS;
}

/* Softmax row i of q head h in sequence s of batch b, with q's row already widened into qrow.
 * On return p[j] = P(i, j) for j < s->sk (exactly 0 for dropped pairs) and, when softcap is on
 * and t is not NULL, t[j] = tanh(raw / softcap) for kept j (the backward's chain rule needs it).
 * Returns the row's LSE = m + log(l), natural log; -inf when no key is kept (then p is all 0). */
static double softmax_row(const mfa_problem_t *pr, int64_t b, const mfa_seq_t *s, int64_t h,
                          int64_t i, const double *qrow, double *p, double *t) {
    const mfa_attention_params_t *a = &pr->p;
    const int64_t hk = h / pr->group;
    const double scale = pr->scale, cap = a->softcap;
    int64_t lo, hi;
    mfa_key_range(pr, i, s->sq, s->sk, &lo, &hi);

    /* Scores: scale first, then softcap, then the dense bias; a pair any mask drops is -inf. */
    double m = -INFINITY;
    for (int64_t j = 0; j < s->sk; j++) {
        p[j] = -INFINITY;
        if (j < lo || j >= hi || !mfa_block_keeps(pr, b, h, i, j)) continue;
        const double bias = mfa_dense_bias(pr, b, h, i, j);
        if (bias == -INFINITY) continue; /* bool-dropped (or -inf additive): no dot product */
        double x = 0.0;
        for (int64_t d = 0; d < a->head_dim_qk; d++)
            x += qrow[d] * load(&a->k, s->tb, s->k0 + j, hk, d);
        x *= scale;
        if (cap > 0.0) {
            const double th = tanh(x / cap);
            if (t) t[j] = th;
            x = cap * th;
        }
        p[j] = x + bias;
        if (p[j] > m) m = p[j];
    }

    if (m == -INFINITY) { /* every key dropped, or sk == 0: output 0, LSE -inf, never NaN */
        for (int64_t j = 0; j < s->sk; j++) p[j] = 0.0;
        return -INFINITY;
    }
    /* Subtracting the row max keeps exp() in range; exp(-inf - m) is exactly 0. */
    double l = 0.0;
    for (int64_t j = 0; j < s->sk; j++) {
        p[j] = exp(p[j] - m);
        l += p[j];
    }
    for (int64_t j = 0; j < s->sk; j++) p[j] /= l;
    return m + log(l);
}

/* Forward: o[b, i, h, :] = sum_j P(i, j) v[b, j, hk, :], and lse when asked for. */
static mfa_error_t reference_fwd(mfa_context *ctx, const mfa_problem_t *pr) {
    const mfa_attention_params_t *a = &pr->p;
    const int64_t dqk = a->head_dim_qk, dv = a->head_dim_v;

    /* scratch: p [sk], qrow [dqk] */
    double *scratch;
    mfa_error_t err = alloc_doubles(ctx, longest_kv(pr), 1, dqk, &scratch);
    if (err != MFA_SUCCESS) return err;
    double *qrow = scratch, *p = scratch + dqk;

    for (int64_t b = 0; b < a->batch; b++) {
        const mfa_seq_t s = mfa_problem_seq(pr, b);
        for (int64_t h = 0; h < a->heads_q; h++) {
            const int64_t hk = h / pr->group;
            for (int64_t i = 0; i < s.sq; i++) {
                for (int64_t d = 0; d < dqk; d++) qrow[d] = load(&a->q, s.tb, s.q0 + i, h, d);
                const double lse = softmax_row(pr, b, &s, h, i, qrow, p, NULL);
                for (int64_t e = 0; e < dv; e++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < s.sk; j++)
                        if (p[j] != 0.0) acc += p[j] * load(&a->v, s.tb, s.k0 + j, hk, e);
                    store(&a->o, s.tb, s.q0 + i, h, e, acc);
                }
                if (a->lse) a->lse[mfa_lse_index(pr, b, &s, h, i)] = (float)lse;
            }
        }
    }
    free(scratch);
    return MFA_SUCCESS;
}

/* Backward. Per (sequence, kv head): dK and dV accumulate in double over every q head of the
 * group and every row, then every element is written (zeros for keys no query saw). dQ rows
 * belong to one (q head, row) and are written as soon as they are complete.
 *   dP(i, j) = dO_i . V_j                  D_i = sum_j P(i, j) dP(i, j)  (= dO_i . O_i, exact)
 *   dS(i, j) = P(i, j) (dP(i, j) - D_i)    dRaw = dS (1 - t^2) with softcap, else dS
 *   dV_j += P(i, j) dO_i    dQ_i += scale dRaw K_j    dK_j += scale dRaw Q_i
 * Pairs with P(i, j) == 0 (dropped, or underflowed) are skipped: their terms are exactly 0. */
static mfa_error_t reference_bwd(mfa_context *ctx, const mfa_problem_t *pr) {
    const mfa_attention_params_t *a = &pr->p;
    const int64_t dqk = a->head_dim_qk, dv = a->head_dim_v;
    const double scale = pr->scale;
    const int64_t skmax = longest_kv(pr);

    /* scratch: qrow [dqk], dorow [dv], then per key: p, t, dp [sk each], dk [sk*dqk], dv [sk*dv] */
    double *scratch;
    mfa_error_t err = alloc_doubles(ctx, skmax, 3 + dqk + dv, dqk + dv, &scratch);
    if (err != MFA_SUCCESS) return err;
    double *qrow = scratch, *dorow = qrow + dqk;
    double *p = dorow + dv, *t = p + skmax, *dp = t + skmax;
    double *dk_acc = dp + skmax, *dv_acc = dk_acc + skmax * dqk;

    for (int64_t b = 0; b < a->batch; b++) {
        const mfa_seq_t s = mfa_problem_seq(pr, b);
        for (int64_t hk = 0; hk < a->heads_kv; hk++) {
            for (int64_t n = 0; n < s.sk * dqk; n++) dk_acc[n] = 0.0;
            for (int64_t n = 0; n < s.sk * dv; n++) dv_acc[n] = 0.0;

            for (int64_t h = hk * pr->group; h < (hk + 1) * pr->group; h++) {
                for (int64_t i = 0; i < s.sq; i++) {
                    const int64_t tq = s.q0 + i;
                    for (int64_t d = 0; d < dqk; d++) qrow[d] = load(&a->q, s.tb, tq, h, d);
                    for (int64_t e = 0; e < dv; e++) dorow[e] = load(&a->dout, s.tb, tq, h, e);
                    softmax_row(pr, b, &s, h, i, qrow, p, t);

                    double D = 0.0;
                    for (int64_t j = 0; j < s.sk; j++) {
                        if (p[j] == 0.0) continue;
                        double x = 0.0;
                        for (int64_t e = 0; e < dv; e++)
                            x += dorow[e] * load(&a->v, s.tb, s.k0 + j, hk, e);
                        dp[j] = x;
                        D += p[j] * x;
                    }

                    /* dp[j] becomes dRaw(i, j), which dQ below reads. */
                    for (int64_t j = 0; j < s.sk; j++) {
                        if (p[j] == 0.0) continue;
                        for (int64_t e = 0; e < dv; e++) dv_acc[j * dv + e] += p[j] * dorow[e];
                        double ds = p[j] * (dp[j] - D);
                        if (a->softcap > 0.0f) ds *= 1.0 - t[j] * t[j];
                        dp[j] = ds;
                        for (int64_t d = 0; d < dqk; d++)
                            dk_acc[j * dqk + d] += scale * ds * qrow[d];
                    }

                    for (int64_t d = 0; d < dqk; d++) {
                        double acc = 0.0;
                        for (int64_t j = 0; j < s.sk; j++)
                            if (p[j] != 0.0) acc += dp[j] * load(&a->k, s.tb, s.k0 + j, hk, d);
                        store(&a->dq, s.tb, tq, h, d, scale * acc);
                    }
                }
            }

            for (int64_t j = 0; j < s.sk; j++) {
                for (int64_t d = 0; d < dqk; d++)
                    store(&a->dk, s.tb, s.k0 + j, hk, d, dk_acc[j * dqk + d]);
                for (int64_t e = 0; e < dv; e++)
                    store(&a->dv, s.tb, s.k0 + j, hk, e, dv_acc[j * dv + e]);
            }
        }
    }
    free(scratch);
    return MFA_SUCCESS;
}

const mfa_backend_t mfa_reference_backend = {
    .interface_version = MFA_BACKEND_INTERFACE_VERSION,
    .name = "reference",
    .max_head_dim = REFERENCE_MAX_HEAD_DIM,
    .init = NULL,
    .destroy = NULL,
    .supports = NULL,
    .fwd = reference_fwd,
    .bwd = reference_bwd,
    .alloc = NULL,
    .free = NULL,
};
