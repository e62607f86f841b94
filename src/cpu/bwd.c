/* bwd.c — the cpu backward (FlashAttention-2's, without atomics, hence deterministic).
 *
 * P is recomputed from the forward's LSE: P_ij = exp(s_ij - lse_i). With dP = dO V^T and
 * D_i = rowsum(dO_i * O_i), dS = P * (dP - D) (times 1 - tanh^2 under softcap), and
 *     dQ = scale * dS K,    dK = scale * dS^T Q,    dV = P^T dO.
 * Three passes, each parallel over independent outputs:
 *   0. D for every (batch, head, row), laid out like the LSE;
 *   1. dQ per block of query rows of one (batch, q head), streaming key tiles;
 *   2. dK, dV per block of keys of one (batch, kv head), streaming the query tiles of every q head
 *      of its GQA group that can see those keys. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

typedef struct {
    const mfa_problem_t *pr;
    int64_t q_blocks, k_blocks; /* per (batch, head) */
    float *delta;               /* D, indexed like the LSE */
    float *scratch;
    size_t scratch_floats;
} bwd_job_t;

/* Every row-block loop below reads its tile of rows [i0, i0 + n) of q head h into these. */
typedef struct {
    float *q, *dout, *lse, *delta; /* [BQ][Dq], [BQ][Dv], [BQ], [BQ] */
} row_tile_t;

static void load_row_tile(const bwd_job_t *job, int64_t b, int64_t h, const mfa_seq_t *s, int64_t i0, int64_t n,
                          row_tile_t *t) {
    const mfa_problem_t *pr = job->pr;
    mfa_cpu_load_rows(&pr->p.q, s->tb, h, s->q0 + i0, n, pr->p.head_dim_qk, t->q);
    mfa_cpu_load_rows(&pr->p.dout, s->tb, h, s->q0 + i0, n, pr->p.head_dim_v, t->dout);
    for (int64_t r = 0; r < n; r++) {
        const int64_t at = mfa_lse_index(pr, b, s, h, i0 + r);
        t->lse[r] = pr->p.lse[at];
        t->delta[r] = job->delta[at];
    }
}

/* dS for one tile, in place of S: P = exp(S - lse) (0 for dropped pairs and empty rows), then
 * dS = P * (dP - D) * dcap, with dP[r][c] = dout[r] . v[c] from vt [Dv][BK]. P is kept in P. */
static void tile_ds(const mfa_problem_t *pr, const row_tile_t *t, int64_t n, const float *vt, float *S, float *P,
                    float *dP, const float *dcap) {
    const int64_t BK = MFA_CPU_BK, Dv = pr->p.head_dim_v;
    for (int64_t r = 0; r < n; r++) {
        float *prow = P + r * BK, *dprow = dP + r * BK;
        const float lse = t->lse[r];
        for (int64_t c = 0; c < BK; c++) {
            prow[c] = lse == -INFINITY ? 0.0f : expf(S[r * BK + c] - lse);
            dprow[c] = 0.0f;
        }
        for (int64_t e = 0; e < Dv; e++) {
            const float g = t->dout[r * Dv + e];
            const float *vrow = vt + e * BK;
            for (int64_t c = 0; c < BK; c++) dprow[c] += g * vrow[c];
        }
        for (int64_t c = 0; c < BK; c++) {
            float ds = prow[c] * (dprow[c] - t->delta[r]);
            if (dcap) ds *= dcap[r * BK + c];
            S[r * BK + c] = ds;
        }
    }
}

static size_t bwd_scratch_floats(const mfa_problem_t *pr) {
    const size_t BQ = MFA_CPU_BQ, BK = MFA_CPU_BK, Dq = (size_t)pr->p.head_dim_qk, Dv = (size_t)pr->p.head_dim_v;
    return BQ * Dq + BQ * Dv + 2 * BQ   /* row tile */
           + Dq * BK + BK * Dq + Dv * BK /* kt, k, vt */
           + BK * Dv                     /* v rows (pass 2) */
           + 4 * BQ * BK                 /* S, P, dP, dcap */
           + (BQ > BK ? BQ : BK) * (Dq + Dv); /* dq or dk + dv accumulators */
}

typedef struct {
    row_tile_t rows;
    float *kt, *k, *vt, *v, *S, *P, *dP, *dcap, *acc;
} bwd_scratch_t;

static bwd_scratch_t carve(const bwd_job_t *job, int thread) {
    const int64_t BQ = MFA_CPU_BQ, BK = MFA_CPU_BK, Dq = job->pr->p.head_dim_qk, Dv = job->pr->p.head_dim_v;
    float *at = job->scratch + (size_t)thread * job->scratch_floats;
    bwd_scratch_t w;
    w.rows.q = at, at += BQ * Dq;
    w.rows.dout = at, at += BQ * Dv;
    w.rows.lse = at, at += BQ;
    w.rows.delta = at, at += BQ;
    w.kt = at, at += Dq * BK;
    w.k = at, at += BK * Dq;
    w.vt = at, at += Dv * BK;
    w.v = at, at += BK * Dv;
    w.S = at, at += BQ * BK;
    w.P = at, at += BQ * BK;
    w.dP = at, at += BQ * BK;
    w.dcap = at, at += BQ * BK;
    w.acc = at;
    return w;
}

/* Loads key tile [j0, j0 + nk) of kv head hk: kt and vt transposed (zero-padded to BK), k rows. */
static void load_key_tile(const mfa_problem_t *pr, const mfa_seq_t *s, int64_t hk, int64_t j0, int64_t nk,
                          bwd_scratch_t *w) {
    const int64_t Dq = pr->p.head_dim_qk, Dv = pr->p.head_dim_v, BK = MFA_CPU_BK;
    if (nk < BK) {
        memset(w->kt, 0, sizeof(float) * (size_t)(Dq * BK));
        memset(w->vt, 0, sizeof(float) * (size_t)(Dv * BK));
    }
    mfa_cpu_load_rows_transposed(&pr->p.k, s->tb, hk, s->k0 + j0, nk, Dq, BK, w->kt);
    mfa_cpu_load_rows_transposed(&pr->p.v, s->tb, hk, s->k0 + j0, nk, Dv, BK, w->vt);
    mfa_cpu_load_rows(&pr->p.k, s->tb, hk, s->k0 + j0, nk, Dq, w->k);
}

/* Pass 0: D_i = sum_e dO_ie * O_ie for MFA_CPU_BQ rows of one (batch, head). */
static void delta_item(void *arg, int64_t item, int thread) {
    const bwd_job_t *job = arg;
    const mfa_problem_t *pr = job->pr;
    const int64_t Dv = pr->p.head_dim_v;
    const int64_t qb = item % job->q_blocks, h = item / job->q_blocks % pr->p.heads_q;
    const int64_t b = item / job->q_blocks / pr->p.heads_q;
    const mfa_seq_t s = mfa_problem_seq(pr, b);
    const int64_t i0 = qb * MFA_CPU_BQ;
    if (i0 >= s.sq) return;
    const int64_t n = s.sq - i0 < MFA_CPU_BQ ? s.sq - i0 : MFA_CPU_BQ;
    bwd_scratch_t w = carve(job, thread);
    mfa_cpu_load_rows(&pr->p.o, s.tb, h, s.q0 + i0, n, Dv, w.acc);
    mfa_cpu_load_rows(&pr->p.dout, s.tb, h, s.q0 + i0, n, Dv, w.rows.dout);
    for (int64_t r = 0; r < n; r++) {
        float sum = 0.0f;
        for (int64_t e = 0; e < Dv; e++) sum += w.acc[r * Dv + e] * w.rows.dout[r * Dv + e];
        job->delta[mfa_lse_index(pr, b, &s, h, i0 + r)] = sum;
    }
}

/* Pass 1: dQ for MFA_CPU_BQ rows of one (batch, q head). */
static void dq_item(void *arg, int64_t item, int thread) {
    const bwd_job_t *job = arg;
    const mfa_problem_t *pr = job->pr;
    const int64_t Dq = pr->p.head_dim_qk, BK = MFA_CPU_BK;
    const int64_t bh = pr->p.batch * pr->p.heads_q;
    const int64_t qb = job->q_blocks - 1 - item / bh, h = item % bh % pr->p.heads_q, b = item % bh / pr->p.heads_q;
    const mfa_seq_t s = mfa_problem_seq(pr, b);
    const int64_t i0 = qb * MFA_CPU_BQ;
    if (i0 >= s.sq) return;
    const int64_t n = s.sq - i0 < MFA_CPU_BQ ? s.sq - i0 : MFA_CPU_BQ;
    bwd_scratch_t w = carve(job, thread);
    float *dq = w.acc; /* [n][Dq] */
    float *dcap = pr->p.softcap > 0 ? w.dcap : NULL;
    load_row_tile(job, b, h, &s, i0, n, &w.rows);
    memset(dq, 0, sizeof(float) * (size_t)(n * Dq));

    int64_t lo, hi;
    mfa_cpu_tile_key_range(pr, &s, i0, n, &lo, &hi);
    for (int64_t j0 = lo; j0 < hi; j0 += BK) {
        const int64_t nk = hi - j0 < BK ? hi - j0 : BK;
        if (!mfa_cpu_block_tile_kept(pr, b, h, i0, n, j0, nk)) continue;
        load_key_tile(pr, &s, h / pr->group, j0, nk, &w);
        mfa_cpu_score_tile(pr, b, h, &s, i0, n, j0, nk, w.rows.q, w.kt, w.S, dcap);
        tile_ds(pr, &w.rows, n, w.vt, w.S, w.P, w.dP, dcap);
        for (int64_t r = 0; r < n; r++)
            for (int64_t c = 0; c < nk; c++) {
                const float ds = pr->scale * w.S[r * BK + c];
                const float *krow = w.k + c * Dq;
                for (int64_t d = 0; d < Dq; d++) dq[r * Dq + d] += ds * krow[d];
            }
    }
    mfa_cpu_store_rows(&pr->p.dq, s.tb, h, s.q0 + i0, n, Dq, dq);
}

/* Pass 2: dK and dV for MFA_CPU_BK keys of one (batch, kv head). */
static void dkv_item(void *arg, int64_t item, int thread) {
    const bwd_job_t *job = arg;
    const mfa_problem_t *pr = job->pr;
    const int64_t Dq = pr->p.head_dim_qk, Dv = pr->p.head_dim_v, BK = MFA_CPU_BK, BQ = MFA_CPU_BQ;
    const int64_t kb = item % job->k_blocks, hk = item / job->k_blocks % pr->p.heads_kv;
    const int64_t b = item / job->k_blocks / pr->p.heads_kv;
    const mfa_seq_t s = mfa_problem_seq(pr, b);
    const int64_t j0 = kb * BK;
    if (j0 >= s.sk) return;
    const int64_t nk = s.sk - j0 < BK ? s.sk - j0 : BK;
    bwd_scratch_t w = carve(job, thread);
    float *dk = w.acc, *dv = w.acc + BK * Dq; /* [nk][Dq], [nk][Dv] */
    float *dcap = pr->p.softcap > 0 ? w.dcap : NULL;
    memset(w.acc, 0, sizeof(float) * (size_t)(BK * (Dq + Dv)));
    load_key_tile(pr, &s, hk, j0, nk, &w);

    for (int64_t h = hk * pr->group; h < (hk + 1) * pr->group; h++) {
        for (int64_t i0 = 0; i0 < s.sq; i0 += BQ) {
            const int64_t n = s.sq - i0 < BQ ? s.sq - i0 : BQ;
            int64_t lo, hi;
            mfa_cpu_tile_key_range(pr, &s, i0, n, &lo, &hi);
            if (hi <= j0 || lo >= j0 + nk || !mfa_cpu_block_tile_kept(pr, b, h, i0, n, j0, nk)) continue;
            load_row_tile(job, b, h, &s, i0, n, &w.rows);
            mfa_cpu_score_tile(pr, b, h, &s, i0, n, j0, nk, w.rows.q, w.kt, w.S, dcap);
            tile_ds(pr, &w.rows, n, w.vt, w.S, w.P, w.dP, dcap);
            for (int64_t r = 0; r < n; r++) {
                const float *qrow = w.rows.q + r * Dq, *grow = w.rows.dout + r * Dv;
                for (int64_t c = 0; c < nk; c++) {
                    const float pc = w.P[r * BK + c], ds = pr->scale * w.S[r * BK + c];
                    for (int64_t e = 0; e < Dv; e++) dv[c * Dv + e] += pc * grow[e];
                    for (int64_t d = 0; d < Dq; d++) dk[c * Dq + d] += ds * qrow[d];
                }
            }
        }
    }
    mfa_cpu_store_rows(&pr->p.dk, s.tb, hk, s.k0 + j0, nk, Dq, dk);
    mfa_cpu_store_rows(&pr->p.dv, s.tb, hk, s.k0 + j0, nk, Dv, dv);
}

mfa_error_t mfa_cpu_bwd(mfa_context *ctx, const mfa_problem_t *pr) {
    const mfa_attention_params_t *p = &pr->p;
    bwd_job_t job = {.pr = pr};
    job.q_blocks = (pr->max_seqlen_q + MFA_CPU_BQ - 1) / MFA_CPU_BQ;
    job.k_blocks = (pr->max_seqlen_kv + MFA_CPU_BK - 1) / MFA_CPU_BK;
    const int64_t q_items = p->batch * p->heads_q * job.q_blocks, k_items = p->batch * p->heads_kv * job.k_blocks;
    const int threads = mfa_cpu_threads_for(ctx, q_items > k_items ? q_items : k_items);
    const size_t delta_floats = (size_t)(p->batch * p->heads_q * p->seqlen_q); /* varlen: heads * total */
    job.scratch_floats = bwd_scratch_floats(pr);
    const size_t bytes = sizeof(float) * (job.scratch_floats * (size_t)threads + delta_floats);
    job.scratch = malloc(bytes);
    if (!job.scratch)
        return mfa_set_error(ctx, MFA_ERROR_MEMORY_ALLOCATION, "cpu backward: cannot allocate %zu bytes of scratch", bytes);
    job.delta = job.scratch + job.scratch_floats * (size_t)threads;
    mfa_cpu_parallel_for(threads, q_items, delta_item, &job);
    mfa_cpu_parallel_for(threads, q_items, dq_item, &job);
    mfa_cpu_parallel_for(threads, k_items, dkv_item, &job);
    free(job.scratch);
    return MFA_SUCCESS;
}
