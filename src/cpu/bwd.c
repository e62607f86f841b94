/* bwd.c — the cpu backward (FlashAttention-2's, without atomics, hence deterministic).
 *
 * P is recomputed from the forward's LSE: P_ij = exp(s_ij - lse_i). With dP = dO V^T and
 * D_i = rowsum(dO_i * O_i), dS = P * (dP - D) (times 1 - tanh^2 under softcap), and
 *     dQ = scale * dS K,    dK = scale * dS^T Q,    dV = P^T dO.
 * Three passes, each parallel over independent outputs:
 *   0. D for every (batch, q head, row), laid out like the LSE; Q and dO gathered into fp32 query
 *      blocks (pass 1 reads every block once per key tile: converting it there each time cost
 *      13% of the backward); the dQ accumulators zeroed;
 *   1. per (key chunk, batch, kv head): for each key tile of the chunk, dK and dV over the query
 *      blocks of every q head of the GQA group that see those keys, and dS K added into the
 *      chunk's own fp32 dQ accumulator. P and dS are computed once per (block, tile): five GEMMs
 *      where a dQ pass of its own needed seven (it recomputed S and dP).
 *   2. dQ per query block: the chunks' accumulators summed in chunk order, scaled, stored.
 * A chunk is a run of key tiles; there is more than one per (batch, kv head) only when there are
 * too few of those to keep the threads busy. Nothing is shared between items and every sum has a
 * fixed order, so for a given thread count the result is the same bit for bit on every run. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

typedef struct {
    const mfa_problem_t *pr;
    const mfa_cpu_kernels_t *k;
    mfa_cpu_kv_t kv;
    int64_t q_blocks; /* per (batch, head) */
    int64_t chunks;   /* key chunks per (batch, kv head) in pass 1 */
    float *delta;     /* D, indexed like the LSE */
    float *q_blocks_f32, *do_blocks_f32; /* [b][h][q block][BQ][Dq or Dv]: Q and dO, packed in pass 0 */
    /* bf16 inputs on a CPU with a bf16 dot product: S = Q K^T and dP = dO V^T through gemm_bf16
     * (products of bf16 are exact in fp32, so only the order of the additions changes), from
     * the bf16 rows of Q and dO, packed in pass 0 as well; NULL otherwise */
    uint16_t *q_blocks_bf16, *do_blocks_bf16;
    /* bf16_grads (also bf16 gradients): dV, dK and dQ through gemm_bf16 too, with P and dS
     * rounded to bf16 (as FlashAttention does on GPUs; 2^-9 relative, below the gradients' own
     * rounding). dV^T += dO^T P and dK^T += Q^T dS, so that P and dS are B operands in pairs
     * along the queries, made by one interleaving conversion of two rows, where P^T as an A
     * operand would take a transpose per tile; A is then Q^T / dO^T, transposed once per block
     * in pass 0 ([b][h][q block][D][BQ], two halves of padding at the end). The fp32 Q / dO
     * blocks are then not made at all. */
    bool bf16_grads;
    uint16_t *qt_blocks_bf16, *dot_blocks_bf16;
    float *dq_acc;    /* [chunk][b][h][q block][BQ][Dq]: unscaled dQ, summed in pass 2 */
    float *scratch;
    size_t scratch_floats;
} bwd_job_t;

/* Per-thread scratch, carved from one block. */
typedef struct {
    float *lse2, *delta; /* [BQ]: lse * log2(e), D */
    float *S, *dP, *dcap; /* [BQ][BK]: scores then P; dP then dS; softcap derivative */
    float *T;            /* [BK][BQ]: P^T or dS^T */
    float *acc;          /* dQ [BQ][Dq], or dK [BK][Dq] + dV [BK][Dv], or converted O [BQ][Dv] (pass 0) */
    float *kv_rows;      /* [BK][Dq + Dv]: dK, dV transposed back to rows (bf16_grads) */
} scratch_t;

static size_t scratch_floats(const mfa_problem_t *pr) {
    const size_t BQ = MFA_CPU_BQ, BK = MFA_CPU_BK, Dq = (size_t)pr->p.head_dim_qk, Dv = (size_t)pr->p.head_dim_v;
    const size_t rows = BQ * (Dq > Dv ? Dq : Dv), acc = rows > BK * (Dq + Dv) ? rows : BK * (Dq + Dv);
    return 2 * BQ + 3 * BQ * BK + BK * BQ + acc + BK * (Dq + Dv);
}

static scratch_t carve(const bwd_job_t *job, int thread) {
    const int64_t BQ = MFA_CPU_BQ, BK = MFA_CPU_BK;
    float *at = job->scratch + (size_t)thread * job->scratch_floats;
    scratch_t w;
    w.lse2 = at, at += BQ;
    w.delta = at, at += BQ;
    w.S = at, at += BQ * BK;
    w.dP = at, at += BQ * BK;
    w.dcap = at, at += BQ * BK;
    w.T = at, at += BK * BQ;
    w.acc = at;
    const int64_t Dq = job->pr->p.head_dim_qk, Dv = job->pr->p.head_dim_v, rows = BQ * (Dq > Dv ? Dq : Dv);
    at += rows > BK * (Dq + Dv) ? rows : BK * (Dq + Dv);
    w.kv_rows = at;
    return w;
}

/* The rows of one query block: Q and dO as GEMM operands, the LSE (base 2) and D. */
typedef struct {
    const float *q, *dout;
    const uint16_t *q16, *dout16; /* the same rows in bf16 (bf16 S and dP), or NULL */
    const uint16_t *qt16, *dout_t16; /* bf16_grads: Q^T, dO^T from the rows' first column, row stride BQ */
    int64_t ldq, lddo;
} rows_t;

/* Where row i of (b, h) starts in a packed per-query-block array of rows of `dim` elements (Q, dO, dQ). */
static size_t block_row_at(const bwd_job_t *job, int64_t b, int64_t h, int64_t i, int64_t dim) {
    const int64_t head = b * job->pr->p.heads_q + h;
    return (size_t)((head * job->q_blocks * MFA_CPU_BQ + i) * dim);
}

static float *block_rows(const bwd_job_t *job, float *packed, int64_t b, int64_t h, int64_t i, int64_t dim) {
    return packed + block_row_at(job, b, h, i, dim);
}

/* The same for the bf16 arrays. */
static uint16_t *block_rows_bf16(const bwd_job_t *job, uint16_t *packed, int64_t b, int64_t h, int64_t i, int64_t dim) {
    return packed + block_row_at(job, b, h, i, dim);
}

/* Column i (a row of the block) of (b, h) in a transposed per-query-block array [D][BQ]: the
 * block's [D][BQ] sits where its rows would. */
static uint16_t *block_cols_bf16(const bwd_job_t *job, uint16_t *packed, int64_t b, int64_t h, int64_t i, int64_t dim) {
    const int64_t i0 = i / MFA_CPU_BQ * MFA_CPU_BQ;
    return packed + block_row_at(job, b, h, i0, dim) + (size_t)(i - i0);
}

/* dst[d][r] = src[r][d] for r < n, d < dim (dst row stride BQ), the block's columns past n zero. */
static void transpose_block_bf16(const uint16_t *src, int64_t n, int64_t dim, uint16_t *dst) {
    for (int64_t d = 0; d < dim; d++) {
        for (int64_t r = 0; r < n; r++) dst[d * MFA_CPU_BQ + r] = src[r * dim + d];
        for (int64_t r = n; r < MFA_CPU_BQ; r++) dst[d * MFA_CPU_BQ + r] = 0;
    }
}

/* Row i of (b, h) in chunk c's dQ accumulator. */
static float *dq_rows(const bwd_job_t *job, int64_t c, int64_t b, int64_t h, int64_t i) {
    const mfa_attention_params_t *p = &job->pr->p;
    const size_t chunk = (size_t)(p->batch * p->heads_q * job->q_blocks * MFA_CPU_BQ * p->head_dim_qk);
    return block_rows(job, job->dq_acc + (size_t)c * chunk, b, h, i, p->head_dim_qk);
}

/* Rows [t0, t0 + n) of tensor t (batch index tb, head h) converted into dst [n][dim]. */
static void gather_rows(const bwd_job_t *job, const mfa_tensor_t *t, int64_t tb, int64_t h, int64_t t0, int64_t n,
                        int64_t dim, float *dst) {
    int64_t ld;
    const float *src = mfa_cpu_rows(job->k, t, tb, h, t0, n, dim, dst, &ld);
    if (src != dst)
        for (int64_t r = 0; r < n; r++) memcpy(dst + r * dim, src + r * ld, sizeof(float) * (size_t)dim);
}

static rows_t load_rows(const bwd_job_t *job, int64_t b, int64_t h, const mfa_seq_t *s, int64_t i0, int64_t n,
                        scratch_t *w) {
    const mfa_problem_t *pr = job->pr;
    rows_t r;
    const int64_t Dq = pr->p.head_dim_qk, Dv = pr->p.head_dim_v;
    r.ldq = Dq, r.lddo = Dv;
    r.q = job->q_blocks_f32 ? block_rows(job, job->q_blocks_f32, b, h, i0, Dq) : NULL;
    r.dout = job->do_blocks_f32 ? block_rows(job, job->do_blocks_f32, b, h, i0, Dv) : NULL;
    r.q16 = job->q_blocks_bf16 ? block_rows_bf16(job, job->q_blocks_bf16, b, h, i0, Dq) : NULL;
    r.dout16 = job->do_blocks_bf16 ? block_rows_bf16(job, job->do_blocks_bf16, b, h, i0, Dv) : NULL;
    r.qt16 = job->bf16_grads ? block_cols_bf16(job, job->qt_blocks_bf16, b, h, i0, Dq) : NULL;
    r.dout_t16 = job->bf16_grads ? block_cols_bf16(job, job->dot_blocks_bf16, b, h, i0, Dv) : NULL;
    for (int64_t i = 0; i < n; i++) {
        const int64_t at = mfa_lse_index(pr, b, s, h, i0 + i);
        w->lse2[i] = pr->p.lse[at] * MFA_LOG2E;
        w->delta[i] = job->delta[at];
    }
    return r;
}

/* A tile on the causal/window edge (mfa_cpu_tile_band): per row r the tile's columns [lo, hi) it
 * sees, per key c the rows [r_lo, r_hi) that see it. on = false: every row sees every key. */
typedef struct {
    bool on;
    int64_t lo[MFA_CPU_BQ], hi[MFA_CPU_BQ];
    int64_t r_lo[MFA_CPU_BK], r_hi[MFA_CPU_BK];
} band_t;

static void find_band(const mfa_problem_t *pr, const mfa_seq_t *s, int64_t i0, int64_t n, int64_t j0, int64_t nk,
                      band_t *band) {
    band->on = mfa_cpu_tile_band(pr, s, i0, n, j0, nk, band->lo, band->hi);
    if (!band->on) return;
    int64_t a = 0, z = 0; /* both bounds are non-decreasing in the row, so these only move forward */
    for (int64_t c = 0; c < nk; c++) {
        while (a < n && band->hi[a] <= c) a++;
        if (z < a) z = a;
        while (z < n && band->lo[z] <= c) z++;
        band->r_lo[c] = a, band->r_hi[c] = z;
    }
}

/* For one (query block, key tile): S = Q K^T -> P (in S), dP = dO V^T -> dS (in dP); dq: the
 * block's rows of the dQ accumulator that the caller adds into next. On an edge tile the two
 * products skip the panels a row does not see, and dS is 0 outside each row's columns. */
static void tile_p_ds(const bwd_job_t *job, int64_t b, int64_t h, const mfa_seq_t *s, int64_t i0, int64_t n,
                      int64_t kb, int64_t nk, const rows_t *rows, const band_t *band, scratch_t *w, const float *dq) {
    const mfa_problem_t *pr = job->pr;
    const mfa_cpu_kernels_t *k = job->k;
    const int64_t BK = MFA_CPU_BK, hk = h / pr->group, j0 = kb * BK;
    float *dcap = pr->p.softcap > 0 ? w->dcap : NULL;
    const int64_t Dq = pr->p.head_dim_qk, Dv = pr->p.head_dim_v;
    if (rows->q16) { /* whole tiles: what an edge tile's rows do not see is masked below */
        k->gemm_bf16(n, nk, Dq, rows->q16, Dq, mfa_cpu_kv_kt_pairs(pr, &job->kv, b, hk, kb), 2 * BK, w->S, BK, false);
    } else {
        const mfa_cpu_panels_t kt = mfa_cpu_kv_kt(pr, &job->kv, b, hk, kb);
        if (band->on) mfa_cpu_gemm_band_cols(k, n, nk, Dq, rows->q, rows->ldq, kt, w->S, BK, band->lo, band->hi);
        else mfa_cpu_gemm_panels(k, n, nk, Dq, rows->q, rows->ldq, kt, w->S, BK, false);
    }
    const float mul = mfa_cpu_finish_scores(pr, b, h, s, i0, n, j0, nk, w->S, BK, dcap);
    if (rows->dout16) {
        k->gemm_bf16(n, nk, Dv, rows->dout16, Dv, mfa_cpu_kv_vt_pairs(pr, &job->kv, b, hk, kb), 2 * BK, w->dP, BK,
                     false);
    } else {
        const mfa_cpu_panels_t vt = mfa_cpu_kv_vt(pr, &job->kv, b, hk, kb);
        if (band->on) mfa_cpu_gemm_band_cols(k, n, nk, Dv, rows->dout, rows->lddo, vt, w->dP, BK, band->lo, band->hi);
        else mfa_cpu_gemm_panels(k, n, nk, Dv, rows->dout, rows->lddo, vt, w->dP, BK, false);
    }
    for (int64_t r = 0; r < n; r++) {
        /* The dQ rows this tile adds into next, pulled in for writing while the softmax runs: the
         * dQ GEMM otherwise starts every 6-row block on a load of C from L3 (1.05-1.15x). Then
         * the packed Q and dO rows that follow this block's (the next block's, usually), the A
         * operands of the next S and dP GEMMs (1.03-1.07x on 2 threads, 1.00x on 1). */
        for (int64_t e = 0; e < Dq; e += 16) __builtin_prefetch(dq + r * Dq + e, 1, 2);
        if (rows->q) {
            for (int64_t e = 0; e < Dq; e += 16) __builtin_prefetch(rows->q + (n + r) * rows->ldq + e, 0, 2);
            for (int64_t e = 0; e < Dv; e += 16) __builtin_prefetch(rows->dout + (n + r) * rows->lddo + e, 0, 2);
        }
        float *P = w->S + r * BK, *dS = w->dP + r * BK;
        if (w->lse2[r] == -INFINITY) memset(P, 0, sizeof(float) * (size_t)nk); /* a row that kept nothing */
        else k->exp2_sum(P, nk, mul, w->lse2[r]);
        const float D = w->delta[r];
        const int64_t c_lo = band->on ? band->lo[r] : 0, c_hi = band->on ? band->hi[r] : nk;
        for (int64_t c = 0; c < c_lo; c++) dS[c] = 0.0f; /* dP was not computed there */
        for (int64_t c = c_lo; c < c_hi; c++) dS[c] = P[c] * (dS[c] - D);
        for (int64_t c = c_hi; c < nk; c++) dS[c] = 0.0f;
        if (dcap)
            for (int64_t c = 0; c < nk; c++) dS[c] *= dcap[r * BK + c];
    }
}

/* dst[c][r] = src[r][c] for r < n, c < nk (src has row stride BK, dst BQ). */
static void transpose(const float *src, int64_t n, int64_t nk, float *dst) {
    for (int64_t r = 0; r < n; r++)
        for (int64_t c = 0; c < nk; c++) dst[c * MFA_CPU_BQ + r] = src[r * MFA_CPU_BK + c];
}

/* Pass 0: D_i = sum_e dO_ie * O_ie for one query block; its Q and dO rows packed, its dQ
 * accumulators zeroed. */
static void delta_item(void *arg, int64_t item, int thread) {
    const bwd_job_t *job = arg;
    const mfa_problem_t *pr = job->pr;
    const int64_t Dq = pr->p.head_dim_qk, Dv = pr->p.head_dim_v;
    mfa_cpu_qblock_t blk;
    if (!mfa_cpu_qblock(pr, job->q_blocks, MFA_CPU_BQ, item, &blk)) return;
    const int64_t b = blk.b, h = blk.h, i0 = blk.i0, n = blk.n;
    const mfa_seq_t s = blk.s;
    scratch_t w = carve(job, thread);
    float *g = NULL;
    if (job->q_blocks_f32) {
        gather_rows(job, &pr->p.q, s.tb, h, s.q0 + i0, n, Dq, block_rows(job, job->q_blocks_f32, b, h, i0, Dq));
        g = block_rows(job, job->do_blocks_f32, b, h, i0, Dv);
        gather_rows(job, &pr->p.dout, s.tb, h, s.q0 + i0, n, Dv, g);
    }
    uint16_t *q16 = NULL, *g16 = NULL;
    if (job->q_blocks_bf16) {
        q16 = block_rows_bf16(job, job->q_blocks_bf16, b, h, i0, Dq);
        g16 = block_rows_bf16(job, job->do_blocks_bf16, b, h, i0, Dv);
        mfa_cpu_rows_bf16(&pr->p.q, s.tb, h, s.q0 + i0, n, Dq, q16);
        mfa_cpu_rows_bf16(&pr->p.dout, s.tb, h, s.q0 + i0, n, Dv, g16);
    }
    if (job->bf16_grads) {
        transpose_block_bf16(q16, n, Dq, block_cols_bf16(job, job->qt_blocks_bf16, b, h, i0, Dq));
        transpose_block_bf16(g16, n, Dv, block_cols_bf16(job, job->dot_blocks_bf16, b, h, i0, Dv));
    }
    int64_t ldo;
    const float *o = mfa_cpu_rows(job->k, &pr->p.o, s.tb, h, s.q0 + i0, n, Dv, w.acc, &ldo);
    for (int64_t r = 0; r < n; r++) {
        float sum = 0.0f;
        if (g)
            for (int64_t e = 0; e < Dv; e++) sum += o[r * ldo + e] * g[r * Dv + e];
        else
            for (int64_t e = 0; e < Dv; e++) sum += o[r * ldo + e] * mfa_bf16_to_f32(g16[r * Dv + e]);
        job->delta[mfa_lse_index(pr, b, &s, h, i0 + r)] = sum;
    }
    for (int64_t c = 0; c < job->chunks; c++) memset(dq_rows(job, c, b, h, i0), 0, sizeof(float) * (size_t)(n * Dq));
}

/* dK (scaled) and dV of one key tile stored; with bf16_grads they were accumulated transposed
 * ([D][BK]) and go through `rows` ([BK][Dq + Dv] floats) first. */
static void k_scale_store(const bwd_job_t *job, const mfa_seq_t *s, int64_t hk, int64_t j0, int64_t nk, float *dk,
                          float *dv, float *rows) {
    const mfa_problem_t *pr = job->pr;
    const int64_t Dq = pr->p.head_dim_qk, Dv = pr->p.head_dim_v;
    if (job->bf16_grads) {
        float *k_rows = rows, *v_rows = rows + MFA_CPU_BK * Dq;
        for (int64_t d = 0; d < Dq; d++)
            for (int64_t c = 0; c < nk; c++) k_rows[c * Dq + d] = dk[d * MFA_CPU_BK + c];
        for (int64_t d = 0; d < Dv; d++)
            for (int64_t c = 0; c < nk; c++) v_rows[c * Dv + d] = dv[d * MFA_CPU_BK + c];
        dk = k_rows, dv = v_rows;
    }
    job->k->scale(dk, nk * pr->p.head_dim_qk, pr->scale);
    mfa_cpu_store_rows(job->k, &pr->p.dk, s->tb, hk, s->k0 + j0, nk, pr->p.head_dim_qk, dk);
    mfa_cpu_store_rows(job->k, &pr->p.dv, s->tb, hk, s->k0 + j0, nk, pr->p.head_dim_v, dv);
}

/* Rows r and r + 1 of x [n][BK] (nk columns) as B pairs along the rows, for r < n by twos (a
 * last odd row pairs with zeros). */
static void row_pairs(const mfa_cpu_kernels_t *k, const float *x, int64_t n, int64_t nk, uint16_t *out) {
    for (int64_t r = 0; r < n; r += 2)
        k->to_bf16_pairs(x + r * MFA_CPU_BK, r + 1 < n ? x + (r + 1) * MFA_CPU_BK : NULL, nk, out + r * MFA_CPU_BK);
}

/* The three gradient products of one (query block, key tile) in bf16 (bwd_job_t.bf16_grads),
 * from P in w->S and dS in w->dP: dV^T += dO^T P, dK^T += Q^T dS (dv, dk are [D][BK]), dQ += dS K.
 * Whole tiles: P and dS are 0 wherever a row does not see a key. The A operands' pairs run
 * over n rounded up to even; the extra column is the next row of the block (or padding) and
 * meets the zero that pairs a last odd row. */
static void grads_bf16(const bwd_job_t *job, int64_t b, int64_t hk, int64_t kb, int64_t nk, int64_t n,
                       const rows_t *rows, scratch_t *w, float *dk, float *dv, float *dq) {
    const mfa_problem_t *pr = job->pr;
    const mfa_cpu_kernels_t *k = job->k;
    const int64_t Dq = pr->p.head_dim_qk, Dv = pr->p.head_dim_v, BK = MFA_CPU_BK, BQ = MFA_CPU_BQ;
    const int64_t n2 = (n + 1) & ~(int64_t)1, nk2 = (nk + 1) & ~(int64_t)1;
    uint16_t *pairs = (uint16_t *)w->T, *ds16 = pairs + BQ * BK; /* [BQ/2][BK][2], [BQ][BK]: w->T holds both */
    row_pairs(k, w->S, n, nk, pairs);
    k->gemm_bf16(Dv, nk, n2, rows->dout_t16, BQ, pairs, 2 * BK, dv, BK, true);
    row_pairs(k, w->dP, n, nk, pairs);
    k->gemm_bf16(Dq, nk, n2, rows->qt16, BQ, pairs, 2 * BK, dk, BK, true);
    for (int64_t r = 0; r < n; r++) {
        k->to_bf16(ds16 + r * BK, w->dP + r * BK, nk);
        if (nk2 > nk) ds16[r * BK + nk] = 0;
    }
    k->gemm_bf16(n, Dq, nk2, ds16, BK, mfa_cpu_kv_k_row_pairs(pr, &job->kv, b, hk, kb), 2 * Dq, dq, Dq, true);
}

/* Pass 1 for one key tile and the rows [i0, i0 + n) of q head h that see its keys:
 * dV += P^T dO, dK += dS^T Q (unscaled), and dS K into chunk c's dQ accumulator. */
static void tile_grads(const bwd_job_t *job, int64_t c, int64_t b, int64_t h, const mfa_seq_t *s, int64_t i0,
                       int64_t n, int64_t kb, int64_t nk, float *dk, float *dv, scratch_t *w) {
    const mfa_problem_t *pr = job->pr;
    const mfa_cpu_kernels_t *k = job->k;
    const int64_t Dq = pr->p.head_dim_qk, Dv = pr->p.head_dim_v, BQ = MFA_CPU_BQ;
    const rows_t rows = load_rows(job, b, h, s, i0, n, w);
    band_t band;
    find_band(pr, s, i0, n, kb * MFA_CPU_BK, nk, &band);
    float *dq = dq_rows(job, c, b, h, i0);
    tile_p_ds(job, b, h, s, i0, n, kb, nk, &rows, &band, w, dq);
    const int64_t G = MFA_CPU_BAND_ROWS;
    if (job->bf16_grads) {
        grads_bf16(job, b, h / pr->group, kb, nk, n, &rows, w, dk, dv, dq);
        return;
    }
    const mfa_cpu_panels_t k_rows = mfa_cpu_kv_k_rows(pr, &job->kv, b, h / pr->group, kb);
    transpose(w->S, n, nk, w->T); /* P^T */
    if (band.on) mfa_cpu_gemm_band_keys_rows(k, nk, Dv, n, w->T, BQ, rows.dout, rows.lddo, dv, Dv, band.r_lo, band.r_hi, G);
    else k->gemm(nk, Dv, n, w->T, BQ, rows.dout, rows.lddo, dv, Dv, true);
    transpose(w->dP, n, nk, w->T); /* dS^T */
    if (band.on) mfa_cpu_gemm_band_keys_rows(k, nk, Dq, n, w->T, BQ, rows.q, rows.ldq, dk, Dq, band.r_lo, band.r_hi, G);
    else k->gemm(nk, Dq, n, w->T, BQ, rows.q, rows.ldq, dk, Dq, true);
    if (band.on) mfa_cpu_gemm_band_keys(k, n, Dq, nk, w->dP, MFA_CPU_BK, k_rows, dq, Dq, band.lo, band.hi, G);
    else mfa_cpu_gemm_panels(k, n, Dq, nk, w->dP, MFA_CPU_BK, k_rows, dq, Dq, true);
}

/* Pass 1: one chunk of key tiles of one (batch, kv head). Items are numbered chunk-major, so
 * under a causal mask the first chunks (keys every query sees: the most work) go out first. */
static void kv_item(void *arg, int64_t item, int thread) {
    const bwd_job_t *job = arg;
    const mfa_problem_t *pr = job->pr;
    const int64_t Dq = pr->p.head_dim_qk, Dv = pr->p.head_dim_v, BK = MFA_CPU_BK, BQ = MFA_CPU_BQ;
    const int64_t heads = pr->p.batch * pr->p.heads_kv, tiles = job->kv.k_blocks;
    const int64_t c = item / heads, hk = item % heads % pr->p.heads_kv, b = item % heads / pr->p.heads_kv;
    const mfa_seq_t s = mfa_problem_seq(pr, b);
    scratch_t w = carve(job, thread);
    float *dk = w.acc, *dv = w.acc + BK * Dq; /* [nk][Dq], [nk][Dv] */

    for (int64_t kb = c * tiles / job->chunks; kb < (c + 1) * tiles / job->chunks && kb * BK < s.sk; kb++) {
        const int64_t j0 = kb * BK, nk = s.sk - j0 < BK ? s.sk - j0 : BK;
        memset(w.acc, 0, sizeof(float) * (size_t)(BK * (Dq + Dv)));
        for (int64_t h = hk * pr->group; h < (hk + 1) * pr->group; h++)
            for (int64_t i0 = 0; i0 < s.sq; i0 += BQ) {
                int64_t r_lo, r_hi; /* the rows of the block that see any key of the tile */
                mfa_cpu_tile_rows(pr, &s, i0, s.sq - i0 < BQ ? s.sq - i0 : BQ, j0, nk, &r_lo, &r_hi);
                const int64_t n = r_hi - r_lo;
                if (n > 0 && mfa_cpu_block_tile_kept(pr, b, h, i0 + r_lo, n, j0, nk))
                    tile_grads(job, c, b, h, &s, i0 + r_lo, n, kb, nk, dk, dv, &w);
            }
        k_scale_store(job, &s, hk, j0, nk, dk, dv, w.kv_rows);
    }
}

/* Pass 2: dQ = scale * (the chunks' accumulators summed in chunk order) for one query block. */
static void dq_item(void *arg, int64_t item, int thread) {
    (void)thread;
    const bwd_job_t *job = arg;
    const mfa_problem_t *pr = job->pr;
    const int64_t Dq = pr->p.head_dim_qk;
    mfa_cpu_qblock_t blk;
    if (!mfa_cpu_qblock(pr, job->q_blocks, MFA_CPU_BQ, item, &blk)) return;
    float *dq = dq_rows(job, 0, blk.b, blk.h, blk.i0);
    for (int64_t c = 1; c < job->chunks; c++) {
        const float *more = dq_rows(job, c, blk.b, blk.h, blk.i0);
        for (int64_t e = 0; e < blk.n * Dq; e++) dq[e] += more[e];
    }
    job->k->scale(dq, blk.n * Dq, pr->scale);
    mfa_cpu_store_rows(job->k, &pr->p.dq, blk.s.tb, blk.h, blk.s.q0 + blk.i0, blk.n, Dq, dq);
}

/* Key chunks per (batch, kv head): one, unless there are fewer (batch, kv head) pairs than
 * twice the threads (then enough for that, at most one per key tile). Each chunk adds a dQ
 * accumulator the size of dQ in fp32. */
static int64_t key_chunks(const mfa_problem_t *pr, int threads, int64_t tiles) {
    const int64_t heads = pr->p.batch * pr->p.heads_kv;
    int64_t chunks = (2 * threads + heads - 1) / heads;
    if (chunks > tiles) chunks = tiles;
    return chunks < 1 ? 1 : chunks;
}

mfa_error_t mfa_cpu_bwd(mfa_context *ctx, const mfa_problem_t *pr) {
    const mfa_attention_params_t *p = &pr->p;
    bwd_job_t job = {.pr = pr, .k = mfa_cpu_kernels(ctx)};
    job.q_blocks = (pr->max_seqlen_q + MFA_CPU_BQ - 1) / MFA_CPU_BQ;
    const bool bf16 = job.k->gemm_bf16 && p->q.dtype == MFA_DTYPE_BF16 && p->k.dtype == MFA_DTYPE_BF16 &&
                      p->v.dtype == MFA_DTYPE_BF16 && p->dout.dtype == MFA_DTYPE_BF16 && p->head_dim_qk % 2 == 0 &&
                      p->head_dim_v % 2 == 0;
    /* and every product in bf16 when the gradients are 16-bit too (fp32 gradients keep P and dS
     * in fp32: rounding them would cost those outputs their accuracy) */
    job.bf16_grads = bf16 && mfa_dtype_size(p->dq.dtype) == 2 && mfa_dtype_size(p->dk.dtype) == 2 &&
                     mfa_dtype_size(p->dv.dtype) == 2 && job.k->to_bf16_pairs;
    const int pack = MFA_CPU_PACK_VT | MFA_CPU_PACK_K_ROWS | (bf16 ? MFA_CPU_PACK_K_PAIRS | MFA_CPU_PACK_VT_PAIRS : 0) |
                     (job.bf16_grads ? MFA_CPU_PACK_K_ROW_PAIRS : 0);
    mfa_error_t err = mfa_cpu_kv_pack(ctx, pr, pack, &job.kv);
    if (err) return err;
    job.chunks = key_chunks(pr, ctx->num_threads, job.kv.k_blocks);
    const int64_t q_items = p->batch * p->heads_q * job.q_blocks;
    const int64_t k_items = job.chunks * p->batch * p->heads_kv;
    const int threads = mfa_cpu_threads_for(ctx, q_items > k_items ? q_items : k_items);
    const size_t delta_floats = (size_t)(p->batch * p->heads_q * p->seqlen_q); /* varlen: heads * total */
    const size_t packed_rows = (size_t)(q_items * MFA_CPU_BQ); /* rows of every packed query block */
    job.scratch_floats = scratch_floats(pr);
    /* one block: per-thread scratch, D, the dQ accumulators, the fp32 Q / dO blocks (not with
     * bf16_grads), then the bf16 rows and the bf16 transposed blocks (+ 2 halves of padding) */
    const size_t Dq = (size_t)p->head_dim_qk, Dv = (size_t)p->head_dim_v;
    const size_t f32_rows = job.bf16_grads ? 0 : packed_rows * (Dq + Dv);
    const size_t halves = (bf16 ? packed_rows * (Dq + Dv) : 0) + (job.bf16_grads ? packed_rows * (Dq + Dv) + 2 : 0);
    const size_t floats = job.scratch_floats * (size_t)threads + delta_floats + packed_rows * Dq * (size_t)job.chunks +
                          f32_rows + (halves + 1) / 2;
    job.scratch = malloc(sizeof(float) * floats);
    if (!job.scratch) {
        mfa_cpu_kv_free(&job.kv);
        return mfa_set_error(ctx, MFA_ERROR_MEMORY_ALLOCATION, "cpu backward: cannot allocate %zu bytes of scratch",
                             sizeof(float) * floats);
    }
    job.delta = job.scratch + job.scratch_floats * (size_t)threads;
    job.dq_acc = job.delta + delta_floats;
    float *at = job.dq_acc + packed_rows * Dq * (size_t)job.chunks;
    if (!job.bf16_grads) job.q_blocks_f32 = at, job.do_blocks_f32 = at + packed_rows * Dq, at += f32_rows;
    uint16_t *half = (uint16_t *)at;
    if (bf16) job.q_blocks_bf16 = half, job.do_blocks_bf16 = half + packed_rows * Dq, half += packed_rows * (Dq + Dv);
    if (job.bf16_grads) {
        job.qt_blocks_bf16 = half, job.dot_blocks_bf16 = half + packed_rows * Dq, half += packed_rows * (Dq + Dv);
        half[0] = half[1] = 0; /* read by a last block's odd row count, against a zero */
    }
    mfa_cpu_parallel_for(ctx, threads, q_items, delta_item, &job);
    mfa_cpu_parallel_for(ctx, threads, k_items, kv_item, &job);
    mfa_cpu_parallel_for(ctx, threads, q_items, dq_item, &job);
    free(job.scratch);
    mfa_cpu_kv_free(&job.kv);
    return MFA_SUCCESS;
}
