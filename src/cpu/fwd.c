/* fwd.c — the cpu forward: one work item is MFA_CPU_BQ query rows of one (batch, q head).
 *
 * Per item, stream the K/V tiles that the causal/window bounds and the block-sparse map leave
 * (other tiles are never touched), keeping per row the running max m, the running denominator l
 * and the unnormalised output O (online softmax, base 2):
 *     S = Q K^T (gemm);  m' = max(m, max_j x_j);  P = 2^(x - m');
 *     l = l * 2^(m - m') + sum_j P_j;  O = O * 2^(m - m') + P V (gemm).
 * At the end O / l is the output and (m + log2 l) * ln 2 the LSE. A row that saw no key keeps
 * l = 0 and gets output 0 and LSE -inf. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

typedef struct {
    const mfa_problem_t *pr;
    const mfa_cpu_kernels_t *k;
    mfa_cpu_kv_t kv;
    int64_t q_blocks; /* query blocks per (batch, head) */
    int64_t splits;   /* key ranges per query block: > 1 only for decode-like shapes */
    bool bf16_qk;     /* S = Q K^T with the bf16 dot product (q, k bf16, even head_dim_qk) */
    bool bf16_pv;     /* O += P V with P rounded to bf16 too: only for 16-bit outputs, where that
                         rounding (2^-9 relative) is below the output's own */
    float *partial;   /* splits > 1: per (block, split) unnormalised O [BQ][Dv], then m, l [BQ] */
    float *scratch;   /* per thread: scratch_floats each */
    size_t scratch_floats;
} fwd_job_t;

static size_t fwd_scratch_floats(const mfa_problem_t *pr) {
    const size_t BQ = MFA_CPU_BQ, BK = MFA_CPU_BK, Dq = (size_t)pr->p.head_dim_qk, Dv = (size_t)pr->p.head_dim_v;
    return BQ * Dq /* converted Q (or bf16 Q) */ + BQ * BK /* S, then P */ + BQ * Dv /* O */ + 2 * BQ /* m, l */ +
           BQ * BK / 2 /* P in bf16 */;
}

static size_t partial_floats(const mfa_problem_t *pr) { return MFA_CPU_BQ * (size_t)(pr->p.head_dim_v + 2); }

/* Rows [i0, i0 + n) of (b, h) against key tiles [kb_lo, kb_hi): accumulates the unnormalised
 * output o [n][Dv], the running max m (base 2) and the running sum l. */
static void attend(const fwd_job_t *job, int64_t b, int64_t h, const mfa_seq_t *s, int64_t i0, int64_t n,
                   int64_t kb_lo, int64_t kb_hi, const void *q, int64_t ldq, float *S, uint16_t *pb, float *o,
                   float *m, float *l) {
    const mfa_problem_t *pr = job->pr;
    const mfa_cpu_kernels_t *k = job->k;
    const int64_t Dq = pr->p.head_dim_qk, Dv = pr->p.head_dim_v, BK = MFA_CPU_BK, hk = h / pr->group;
    memset(o, 0, sizeof(float) * (size_t)(n * Dv));
    for (int64_t r = 0; r < n; r++) m[r] = -INFINITY, l[r] = 0.0f;
    for (int64_t kb = kb_lo; kb < kb_hi; kb++) {
        const int64_t j0 = kb * BK, nk = s->sk - j0 < BK ? s->sk - j0 : BK;
        if (!mfa_cpu_block_tile_kept(pr, b, h, i0, n, j0, nk)) continue;
        if (job->bf16_qk)
            k->gemm_bf16(n, nk, Dq, q, ldq, mfa_cpu_kv_kt_pairs(pr, &job->kv, b, hk, kb), 2 * BK, S, BK, false);
        else
            k->gemm(n, nk, Dq, q, ldq, mfa_cpu_kv_kt(pr, &job->kv, b, hk, kb), BK, S, BK, false);
        const float mul = mfa_cpu_finish_scores(pr, b, h, s, i0, n, j0, nk, S, BK, NULL);

        for (int64_t r = 0; r < n; r++) {
            float *x = S + r * BK;
            const float tile_max = k->max(x, nk) * mul;
            if (tile_max == -INFINITY) { /* nothing visible in this tile for this row */
                memset(x, 0, sizeof(float) * (size_t)nk);
                continue;
            }
            const float m_new = tile_max > m[r] ? tile_max : m[r];
            const float correction = exp2f(m[r] - m_new); /* 2^-inf = 0 on the first visible tile */
            l[r] = l[r] * correction + k->exp2_sum(x, nk, mul, m_new);
            if (correction != 1.0f) k->scale(o + r * Dv, Dv, correction);
            m[r] = m_new;
        }
        if (job->bf16_pv) {
            const int64_t nk2 = (nk + 1) & ~(int64_t)1; /* pairs: an odd tile gets a zero key */
            for (int64_t r = 0; r < n; r++) {
                k->to_bf16(pb + r * BK, S + r * BK, nk);
                if (nk2 > nk) pb[r * BK + nk] = 0;
            }
            k->gemm_bf16(n, Dv, nk2, pb, BK, mfa_cpu_kv_v_pairs(pr, &job->kv, b, hk, kb), 2 * Dv, o, Dv, true);
        } else {
            int64_t ldv;
            const float *v = mfa_cpu_kv_v_rows(pr, &job->kv, s, b, hk, kb, &ldv);
            k->gemm(n, Dv, nk, S, BK, v, ldv, o, Dv, true);
        }
    }
}

/* o / l is the output and (m + log2 l) ln 2 the LSE; rows that saw nothing get 0 and -inf. */
static void finish_rows(const fwd_job_t *job, int64_t b, int64_t h, const mfa_seq_t *s, int64_t i0, int64_t n,
                        float *o, const float *m, const float *l) {
    const mfa_problem_t *pr = job->pr;
    const int64_t Dv = pr->p.head_dim_v;
    for (int64_t r = 0; r < n; r++) {
        job->k->scale(o + r * Dv, Dv, l[r] > 0 ? 1.0f / l[r] : 0.0f);
        if (pr->p.lse)
            pr->p.lse[mfa_lse_index(pr, b, s, h, i0 + r)] = l[r] > 0 ? (m[r] + log2f(l[r])) * MFA_LN2 : -INFINITY;
    }
    mfa_cpu_store_rows(&pr->p.o, s->tb, h, s->q0 + i0, n, Dv, o);
}

/* The key tiles [*lo, *hi) of split `split` of a query block's visible tiles. */
static void split_tiles(const fwd_job_t *job, const mfa_seq_t *s, int64_t i0, int64_t n, int64_t split, int64_t *lo,
                        int64_t *hi) {
    int64_t k_lo, k_hi;
    mfa_cpu_tile_key_range(job->pr, s, i0, n, &k_lo, &k_hi);
    const int64_t first = k_lo / MFA_CPU_BK, end = k_lo < k_hi ? (k_hi + MFA_CPU_BK - 1) / MFA_CPU_BK : first;
    const int64_t per = (end - first + job->splits - 1) / job->splits;
    *lo = first + split * per < end ? first + split * per : end;
    *hi = *lo + per < end ? *lo + per : end;
}

static void fwd_item(void *arg, int64_t item, int thread) {
    const fwd_job_t *job = arg;
    const mfa_problem_t *pr = job->pr;
    const int64_t Dq = pr->p.head_dim_qk, Dv = pr->p.head_dim_v;
    const int64_t block = item / job->splits, split = item % job->splits;
    mfa_cpu_qblock_t blk;
    if (!mfa_cpu_qblock(pr, job->q_blocks, block, &blk)) return;
    const int64_t b = blk.b, h = blk.h, i0 = blk.i0, n = blk.n;
    const mfa_seq_t s = blk.s;

    float *qbuf = job->scratch + (size_t)thread * job->scratch_floats; /* [n][Dq] */
    float *S = qbuf + MFA_CPU_BQ * Dq;                                  /* [n][BK] */
    float *o = S + MFA_CPU_BQ * MFA_CPU_BK;                             /* [n][Dv] */
    float *m = o + MFA_CPU_BQ * Dv, *l = m + MFA_CPU_BQ;
    uint16_t *pb = (uint16_t *)(l + MFA_CPU_BQ); /* [n][BK] bf16 P */
    if (job->splits > 1) { /* accumulate straight into this split's slot of the partials */
        o = job->partial + (size_t)item * partial_floats(pr);
        m = o + MFA_CPU_BQ * Dv, l = m + MFA_CPU_BQ;
    }
    int64_t ldq = Dq, kb_lo, kb_hi;
    const void *q = qbuf;
    if (job->bf16_qk) { /* bf16 rows as they are, gathered contiguously */
        uint16_t *q16 = (uint16_t *)qbuf;
        for (int64_t r = 0; r < n; r++)
            for (int64_t d = 0; d < Dq; d++)
                q16[r * Dq + d] = ((const uint16_t *)pr->p.q.data)[mfa_offset(&pr->p.q, s.tb, s.q0 + i0 + r, h, d)];
    } else {
        q = mfa_cpu_rows(job->k, &pr->p.q, s.tb, h, s.q0 + i0, n, Dq, qbuf, &ldq);
    }
    split_tiles(job, &s, i0, n, split, &kb_lo, &kb_hi);
    attend(job, b, h, &s, i0, n, kb_lo, kb_hi, q, ldq, S, pb, o, m, l);
    if (job->splits == 1) finish_rows(job, b, h, &s, i0, n, o, m, l);
}

/* Decode shapes: merge the splits of one query block by their maxima (log-sum-exp). */
static void merge_item(void *arg, int64_t block, int thread) {
    const fwd_job_t *job = arg;
    const mfa_problem_t *pr = job->pr;
    const int64_t Dv = pr->p.head_dim_v;
    mfa_cpu_qblock_t blk;
    if (!mfa_cpu_qblock(pr, job->q_blocks, block, &blk)) return;
    const int64_t b = blk.b, h = blk.h, i0 = blk.i0, n = blk.n;
    const mfa_seq_t s = blk.s;
    float *o = job->scratch + (size_t)thread * job->scratch_floats, *m = o + MFA_CPU_BQ * Dv, *l = m + MFA_CPU_BQ;
    memset(o, 0, sizeof(float) * (size_t)(n * Dv));
    for (int64_t r = 0; r < n; r++) {
        m[r] = -INFINITY, l[r] = 0.0f;
        for (int64_t sp = 0; sp < job->splits; sp++) {
            const float *part = job->partial + (size_t)(block * job->splits + sp) * partial_floats(pr);
            const float pm = part[MFA_CPU_BQ * Dv + r];
            m[r] = pm > m[r] ? pm : m[r];
        }
        if (m[r] == -INFINITY) continue;
        for (int64_t sp = 0; sp < job->splits; sp++) {
            const float *part = job->partial + (size_t)(block * job->splits + sp) * partial_floats(pr);
            const float pm = part[MFA_CPU_BQ * Dv + r], pl = part[MFA_CPU_BQ * (Dv + 1) + r];
            if (pm == -INFINITY) continue;
            const float w = exp2f(pm - m[r]);
            l[r] += pl * w;
            for (int64_t e = 0; e < Dv; e++) o[r * Dv + e] += w * part[r * Dv + e];
        }
    }
    finish_rows(job, b, h, &s, i0, n, o, m, l);
}

mfa_error_t mfa_cpu_fwd(mfa_context *ctx, const mfa_problem_t *pr) {
    fwd_job_t job = {.pr = pr, .k = mfa_cpu_kernels(ctx), .splits = 1};
    job.q_blocks = (pr->max_seqlen_q + MFA_CPU_BQ - 1) / MFA_CPU_BQ;
    const int64_t blocks = pr->p.batch * pr->p.heads_q * job.q_blocks;
    if (blocks == 0) return MFA_SUCCESS;
    /* Fewer query blocks than threads (decode: a few query rows, a long KV): split each block's
     * keys so every thread has work, at least 4 key tiles per split, then merge by LSE. */
    const int64_t k_tiles = (pr->max_seqlen_kv + MFA_CPU_BK - 1) / MFA_CPU_BK;
    if (blocks < ctx->num_threads && k_tiles >= 8) {
        job.splits = (ctx->num_threads + blocks - 1) / blocks;
        if (job.splits > k_tiles / 4) job.splits = k_tiles / 4;
    }
    const int64_t items = blocks * job.splits;
    const mfa_attention_params_t *p = &pr->p;
    job.bf16_qk = job.k->gemm_bf16 && p->q.dtype == MFA_DTYPE_BF16 && p->k.dtype == MFA_DTYPE_BF16 &&
                  p->head_dim_qk % 2 == 0;
    job.bf16_pv = job.bf16_qk && p->v.dtype == MFA_DTYPE_BF16 && p->o.dtype != MFA_DTYPE_F32;
    const int pack = MFA_CPU_PACK_V_ROWS | (job.bf16_qk ? MFA_CPU_PACK_K_PAIRS : 0) |
                     (job.bf16_pv ? MFA_CPU_PACK_V_PAIRS : 0);
    mfa_error_t err = mfa_cpu_kv_pack(ctx, pr, pack, &job.kv);
    if (err) return err;
    const int threads = mfa_cpu_threads_for(ctx, items);
    job.scratch_floats = fwd_scratch_floats(pr);
    const size_t partial = job.splits > 1 ? (size_t)items * partial_floats(pr) : 0;
    const size_t bytes = sizeof(float) * (job.scratch_floats * (size_t)threads + partial);
    job.scratch = malloc(bytes);
    if (!job.scratch) {
        mfa_cpu_kv_free(&job.kv);
        return mfa_set_error(ctx, MFA_ERROR_MEMORY_ALLOCATION, "cpu forward: cannot allocate %zu bytes of scratch",
                             bytes);
    }
    job.partial = job.scratch + job.scratch_floats * (size_t)threads;
    mfa_cpu_parallel_for(threads, items, fwd_item, &job);
    if (job.splits > 1) mfa_cpu_parallel_for(mfa_cpu_threads_for(ctx, blocks), blocks, merge_item, &job);
    free(job.scratch);
    mfa_cpu_kv_free(&job.kv);
    return MFA_SUCCESS;
}
