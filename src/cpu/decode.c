/* decode.c — the cpu forward for decode shapes: a few query rows (at most 16, and at most 128 per
 * kv head with the GQA group) against many keys.
 *
 * There the forward is bound by reading K and V once (32 heads x 8192 keys x 128 dims in fp32 is
 * 256 MiB), and the tiled forward's packing (read K and V, write the packed copy, read that
 * again) tripled the traffic: ggml's decode ran 3.9x faster. Here each key tile is read where it
 * lies (converted into a small scratch tile only when it is not fp32 rows) and used at once:
 *     S = Q K^T     dot products of the block's query rows with the tile's key rows (kernel
 *                   table `dots`: the gemm, broadcasting every key element, wasted most lanes),
 *                   or, for blocks of more than DOTS_ROWS rows, the gemm against the tile
 *                   transposed in scratch
 *     the mask and the online softmax as in the tiled forward (tile.c)
 *     O  += P V     B = the tile's value rows
 * A block's rows are every query row of every q head of one kv head's GQA group, so the group
 * shares one pass over its keys. A work item is a range of one sequence's key tiles for some kv
 * heads, in the order K is laid out in: one head when a head's keys are contiguous (BHSD), all
 * heads tile by tile when the heads of a token sit side by side (BSHD: a head at a time there
 * read one row per page, 16 KiB apart at 32 heads of 128; all heads per tile read the tiles as
 * one run, 1.12x, while the same order on BHSD was 0.8x). Each sequence's keys are split into
 * enough ranges to keep the threads busy, and the ranges merged by log-sum-exp. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

typedef struct {
    const mfa_problem_t *pr;
    const mfa_cpu_kernels_t *k;
    int64_t splits; /* key ranges per sequence */
    int64_t heads;  /* kv heads per item: 1 or all (in K's memory order) */
    int64_t rows;   /* the largest block: max_seqlen_q * group <= MFA_CPU_BQ */
    /* bf16 Q and K on a CPU with a bf16 dot product: blocks of more than DOTS_ROWS rows take
     * S = Q K^T through gemm_bf16 (Q kept in bf16, the key tile transposed into pairs), and with
     * bf16 V and a 16-bit output O += P V too (P rounded to bf16, as the tiled forward does) */
    bool bf16_qk, bf16_pv;
    float *partial; /* splits > 1: per (split, batch, kv head) o [BQ][Dv], then m, l [BQ] */
    float *scratch; /* per thread: scratch_floats each */
    size_t scratch_floats;
} decode_job_t;

enum { W = MFA_CPU_BQ }; /* rows a block holds at most */
enum { DECODE_BK = 64 }; /* keys a tile: 16, 32 and 128 measured the same on a one-token decode */
/* Blocks of more rows than this take S = Q K^T as a GEMM against the tile transposed in scratch
 * (8 x 8 transposes); dots, a reduction per pair, wins only on a few rows (Zen 5, 32 heads of
 * 128 against 8192 keys: the GEMM 0.86x time at 16 rows, 0.96x at 8, 1.03x at 6; with the avx2
 * table 0.95x at 16, 1.04x at 8) */
enum { DOTS_ROWS = 8 };

/* One kv head's block: its query rows and running softmax state. */
typedef struct {
    float *q;         /* [rows][Dq] */
    float *o, *m, *l; /* [rows][Dv], [rows], [rows] */
} block_t;

typedef struct {
    float *blocks;      /* per kv head of an item: q [rows][Dq], o [rows][Dv], m [rows], l [rows] */
    float *S;           /* [W][BK]: S, then P */
    float *kbuf, *vbuf; /* [BK][Dq], [BK][Dv]: a key tile converted, a value tile copied */
    float *kt;          /* [Dq][BK]: the key tile transposed (blocks of more than DOTS_ROWS rows), or
                         * in bf16 pairs; vbuf holds the value tile in bf16 pairs along the keys */
    uint16_t *pb;       /* [W][BK]: P in bf16 (bf16_pv) */
} scratch_t;

static size_t block_floats(const decode_job_t *job) {
    return (size_t)(job->rows * (job->pr->p.head_dim_qk + job->pr->p.head_dim_v + 2));
}

static size_t scratch_floats(const decode_job_t *job) {
    const size_t BK = DECODE_BK, Dq = (size_t)job->pr->p.head_dim_qk, Dv = (size_t)job->pr->p.head_dim_v;
    return (size_t)job->heads * block_floats(job) + W * BK + BK * (Dq + Dv) + Dq * BK + W * BK / 2;
}

static scratch_t carve(const decode_job_t *job, int thread) {
    const size_t BK = DECODE_BK, Dq = (size_t)job->pr->p.head_dim_qk;
    float *at = job->scratch + (size_t)thread * job->scratch_floats;
    scratch_t w;
    w.blocks = at, at += (size_t)job->heads * block_floats(job);
    w.S = at, at += W * BK;
    w.kbuf = at, at += BK * Dq;
    w.vbuf = at, at += BK * (size_t)job->pr->p.head_dim_v;
    w.kt = at, at += (size_t)job->pr->p.head_dim_qk * BK;
    w.pb = (uint16_t *)at;
    return w;
}

static size_t partial_floats(const mfa_problem_t *pr) { return MFA_CPU_BQ * (size_t)(pr->p.head_dim_v + 2); }

bool mfa_cpu_decode_applies(const mfa_problem_t *pr) {
    /* a block fits the rows; and enough keys that packing them would cost more than it saves
     * (each packed tile would serve only this block) */
    return pr->max_seqlen_q <= MFA_CPU_DECODE_SEQ && pr->max_seqlen_q * pr->group <= MFA_CPU_BQ &&
           pr->max_seqlen_kv >= 4 * MFA_CPU_BK;
}

/* Key tiles [*lo, *hi) of split `split` of the tiles any row of sequence s sees (causal and
 * window bounds are monotone in the row: the first and last rows decide). */
static void split_tiles(const decode_job_t *job, const mfa_seq_t *s, int64_t split, int64_t *lo, int64_t *hi) {
    int64_t k_lo, k_hi;
    mfa_cpu_tile_key_range(job->pr, s, 0, s->sq, &k_lo, &k_hi);
    const int64_t first = k_lo / DECODE_BK, end = k_lo < k_hi ? (k_hi + DECODE_BK - 1) / DECODE_BK : first;
    const int64_t per = (end - first + job->splits - 1) / job->splits;
    *lo = first + split * per < end ? first + split * per : end;
    *hi = *lo + per < end ? *lo + per : end;
}

/* Whether the block-sparse map keeps any pair of key tile kb for some q head of the group. */
static bool tile_kept(const mfa_problem_t *pr, int64_t b, int64_t hk, const mfa_seq_t *s, int64_t kb) {
    const int64_t j0 = kb * DECODE_BK, nk = s->sk - j0 < DECODE_BK ? s->sk - j0 : DECODE_BK;
    for (int64_t g = 0; g < pr->group; g++)
        if (mfa_cpu_block_tile_kept(pr, b, hk * pr->group + g, 0, s->sq, j0, nk)) return true;
    return false;
}

/* S = Q K^T of one key tile into w->S: bf16 pairs through gemm_bf16, dot products for a few
 * rows, or the gemm against the tile transposed in scratch. */
static void tile_scores(const decode_job_t *job, const mfa_seq_t *s, int64_t hk, int64_t n, int64_t j0, int64_t nk,
                        bool bf16, const block_t *blk, scratch_t *w) {
    const mfa_cpu_kernels_t *k = job->k;
    const mfa_tensor_t *K = &job->pr->p.k;
    const int64_t Dq = job->pr->p.head_dim_qk, BK = DECODE_BK;
    if (bf16) { /* Q is bf16 in the block; K^T in pairs, eight keys at a time */
        uint16_t *kt = (uint16_t *)w->kt;
        for (int64_t c = 0; c < nk; c += 8) {
            const int64_t g = nk - c < 8 ? nk - c : 8;
            const uint16_t *rows[8];
            for (int64_t e = 0; e < g; e++)
                rows[e] = (const uint16_t *)K->data + mfa_offset(K, s->tb, s->k0 + j0 + c + e, hk, 0);
            mfa_cpu_pairs_dim(k, rows, g, K->stride[3], Dq, kt + 2 * c);
        }
        k->gemm_bf16(n, nk, Dq, (const uint16_t *)blk->q, Dq, kt, 2 * BK, w->S, BK, false);
        return;
    }
    int64_t ldk;
    const float *keys = mfa_cpu_rows(k, K, s->tb, hk, s->k0 + j0, nk, Dq, w->kbuf, &ldk);
    if (n <= DOTS_ROWS) {
        k->dots(n, nk, Dq, blk->q, Dq, keys, ldk, w->S, BK);
        return;
    }
    int64_t c = 0;
    for (; c + 8 <= nk && k->transpose8; c += 8) {
        const float *rows[8];
        for (int e = 0; e < 8; e++) rows[e] = keys + (c + e) * ldk;
        k->transpose8(rows, Dq, w->kt + c, BK);
    }
    for (; c < nk; c++)
        for (int64_t d = 0; d < Dq; d++) w->kt[d * BK + c] = keys[c * ldk + d];
    k->gemm(n, nk, Dq, blk->q, Dq, w->kt, BK, w->S, BK, false);
}

/* One key tile against the block's n rows (q head hk * group + r / sq, query row r % sq). */
static void attend_tile(const decode_job_t *job, int64_t b, int64_t hk, const mfa_seq_t *s, int64_t n,
                        int64_t kb, const block_t *blk, scratch_t *w) {
    const mfa_problem_t *pr = job->pr;
    const mfa_cpu_kernels_t *k = job->k;
    const int64_t Dv = pr->p.head_dim_v, BK = DECODE_BK;
    const int64_t j0 = kb * BK, nk = s->sk - j0 < BK ? s->sk - j0 : BK;
    const bool bf16 = job->bf16_qk && n > DOTS_ROWS;
    tile_scores(job, s, hk, n, j0, nk, bf16, blk, w);
    float mul = 0;
    for (int64_t g = 0; g < pr->group; g++) /* the mask of each q head's rows */
        mul = mfa_cpu_finish_scores(pr, b, hk * pr->group + g, s, 0, s->sq, j0, nk, w->S + g * s->sq * BK, BK, NULL);
    uint16_t *pb = bf16 && job->bf16_pv ? w->pb : NULL;
    mfa_cpu_softmax_step(k, w->S, BK, n, nk, mul, blk->m, blk->l, blk->o, Dv, Dv, pb, NULL, NULL);
    const mfa_tensor_t *V = &pr->p.v;
    if (pb) { /* O += P V in bf16: V's rows interleaved in pairs, an odd tile's last key with zeros */
        uint16_t *vp = (uint16_t *)w->vbuf;
        const int64_t nk2 = (nk + 1) & ~(int64_t)1;
        for (int64_t c = 0; c < nk; c += 2) {
            const uint16_t *r0 = (const uint16_t *)V->data + mfa_offset(V, s->tb, s->k0 + j0 + c, hk, 0);
            mfa_cpu_pairs_keys(r0, c + 1 < nk ? r0 + V->stride[1] : NULL, V->stride[3], Dv, vp + c * Dv);
        }
        if (nk2 > nk)
            for (int64_t r = 0; r < n; r++) pb[r * BK + nk] = 0;
        k->gemm_bf16(n, Dv, nk2, pb, BK, vp, 2 * Dv, blk->o, Dv, true);
        return;
    }
    /* V always through scratch: the GEMM reads its B a 16-column panel at a time, and straight
     * from memory that walked the tile eight times at a 512-byte stride, each line a miss (half
     * the time of a GQA decode); one sequential copy per tile brings it into L1 instead. K stays
     * in place where it can: copying it too measured 0.85-0.9x on a one-token decode */
    int64_t ldv = Dv;
    const float *values = w->vbuf;
    if (V->dtype == MFA_DTYPE_F32 && V->stride[3] == 1)
        for (int64_t r = 0; r < nk; r++)
            memcpy(w->vbuf + r * Dv, (const float *)V->data + mfa_offset(V, s->tb, s->k0 + j0 + r, hk, 0),
                   sizeof(float) * (size_t)Dv);
    else
        values = mfa_cpu_rows(k, V, s->tb, hk, s->k0 + j0, nk, Dv, w->vbuf, &ldv);
    k->gemm(n, Dv, nk, w->S, BK, values, ldv, blk->o, Dv, true);
}

/* The block's o [n][Dv], m, l stored: one q head's rows at a time. */
static void finish_block(const decode_job_t *job, int64_t b, int64_t hk, const mfa_seq_t *s, float *o, float *m,
                         float *l) {
    const mfa_problem_t *pr = job->pr;
    for (int64_t g = 0; g < pr->group; g++) {
        const int64_t r0 = g * s->sq;
        mfa_cpu_finish_rows(pr, job->k, b, hk * pr->group + g, s, 0, s->sq, o + r0 * pr->p.head_dim_v, m + r0,
                            l + r0);
    }
}

/* Where kv head hk's block lives for item (split, b): q in the thread's scratch; o, m, l there too,
 * or in the partial of (split, b, hk) when the keys are split. */
static block_t block_at(const decode_job_t *job, const scratch_t *w, int64_t split, int64_t b, int64_t hk) {
    const mfa_problem_t *pr = job->pr;
    const int64_t Dv = pr->p.head_dim_v;
    block_t blk;
    blk.q = w->blocks + (size_t)(hk % job->heads) * block_floats(job);
    blk.o = blk.q + job->rows * pr->p.head_dim_qk, blk.m = blk.o + job->rows * Dv, blk.l = blk.m + job->rows;
    if (job->splits > 1) {
        blk.o = job->partial + (size_t)((split * pr->p.batch + b) * pr->p.heads_kv + hk) * partial_floats(pr);
        blk.m = blk.o + MFA_CPU_BQ * Dv, blk.l = blk.m + MFA_CPU_BQ;
    }
    return blk;
}

/* Item = (split, batch, kv heads [h0, h0 + job->heads)), split-major: the split's key tiles of
 * sequence b, tile by tile with the heads inside. */
static void decode_item(void *arg, int64_t item, int thread) {
    const decode_job_t *job = arg;
    const mfa_problem_t *pr = job->pr;
    const int64_t Dq = pr->p.head_dim_qk, Dv = pr->p.head_dim_v, per_split = pr->p.batch * pr->p.heads_kv / job->heads;
    const int64_t split = item / per_split, b = item % per_split / (pr->p.heads_kv / job->heads);
    const int64_t h0 = item % (pr->p.heads_kv / job->heads) * job->heads, h1 = h0 + job->heads;
    const mfa_seq_t s = mfa_problem_seq(pr, b);
    const int64_t n = s.sq * pr->group;
    scratch_t w = carve(job, thread);
    for (int64_t hk = h0; hk < h1; hk++) {
        const block_t blk = block_at(job, &w, split, b, hk);
        memset(blk.o, 0, sizeof(float) * (size_t)(n * Dv));
        for (int64_t r = 0; r < n; r++) blk.m[r] = -INFINITY, blk.l[r] = 0.0f;
        for (int64_t g = 0; g < pr->group; g++) { /* block row g * sq + i is row i of q head g */
            if (job->bf16_qk && n > DOTS_ROWS) { /* bf16 as they are, for gemm_bf16 */
                uint16_t *rows = (uint16_t *)blk.q + g * s.sq * Dq;
                mfa_cpu_rows_bf16(&pr->p.q, s.tb, hk * pr->group + g, s.q0, s.sq, Dq, rows);
                continue;
            }
            int64_t ldq;
            const float *q = mfa_cpu_rows(job->k, &pr->p.q, s.tb, hk * pr->group + g, s.q0, s.sq, Dq, w.kbuf, &ldq);
            for (int64_t i = 0; i < s.sq; i++)
                memcpy(blk.q + (g * s.sq + i) * Dq, q + i * ldq, sizeof(float) * (size_t)Dq);
        }
    }
    if (n == 0) return;
    int64_t kb_lo, kb_hi;
    split_tiles(job, &s, split, &kb_lo, &kb_hi);
    for (int64_t kb = kb_lo; kb < kb_hi; kb++)
        for (int64_t hk = h0; hk < h1; hk++)
            if (tile_kept(pr, b, hk, &s, kb)) {
                const block_t blk = block_at(job, &w, split, b, hk);
                attend_tile(job, b, hk, &s, n, kb, &blk, &w);
            }
    if (job->splits == 1)
        for (int64_t hk = h0; hk < h1; hk++) {
            const block_t blk = block_at(job, &w, split, b, hk);
            finish_block(job, b, hk, &s, blk.o, blk.m, blk.l);
        }
}

/* The splits of one (batch, kv head) merged, then stored (the merged rows go where the thread's
 * first block would be). */
static void merge_item(void *arg, int64_t pair, int thread) {
    const decode_job_t *job = arg;
    const mfa_problem_t *pr = job->pr;
    const int64_t b = pair / pr->p.heads_kv, hk = pair % pr->p.heads_kv, pairs = pr->p.batch * pr->p.heads_kv;
    const mfa_seq_t s = mfa_problem_seq(pr, b);
    const scratch_t w = carve(job, thread);
    float *o = w.blocks + job->rows * pr->p.head_dim_qk, *m = o + job->rows * pr->p.head_dim_v, *l = m + job->rows;
    /* the partial of split sp is (sp * batch + b) * heads_kv + hk = sp * pairs + pair */
    mfa_cpu_merge_splits(job->partial + (size_t)pair * partial_floats(pr), job->splits,
                         (size_t)pairs * partial_floats(pr), s.sq * pr->group, pr->p.head_dim_v, o, m, l);
    finish_block(job, b, hk, &s, o, m, l);
}

mfa_error_t mfa_cpu_decode_fwd(mfa_context *ctx, const mfa_problem_t *pr) {
    decode_job_t job = {.pr = pr, .k = mfa_cpu_kernels(ctx), .splits = 1, .rows = pr->max_seqlen_q * pr->group};
    const mfa_attention_params_t *p = &pr->p;
    job.bf16_qk = job.k->gemm_bf16 && p->q.dtype == MFA_DTYPE_BF16 && p->k.dtype == MFA_DTYPE_BF16 &&
                  p->head_dim_qk % 2 == 0;
    job.bf16_pv = job.bf16_qk && p->v.dtype == MFA_DTYPE_BF16 && p->o.dtype != MFA_DTYPE_F32;
    const int64_t pairs = pr->p.batch * pr->p.heads_kv;
    if (pairs == 0) return MFA_SUCCESS;
    /* K's memory order: a head's keys contiguous (heads further apart than tokens), or not */
    job.heads = pr->p.k.stride[2] >= pr->p.k.stride[1] ? 1 : pr->p.heads_kv;
    /* Fewer items than twice the threads: split the keys, at least 4 tiles a split. */
    const int64_t k_tiles = (pr->max_seqlen_kv + DECODE_BK - 1) / DECODE_BK, per_split = pairs / job.heads;
    if (per_split < 2 * (int64_t)ctx->num_threads) {
        job.splits = (2 * ctx->num_threads + per_split - 1) / per_split;
        if (job.splits > k_tiles / 4) job.splits = k_tiles / 4 > 0 ? k_tiles / 4 : 1;
    }
    const int64_t items = per_split * job.splits;
    const int threads = mfa_cpu_threads_for(ctx, items > pairs ? items : pairs);
    job.scratch_floats = scratch_floats(&job);
    const size_t partial = job.splits > 1 ? (size_t)(pairs * job.splits) * partial_floats(pr) : 0;
    const size_t bytes = sizeof(float) * (job.scratch_floats * (size_t)threads + partial);
    job.scratch = malloc(bytes);
    if (!job.scratch)
        return mfa_set_error(ctx, MFA_ERROR_MEMORY_ALLOCATION, "cpu forward: cannot allocate %zu bytes of scratch",
                             bytes);
    job.partial = job.scratch + job.scratch_floats * (size_t)threads;
    mfa_cpu_parallel_for(ctx, threads, items, decode_item, &job);
    if (job.splits > 1) mfa_cpu_parallel_for(ctx, mfa_cpu_threads_for(ctx, pairs), pairs, merge_item, &job);
    free(job.scratch);
    return MFA_SUCCESS;
}
