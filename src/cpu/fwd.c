/* fwd.c — the cpu forward: one work item is a block of job.bq query rows of one (batch, q head).
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
    int64_t bq;       /* rows a query block: MFA_CPU_BQ, or MFA_CPU_BQ_NARROW for narrow windows */
    int64_t q_blocks; /* query blocks per (batch, head) */
    int64_t splits;   /* key ranges per query block: > 1 only for decode-like shapes */
    bool wide;        /* blocks that see at most MFA_CPU_WIDE_TILES key tiles go through attend_wide */
    bool bf16_qk;     /* S = Q K^T with the bf16 dot product (q, k bf16, even head_dim_qk) */
    bool bf16_pv;     /* O += P V with P rounded to bf16 too: only for 16-bit outputs, where that
                         rounding (2^-9 relative) is below the output's own */
    float *partial;   /* splits > 1: per (block, split) unnormalised O [BQ][Dv], then m, l [BQ] */
    float *scratch;   /* per thread: scratch_floats each */
    size_t scratch_floats;
} fwd_job_t;

/* Scores a thread keeps: one key tile's, or with attend_wide every tile's a block sees */
static size_t score_floats(const fwd_job_t *job) {
    return (size_t)(job->bq * MFA_CPU_BK * (job->wide ? MFA_CPU_WIDE_TILES : 1));
}

static size_t fwd_scratch_floats(const fwd_job_t *job) {
    const size_t BQ = MFA_CPU_BQ, Dq = (size_t)job->pr->p.head_dim_qk, Dv = (size_t)job->pr->p.head_dim_v;
    return BQ * Dq /* converted Q (or bf16 Q) */ + score_floats(job) /* S, then P */ + BQ * Dv /* O */ +
           2 * BQ /* m, l */ + score_floats(job) / 2 /* P in bf16 */;
}

static size_t partial_floats(const mfa_problem_t *pr) { return MFA_CPU_BQ * (size_t)(pr->p.head_dim_v + 2); }

/* The next key tile's packed K^T and V, pulled toward the cache a part at a time, one part per
 * row of the current tile's softmax (a hint; it never faults). The hardware prefetcher does not
 * see the jump from one packed tile to the next: without this the GEMMs stalled on L3 (with it,
 * 1.24x-1.35x, 1 thread, seq 2048). Spread thin because the misses of a larger part fill the
 * miss buffers and stall the core: one burst per tile measured 0.92x of parts of 8 rows, and
 * those 0.96-0.99x of a part per row. */
typedef struct {
    const void *kt, *v;       /* the GEMMs' B operands: fp32 panels, or bf16 pairs */
    size_t kt_bytes, v_bytes; /* 0: nothing to prefetch */
    size_t kt_step, v_step;   /* 64-byte lines a softmax row */
    bool unpacked;            /* lazy packing: the tile's source rows instead (src) */
    mfa_cpu_kv_source_t src;
} next_tile_t;

/* (rows: the softmax rows its parts go with) */
static next_tile_t next_tile(const fwd_job_t *job, int64_t b, int64_t hk, int64_t kb, int64_t rows) {
    const mfa_problem_t *pr = job->pr;
    const size_t BK = MFA_CPU_BK, Dq = (size_t)pr->p.head_dim_qk, Dv = (size_t)pr->p.head_dim_v;
    next_tile_t next = {0};
    if (mfa_cpu_kv_source(&job->kv, b, hk, kb, &next.src)) {
        next.unpacked = true;
        return next;
    }
    if (job->bf16_qk) {
        next.kt = mfa_cpu_kv_kt_pairs(pr, &job->kv, b, hk, kb), next.kt_bytes = sizeof(uint16_t) * Dq * BK;
    } else {
        const mfa_cpu_panels_t kt = mfa_cpu_kv_kt(pr, &job->kv, b, hk, kb);
        next.kt = kt.data, next.kt_bytes = sizeof(float) * (size_t)(kt.rows * kt.cols);
    }
    if (job->bf16_pv) {
        next.v = mfa_cpu_kv_v_pairs(pr, &job->kv, b, hk, kb), next.v_bytes = sizeof(uint16_t) * BK * Dv;
    } else {
        const mfa_cpu_panels_t v = mfa_cpu_kv_v_rows(pr, &job->kv, b, hk, kb);
        next.v = v.data, next.v_bytes = sizeof(float) * (size_t)(v.rows * v.cols);
    }
    next.kt_step = ((next.kt_bytes + 63) / 64 + (size_t)rows - 1) / (size_t)rows;
    next.v_step = ((next.v_bytes + 63) / 64 + (size_t)rows - 1) / (size_t)rows;
    return next;
}

/* Lines [part * step, (part + 1) * step) of the bytes at p (step: lines a part, rounded up; the
 * hook runs once a row, so no division there) */
static void prefetch_part(const void *p, size_t bytes, int64_t part, size_t step) {
    const size_t line = 64, lines = (bytes + line - 1) / line, lo = (size_t)part * step;
    const size_t hi = lo + step < lines ? lo + step : lines;
    for (size_t i = lo; i < hi; i++) __builtin_prefetch((const char *)p + i * line, 0, 2);
}

static void prefetch_rows(const char *p, int64_t step, size_t bytes, int64_t lo, int64_t hi) {
    for (int64_t c = lo; c < hi; c++)
        for (size_t at = 0; at < bytes; at += 64) __builtin_prefetch(p + c * step + at, 0, 2);
}

/* The part of the next tile that goes with softmax row r of n (mfa_cpu_softmax_step's hook): of
 * its packed K^T and V, or, where it is not packed yet, of the K and V rows it will be packed
 * from (those come from DRAM: a window's tiles are each packed by the query block that first
 * needs them). */
static void prefetch_row(void *arg, int64_t r, int64_t n) {
    const next_tile_t *next = arg;
    if (next->unpacked) {
        const mfa_cpu_kv_source_t *src = &next->src;
        const int64_t lo = src->keys * r / n, hi = src->keys * (r + 1) / n;
        prefetch_rows(src->k, src->k_step, src->k_bytes, lo, hi);
        prefetch_rows(src->v, src->v_step, src->v_bytes, lo, hi);
        return;
    }
    (void)n;
    prefetch_part(next->kt, next->kt_bytes, r, next->kt_step);
    prefetch_part(next->v, next->v_bytes, r, next->v_step);
}

/* One query block's operands and running state: rows [i0, i0 + n) of (batch b, q head h). */
typedef struct {
    int64_t b, h, hk, i0, n;
    int thread; /* the worker running it (the lazy pack's scratch) */
    const mfa_seq_t *s;
    const void *q; /* [n][ldq]: fp32, or bf16 with bf16_qk */
    int64_t ldq;
    float *S;     /* [n][BK] scores, then P */
    uint16_t *pb; /* [n][BK] P in bf16 (bf16_pv) */
    float *o;     /* [n][Dv] unnormalised output */
    float *m, *l; /* [n] running max (base 2) and sum */
} block_t;

/* Key tile kb of the block: its keys [j0, j0 + nk) and the rows [r_lo, r_hi) that see any of them */
typedef struct {
    int64_t j0, nk, r_lo, r_hi;
} tile_view_t;

static tile_view_t tile_view(const mfa_problem_t *pr, const block_t *blk, int64_t kb) {
    tile_view_t t = {.j0 = kb * MFA_CPU_BK};
    t.nk = blk->s->sk - t.j0 < MFA_CPU_BK ? blk->s->sk - t.j0 : MFA_CPU_BK;
    mfa_cpu_tile_rows(pr, blk->s, blk->i0, blk->n, t.j0, t.nk, &t.r_lo, &t.r_hi);
    return t;
}

/* S [n][ldS] = Q K^T of key tile kb (nk keys) for the n query rows at q (blk->ldq apart): the
 * bf16 products with bf16_qk, else fp32; a tile on the mask's edge (band) at panel granularity,
 * row r's columns [lo[r], hi[r]). */
static void tile_scores(const fwd_job_t *job, const block_t *blk, int64_t kb, int64_t n, int64_t nk, const void *q,
                        float *S, int64_t ldS, bool band, const int64_t *lo, const int64_t *hi) {
    const mfa_problem_t *pr = job->pr;
    const mfa_cpu_kernels_t *k = job->k;
    const int64_t Dq = pr->p.head_dim_qk, BK = MFA_CPU_BK;
    if (job->bf16_qk) {
        const uint16_t *kt = mfa_cpu_kv_kt_pairs(pr, &job->kv, blk->b, blk->hk, kb);
        if (band) mfa_cpu_gemm_bf16_band_cols(k, n, nk, Dq, q, blk->ldq, kt, 2 * BK, S, ldS, lo, hi);
        else k->gemm_bf16(n, nk, Dq, q, blk->ldq, kt, 2 * BK, S, ldS, false);
    } else {
        const mfa_cpu_panels_t kt = mfa_cpu_kv_kt(pr, &job->kv, blk->b, blk->hk, kb);
        if (band) mfa_cpu_gemm_band_cols(k, n, nk, Dq, q, blk->ldq, kt, S, ldS, lo, hi);
        else mfa_cpu_gemm_panels(k, n, nk, Dq, q, blk->ldq, kt, S, ldS, false);
    }
}

/* o [n][Dv] += P V of key tile kb (nk keys): P the fp32 rows at P, or with bf16_pv the bf16 rows
 * at pb, ldp apart; bf16 P is taken in pairs of keys, so an odd tile's P must hold a zero after
 * its last key. Band tiles by groups of rows, each over the keys they see. */
static void tile_pv(const fwd_job_t *job, const block_t *blk, int64_t kb, int64_t n, int64_t nk, const float *P,
                    const uint16_t *pb, int64_t ldp, float *o, bool band, const int64_t *lo, const int64_t *hi) {
    const mfa_problem_t *pr = job->pr;
    const mfa_cpu_kernels_t *k = job->k;
    const int64_t Dv = pr->p.head_dim_v;
    if (job->bf16_pv) {
        const int64_t nk2 = (nk + 1) & ~(int64_t)1;
        const uint16_t *vp = mfa_cpu_kv_v_pairs(pr, &job->kv, blk->b, blk->hk, kb);
        if (band) mfa_cpu_gemm_bf16_band_keys(k, n, Dv, nk2, pb, ldp, vp, 2 * Dv, o, Dv, lo, hi, MFA_CPU_BAND_ROWS);
        else k->gemm_bf16(n, Dv, nk2, pb, ldp, vp, 2 * Dv, o, Dv, true);
    } else {
        const mfa_cpu_panels_t v = mfa_cpu_kv_v_rows(pr, &job->kv, blk->b, blk->hk, kb);
        if (band) mfa_cpu_gemm_band_keys(k, n, Dv, nk, P, ldp, v, o, Dv, lo, hi, MFA_CPU_BAND_ROWS);
        else mfa_cpu_gemm_panels(k, n, Dv, nk, P, ldp, v, o, Dv, true);
    }
}

/* Key tile kb against the rows of the block that see any of its keys (the others keep their
 * state): S = Q K^T, the online softmax step, O = O * alpha + P V. `prefetch`: the next key
 * tile to start loading, or -1. */
static void attend_tile(const fwd_job_t *job, const block_t *blk, int64_t kb, int64_t prefetch) {
    const mfa_problem_t *pr = job->pr;
    const mfa_cpu_kernels_t *k = job->k;
    const int64_t Dv = pr->p.head_dim_v, BK = MFA_CPU_BK, b = blk->b, hk = blk->hk;
    const tile_view_t t = tile_view(pr, blk, kb);
    const int64_t j0 = t.j0, nk = t.nk, r_lo = t.r_lo, n = t.r_hi - t.r_lo, i0 = blk->i0 + r_lo;
    if (n == 0 || !mfa_cpu_block_tile_kept(pr, b, blk->h, i0, n, j0, nk)) return;
    mfa_cpu_kv_ready(&job->kv, b, hk, kb, blk->thread);
    const size_t q_size = job->bf16_qk ? sizeof(uint16_t) : sizeof(float);
    const void *q = (const char *)blk->q + (size_t)(r_lo * blk->ldq) * q_size;
    float *S = blk->S + r_lo * BK, *o = blk->o + r_lo * Dv, *m = blk->m + r_lo, *l = blk->l + r_lo;

    /* a tile on the mask's edge: per row, the columns it sees */
    int64_t band_lo[MFA_CPU_BQ], band_hi[MFA_CPU_BQ];
    const bool band = mfa_cpu_tile_band(pr, blk->s, i0, n, j0, nk, band_lo, band_hi);
    tile_scores(job, blk, kb, n, nk, q, S, BK, band, band_lo, band_hi);
    const float mul = mfa_cpu_finish_scores(pr, b, blk->h, blk->s, i0, n, j0, nk, S, BK, NULL);

    next_tile_t next = prefetch >= 0 ? next_tile(job, b, hk, prefetch, n) : (next_tile_t){0};
    uint16_t *pb = job->bf16_pv ? blk->pb + r_lo * BK : NULL;
    mfa_cpu_softmax_step(k, S, BK, n, nk, mul, m, l, o, Dv, Dv, pb, next.kt || next.unpacked ? prefetch_row : NULL,
                         &next);
    if (pb && nk % 2) /* pairs of keys: an odd tile gets a zero key */
        for (int64_t r = 0; r < n; r++) pb[r * BK + nk] = 0;
    tile_pv(job, blk, kb, n, nk, S, pb, BK, o, band, band_lo, band_hi);
}

/* A block that sees few key tiles (narrow windows, short sequences): all of them at once. S for
 * every tile side by side (band tiles at panel granularity, as in attend_tile), then one exact
 * softmax a row over only the keys that row sees, then O = P V tile by tile. Against the online
 * form this drops the running max's corrections (an exp2f and a pass over the row's O whenever
 * the max moves) and the exponentials of masked scores: a band tile is about half masked, and a
 * narrow window's block is mostly band tiles. Plain scores only (no softcap or per-element
 * masks): the visible keys are then exactly the mask's key range. With bf16 products, P is
 * rounded to bf16 for O += P V as in attend_tile (bf16_pv), its row sums taken unrounded. */
static void attend_wide(const fwd_job_t *job, const block_t *blk, int64_t kb_lo, int64_t kb_hi) {
    const mfa_problem_t *pr = job->pr;
    const mfa_cpu_kernels_t *k = job->k;
    const int64_t Dv = pr->p.head_dim_v, BK = MFA_CPU_BK, b = blk->b, hk = blk->hk;
    const int64_t n = blk->n, j_base = kb_lo * BK, W = (kb_hi - kb_lo) * BK; /* S (and pb) are [n][W] */
    const size_t q_size = job->bf16_qk ? sizeof(uint16_t) : sizeof(float);
    int64_t band_lo[MFA_CPU_BQ], band_hi[MFA_CPU_BQ];
    for (int64_t kb = kb_lo; kb < kb_hi; kb++) { /* S = Q K^T, each tile's rows that see it */
        const tile_view_t t = tile_view(pr, blk, kb);
        const int64_t m = t.r_hi - t.r_lo;
        if (m == 0) continue;
        mfa_cpu_kv_ready(&job->kv, b, hk, kb, blk->thread);
        const void *q = (const char *)blk->q + (size_t)(t.r_lo * blk->ldq) * q_size;
        const bool band = mfa_cpu_tile_band(pr, blk->s, blk->i0 + t.r_lo, m, t.j0, t.nk, band_lo, band_hi);
        tile_scores(job, blk, kb, m, t.nk, q, blk->S + t.r_lo * W + (t.j0 - j_base), W, band, band_lo, band_hi);
    }
    const float mul = pr->scale * MFA_LOG2E;
    for (int64_t r = 0; r < n; r++) { /* P over the row's keys [lo, hi), zero around them */
        float *x = blk->S + r * W;
        uint16_t *pb = job->bf16_pv ? blk->pb + r * W : NULL;
        int64_t lo, hi;
        mfa_key_range(pr, blk->i0 + r, blk->s->sq, blk->s->sk, &lo, &hi);
        lo = lo - j_base < 0 ? 0 : lo - j_base, hi = hi - j_base > W ? W : hi - j_base;
        blk->m[r] = -INFINITY, blk->l[r] = 0.0f;
        if (hi > lo) {
            blk->m[r] = k->max(x + lo, hi - lo) * mul;
            if (pb && k->exp2_sum_bf16) {
                blk->l[r] = k->exp2_sum_bf16(x + lo, hi - lo, mul, blk->m[r], pb + lo);
            } else {
                blk->l[r] = k->exp2_sum(x + lo, hi - lo, mul, blk->m[r]);
                if (pb) k->to_bf16(pb + lo, x + lo, hi - lo);
            }
        } else {
            lo = hi = 0;
        }
        if (pb) {
            memset(pb, 0, sizeof(uint16_t) * (size_t)lo);
            memset(pb + hi, 0, sizeof(uint16_t) * (size_t)(W - hi));
        } else {
            memset(x, 0, sizeof(float) * (size_t)lo);
            memset(x + hi, 0, sizeof(float) * (size_t)(W - hi));
        }
    }
    memset(blk->o, 0, sizeof(float) * (size_t)(n * Dv));
    for (int64_t kb = kb_lo; kb < kb_hi; kb++) { /* O += P V (an odd last tile's zero P is in W) */
        const tile_view_t t = tile_view(pr, blk, kb);
        const int64_t m = t.r_hi - t.r_lo, at = t.r_lo * W + (t.j0 - j_base);
        if (m == 0) continue;
        const bool band = mfa_cpu_tile_band(pr, blk->s, blk->i0 + t.r_lo, m, t.j0, t.nk, band_lo, band_hi);
        tile_pv(job, blk, kb, m, t.nk, blk->S + at, job->bf16_pv ? blk->pb + at : NULL, W, blk->o + t.r_lo * Dv, band,
                band_lo, band_hi);
    }
}

/* The block against key tiles [kb_lo, kb_hi): accumulates its o, m and l from zero. */
static void attend(const fwd_job_t *job, const block_t *blk, int64_t kb_lo, int64_t kb_hi) {
    if (job->wide && kb_hi - kb_lo <= MFA_CPU_WIDE_TILES) {
        attend_wide(job, blk, kb_lo, kb_hi);
        return;
    }
    memset(blk->o, 0, sizeof(float) * (size_t)(blk->n * job->pr->p.head_dim_v));
    for (int64_t r = 0; r < blk->n; r++) blk->m[r] = -INFINITY, blk->l[r] = 0.0f;
    for (int64_t kb = kb_lo; kb < kb_hi; kb++) attend_tile(job, blk, kb, kb + 1 < kb_hi ? kb + 1 : -1);
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
    if (!mfa_cpu_qblock(pr, job->q_blocks, job->bq, block, &blk)) return;
    const int64_t b = blk.b, h = blk.h, i0 = blk.i0, n = blk.n;
    const mfa_seq_t s = blk.s;

    float *qbuf = job->scratch + (size_t)thread * job->scratch_floats; /* [n][Dq] */
    float *S = qbuf + MFA_CPU_BQ * Dq;                                  /* [n][BK] */
    float *o = S + score_floats(job);                                   /* [n][Dv] */
    float *m = o + MFA_CPU_BQ * Dv, *l = m + MFA_CPU_BQ;
    uint16_t *pb = (uint16_t *)(l + MFA_CPU_BQ); /* [n][BK] bf16 P */
    if (job->splits > 1) { /* accumulate straight into this split's slot of the partials */
        o = job->partial + (size_t)item * partial_floats(pr);
        m = o + MFA_CPU_BQ * Dv, l = m + MFA_CPU_BQ;
    }
    int64_t ldq = Dq, kb_lo, kb_hi;
    const void *q = qbuf;
    if (job->bf16_qk) { /* bf16 rows as they are, gathered contiguously */
        mfa_cpu_rows_bf16(&pr->p.q, s.tb, h, s.q0 + i0, n, Dq, (uint16_t *)qbuf);
    } else {
        q = mfa_cpu_rows(job->k, &pr->p.q, s.tb, h, s.q0 + i0, n, Dq, qbuf, &ldq);
    }
    split_tiles(job, &s, i0, n, split, &kb_lo, &kb_hi);
    const block_t state = {.b = b, .h = h, .hk = h / pr->group, .i0 = i0, .n = n, .thread = thread, .s = &s, .q = q,
                           .ldq = ldq, .S = S, .pb = pb, .o = o, .m = m, .l = l};
    attend(job, &state, kb_lo, kb_hi);
    if (job->splits == 1) mfa_cpu_finish_rows(pr, job->k, b, h, &s, i0, n, o, m, l);
}

/* Decode shapes: merge the splits of one query block by their maxima (log-sum-exp). */
static void merge_item(void *arg, int64_t block, int thread) {
    const fwd_job_t *job = arg;
    const mfa_problem_t *pr = job->pr;
    const int64_t Dv = pr->p.head_dim_v;
    mfa_cpu_qblock_t blk;
    if (!mfa_cpu_qblock(pr, job->q_blocks, job->bq, block, &blk)) return;
    const int64_t b = blk.b, h = blk.h, i0 = blk.i0, n = blk.n;
    const mfa_seq_t s = blk.s;
    float *o = job->scratch + (size_t)thread * job->scratch_floats, *m = o + MFA_CPU_BQ * Dv, *l = m + MFA_CPU_BQ;
    mfa_cpu_merge_splits(job->partial + (size_t)(block * job->splits) * partial_floats(pr), job->splits,
                         partial_floats(pr), n, Dv, o, m, l);
    mfa_cpu_finish_rows(pr, job->k, b, h, &s, i0, n, o, m, l);
}

/* A sliding window narrow enough that a block of MFA_CPU_BQ_NARROW rows sees at most
 * MFA_CPU_WIDE_TILES key tiles (its keys start anywhere in a tile: one tile more than they fill).
 * There the shorter block won (window 256 at 4096, with attend_wide: 0.977x time against 128 rows
 * in fp32, about 0.99x in bf16): the band tiles on its two edges are then a smaller share of the
 * tiles it visits. */
static bool narrow_window(const mfa_problem_t *pr) {
    const mfa_attention_params_t *p = &pr->p;
    if (p->mask != MFA_MASK_WINDOW || p->window_left < 0 || p->window_right < 0) return false;
    const int64_t keys = MFA_CPU_BQ_NARROW + p->window_left + p->window_right;
    return (keys + MFA_CPU_BK - 1) / MFA_CPU_BK + 1 <= MFA_CPU_WIDE_TILES;
}

mfa_error_t mfa_cpu_fwd(mfa_context *ctx, const mfa_problem_t *pr) {
    if (mfa_cpu_decode_applies(pr)) return mfa_cpu_decode_fwd(ctx, pr);
    const mfa_attention_params_t *p = &pr->p;
    fwd_job_t job = {.pr = pr, .k = mfa_cpu_kernels(ctx), .splits = 1, .bq = MFA_CPU_BQ};
    job.bf16_qk = job.k->gemm_bf16 && p->q.dtype == MFA_DTYPE_BF16 && p->k.dtype == MFA_DTYPE_BF16 &&
                  p->head_dim_qk % 2 == 0;
    job.bf16_pv = job.bf16_qk && p->v.dtype == MFA_DTYPE_BF16 && p->o.dtype != MFA_DTYPE_F32;
    /* attend_wide: plain scores, and a block that may see few tiles (without a mask every block
     * sees them all: no need for its wider scratch) */
    const int64_t k_tiles = (pr->max_seqlen_kv + MFA_CPU_BK - 1) / MFA_CPU_BK;
    job.wide = p->softcap == 0 && !p->block_mask && !p->attn_mask.data &&
               (p->mask != MFA_MASK_NONE || k_tiles <= MFA_CPU_WIDE_TILES);
    if (job.wide && narrow_window(pr)) job.bq = MFA_CPU_BQ_NARROW;
    job.q_blocks = (pr->max_seqlen_q + job.bq - 1) / job.bq;
    const int64_t blocks = pr->p.batch * pr->p.heads_q * job.q_blocks;
    if (blocks == 0) return MFA_SUCCESS;
    /* Fewer query blocks than threads (decode: a few query rows, a long KV): split each block's
     * keys so every thread has work, at least 4 key tiles per split, then merge by LSE. */
    if (blocks < ctx->num_threads && k_tiles >= 8) {
        job.splits = (ctx->num_threads + blocks - 1) / blocks;
        if (job.splits > k_tiles / 4) job.splits = k_tiles / 4;
        job.wide = false; /* attend_wide takes whole blocks */
    }
    const int64_t items = blocks * job.splits;
    const int pack = MFA_CPU_PACK_V_ROWS | MFA_CPU_PACK_LAZY | (job.bf16_qk ? MFA_CPU_PACK_K_PAIRS : 0) |
                     (job.bf16_pv ? MFA_CPU_PACK_V_PAIRS : 0);
    mfa_error_t err = mfa_cpu_kv_pack(ctx, pr, pack, &job.kv);
    if (err) return err;
    const int threads = mfa_cpu_threads_for(ctx, items);
    job.scratch_floats = fwd_scratch_floats(&job);
    const size_t partial = job.splits > 1 ? (size_t)items * partial_floats(pr) : 0;
    const size_t bytes = sizeof(float) * (job.scratch_floats * (size_t)threads + partial);
    job.scratch = malloc(bytes);
    if (!job.scratch) {
        mfa_cpu_kv_free(&job.kv);
        return mfa_set_error(ctx, MFA_ERROR_MEMORY_ALLOCATION, "cpu forward: cannot allocate %zu bytes of scratch",
                             bytes);
    }
    job.partial = job.scratch + job.scratch_floats * (size_t)threads;
    mfa_cpu_parallel_for(ctx, threads, items, fwd_item, &job);
    if (job.splits > 1) mfa_cpu_parallel_for(ctx, mfa_cpu_threads_for(ctx, blocks), blocks, merge_item, &job);
    free(job.scratch);
    mfa_cpu_kv_free(&job.kv);
    return MFA_SUCCESS;
}
