/* fwd.c — the cpu forward: one work item is MFA_CPU_BQ query rows of one (batch, head).
 *
 * Per item: load the Q block once, then stream K/V tiles over the keys that the causal/window
 * bounds and the block-sparse map leave (other tiles are never touched), keeping for every row
 * the running max m, the running denominator l and the unnormalised output O (online softmax):
 *     m' = max(m, max_j s_j);  O = O * e^(m - m') + sum_j e^(s_j - m') v_j;  l likewise.
 * At the end O / l is the output and m + log(l) the LSE. A row that saw no key keeps l = 0 and
 * gets output 0 and LSE -inf. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

typedef struct {
    const mfa_problem_t *pr;
    int64_t q_blocks; /* blocks per (batch, head) */
    float *scratch;   /* per thread: scratch_floats each */
    size_t scratch_floats;
} fwd_job_t;

static size_t fwd_scratch_floats(const mfa_problem_t *pr) {
    const size_t BQ = MFA_CPU_BQ, BK = MFA_CPU_BK, Dq = (size_t)pr->p.head_dim_qk, Dv = (size_t)pr->p.head_dim_v;
    return BQ * Dq + Dq * BK + BK * Dv + BQ * BK + BQ * Dv + 2 * BQ;
}

static void fwd_item(void *arg, int64_t item, int thread) {
    const fwd_job_t *job = arg;
    const mfa_problem_t *pr = job->pr;
    const mfa_attention_params_t *p = &pr->p;
    const int64_t Dq = p->head_dim_qk, Dv = p->head_dim_v, BK = MFA_CPU_BK;

    /* Items are handed out longest-first for causal balance: the last query blocks of every
     * (batch, head) see the most keys, so they go first. */
    const int64_t bh = p->batch * p->heads_q;
    const int64_t qb = job->q_blocks - 1 - item / bh;
    const int64_t h = item % bh % p->heads_q;
    const int64_t b = item % bh / p->heads_q;
    const int64_t hk = h / pr->group;
    const mfa_seq_t s = mfa_problem_seq(pr, b);
    const int64_t i0 = qb * MFA_CPU_BQ;
    if (i0 >= s.sq) return;
    const int64_t n = s.sq - i0 < MFA_CPU_BQ ? s.sq - i0 : MFA_CPU_BQ;

    float *q = job->scratch + (size_t)thread * job->scratch_floats; /* [n][Dq] */
    float *kt = q + MFA_CPU_BQ * Dq;                                  /* [Dq][BK] */
    float *v = kt + Dq * BK;                                          /* [BK][Dv] */
    float *S = v + BK * Dv;                                           /* [BQ][BK] */
    float *o = S + MFA_CPU_BQ * BK;                                   /* [BQ][Dv] */
    float *m = o + MFA_CPU_BQ * Dv, *l = m + MFA_CPU_BQ;

    mfa_cpu_load_rows(&p->q, s.tb, h, s.q0 + i0, n, Dq, q);
    memset(o, 0, sizeof(float) * (size_t)(n * Dv));
    for (int64_t r = 0; r < n; r++) m[r] = -INFINITY, l[r] = 0.0f;

    int64_t lo, hi;
    mfa_cpu_tile_key_range(pr, &s, i0, n, &lo, &hi);
    for (int64_t j0 = lo; j0 < hi; j0 += BK) {
        const int64_t nk = hi - j0 < BK ? hi - j0 : BK;
        if (!mfa_cpu_block_tile_kept(pr, b, h, i0, n, j0, nk)) continue;
        if (nk < BK) memset(kt, 0, sizeof(float) * (size_t)(Dq * BK));
        mfa_cpu_load_rows_transposed(&p->k, s.tb, hk, s.k0 + j0, nk, Dq, BK, kt);
        mfa_cpu_load_rows(&p->v, s.tb, hk, s.k0 + j0, nk, Dv, v);
        mfa_cpu_score_tile(pr, b, h, &s, i0, n, j0, nk, q, kt, S, NULL);

        for (int64_t r = 0; r < n; r++) {
            float *srow = S + r * BK, *orow = o + r * Dv;
            float tile_max = -INFINITY;
            for (int64_t c = 0; c < nk; c++) tile_max = srow[c] > tile_max ? srow[c] : tile_max;
            if (tile_max == -INFINITY) continue; /* nothing visible in this tile for this row */
            const float m_new = tile_max > m[r] ? tile_max : m[r];
            const float correction = expf(m[r] - m_new); /* e^-inf = 0 on the first visible tile */
            float sum = 0.0f;
            for (int64_t c = 0; c < nk; c++) {
                srow[c] = expf(srow[c] - m_new);
                sum += srow[c];
            }
            l[r] = l[r] * correction + sum;
            m[r] = m_new;
            for (int64_t e = 0; e < Dv; e++) orow[e] *= correction;
            for (int64_t c = 0; c < nk; c++) {
                const float pc = srow[c];
                const float *vrow = v + c * Dv;
                for (int64_t e = 0; e < Dv; e++) orow[e] += pc * vrow[e];
            }
        }
    }

    for (int64_t r = 0; r < n; r++) {
        const float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
        for (int64_t e = 0; e < Dv; e++) o[r * Dv + e] *= inv;
        if (p->lse) p->lse[mfa_lse_index(pr, b, &s, h, i0 + r)] = l[r] > 0 ? m[r] + logf(l[r]) : -INFINITY;
    }
    mfa_cpu_store_rows(&p->o, s.tb, h, s.q0 + i0, n, Dv, o);
}

mfa_error_t mfa_cpu_fwd(mfa_context *ctx, const mfa_problem_t *pr) {
    fwd_job_t job = {.pr = pr};
    job.q_blocks = (pr->max_seqlen_q + MFA_CPU_BQ - 1) / MFA_CPU_BQ;
    const int64_t items = pr->p.batch * pr->p.heads_q * job.q_blocks;
    if (items == 0) return MFA_SUCCESS;
    const int threads = mfa_cpu_threads_for(ctx, items);
    job.scratch_floats = fwd_scratch_floats(pr);
    job.scratch = malloc(sizeof(float) * job.scratch_floats * (size_t)threads);
    if (!job.scratch)
        return mfa_set_error(ctx, MFA_ERROR_MEMORY_ALLOCATION, "cpu forward: cannot allocate %zu bytes of scratch",
                             sizeof(float) * job.scratch_floats * (size_t)threads);
    mfa_cpu_parallel_for(threads, items, fwd_item, &job);
    free(job.scratch);
    return MFA_SUCCESS;
}
