/* cpu.h — shared pieces of the cpu backend: tile sizes, per-context state, the K/V packing,
 * the score finishing shared by forward and backward, and the thread pool entry point.
 *
 * The algorithm is FlashAttention-2's (Dao, 2023): queries in blocks of MFA_CPU_BQ rows, keys in
 * tiles of MFA_CPU_BK, an online softmax in fp32 (base 2), O(seq) extra memory besides one fp32
 * packed copy of K (and V where needed). Every matrix product is the kernel table's gemm. */
#ifndef MFA_CPU_H
#define MFA_CPU_H

#include <stdatomic.h>

#include "../backend.h"
#include "kernels.h"

/* Key tiles of 64: a packed K^T tile for head_dim 128 is 32 KiB, so the GEMM's B panel and the
 * score tile stay in L1/L2 of one core. Query blocks of 128: each K/V tile, streamed from L3
 * (a head's K and V outgrow a 512 KiB L2 from seq 1024 at head_dim 128), then serves 128 rows,
 * and the 6-row microkernel's remainder block is 2 rows in 128 instead of 4 in 64. Measured
 * against 64 on the 2-core EPYC (Zen 3, 1 thread, (1, 8, 2048, D)): forward 1.05x at D 64, 1.11x
 * at D 128, causal 1.01x (its diagonal tiles waste twice as much), backward 1.05x; 96 and 192
 * were no better than 128, key tiles of 128 no better than 64. */
#define MFA_CPU_BQ 128
#define MFA_CPU_BK 64
/* Narrow windows (fwd.c, attend_wide): blocks of MFA_CPU_BQ_NARROW rows, whose scores for all
 * the key tiles they see, at most MFA_CPU_WIDE_TILES, are kept at once. */
#define MFA_CPU_BQ_NARROW 64
#define MFA_CPU_WIDE_TILES 8
/* Largest head dim the cpu backend takes (scratch grows linearly with it). */
#define MFA_CPU_MAX_HEAD_DIM 512

#define MFA_LOG2E 1.4426950408889634f
#define MFA_LN2 0.6931471805599453f

typedef struct mfa_cpu_state {
    const mfa_cpu_kernels_t *kernels; /* chosen once per context */
    /* The K/V pack buffer, kept between calls (a context serves one call at a time): a fresh
     * allocation of that size is fresh pages, and their faults were 12 % of a seq-4096 sliding-
     * window forward, where each packed tile serves only ~3 query blocks. */
    void *pack_mem;
    size_t pack_bytes;
    struct mfa_cpu_pool *pool; /* the context's worker threads (threads.c); NULL: the caller alone */
} mfa_cpu_state_t;

static inline const mfa_cpu_kernels_t *mfa_cpu_kernels(const mfa_context *ctx) {
    return ((const mfa_cpu_state_t *)ctx->backend_state)->kernels;
}

/* ---- threads ---- */
/* Runs fn(arg, item, thread) for item in [0, n_items) on `threads` threads (the caller and
 * ctx's workers; thread ids in [0, threads)), items handed out dynamically in increasing order. */
typedef void (*mfa_cpu_task_fn)(void *arg, int64_t item, int thread);
typedef struct mfa_cpu_pool mfa_cpu_pool_t;
mfa_cpu_pool_t *mfa_cpu_pool_create(void); /* no threads yet: they start on first use */
void mfa_cpu_pool_destroy(mfa_cpu_pool_t *pool);
int mfa_cpu_threads_for(const mfa_context *ctx, int64_t n_items);
void mfa_cpu_parallel_for(mfa_context *ctx, int threads, int64_t n_items, mfa_cpu_task_fn fn, void *arg);

/* ---- query blocks ---- */
/* Work item `block` of a pass over query blocks of every (batch, q head). Items are numbered
 * longest first: the last query blocks of every (batch, head) see the most causal keys, so they
 * are handed out first and the threads finish together. */
typedef struct mfa_cpu_qblock {
    int64_t b, h;  /* batch, q head */
    mfa_seq_t s;   /* the sequence of batch b */
    int64_t i0, n; /* rows [i0, i0 + n) of it */
} mfa_cpu_qblock_t;

/* Fills *qb for item `block` (q_blocks blocks of bq <= MFA_CPU_BQ rows per (batch, head)); false
 * when the block lies past the end of its sequence (varlen) and there is nothing to do. */
static inline bool mfa_cpu_qblock(const mfa_problem_t *pr, int64_t q_blocks, int64_t bq, int64_t block,
                                  mfa_cpu_qblock_t *qb) {
    const int64_t bh = pr->p.batch * pr->p.heads_q;
    const int64_t index = q_blocks - 1 - block / bh;
    qb->h = block % bh % pr->p.heads_q;
    qb->b = block % bh / pr->p.heads_q;
    qb->s = mfa_problem_seq(pr, qb->b);
    qb->i0 = index * bq;
    qb->n = qb->s.sq - qb->i0 < bq ? qb->s.sq - qb->i0 : bq;
    return qb->i0 < qb->s.sq;
}

/* ---- fp32 views of tensor rows ---- */
/* Tokens [t0, t0 + n) of `head` (batch index tb) as an fp32 row-major matrix: a pointer into the
 * tensor itself when it is f32 with unit dim stride (*ld = stride[1]), otherwise converted into
 * scratch (*ld = dim). */
const float *mfa_cpu_rows(const mfa_cpu_kernels_t *k, const mfa_tensor_t *t, int64_t tb, int64_t head, int64_t t0,
                          int64_t n, int64_t dim, float *scratch, int64_t *ld);
/* Tokens [t0, t0 + n) of bf16 tensor t (batch index tb, head `head`) copied as they are into
 * dst [n][dim] (the bf16 dot product's A rows). */
void mfa_cpu_rows_bf16(const mfa_tensor_t *t, int64_t tb, int64_t head, int64_t t0, int64_t n, int64_t dim,
                       uint16_t *dst);
/* Stores fp32 rows src[r * dim + d] into tokens [t0, t0 + n) of tensor t, in its dtype (bf16
 * through k's to_bf16 where the table has one). */
void mfa_cpu_store_rows(const mfa_cpu_kernels_t *k, const mfa_tensor_t *t, int64_t tb, int64_t head, int64_t t0,
                        int64_t n, int64_t dim, const float *src);

/* ---- packed GEMM operands ----
 * A B operand [rows][cols] stored as column panels of the kernel table's width nr: panel p holds
 * columns [p*nr, p*nr + w) (w = nr, or what is left for the last one) as a row-major [rows][w]
 * block, the panels one after another. The microkernel then reads its K x nr panel as one
 * contiguous stream instead of one cache line per row at a stride of the row length (rows 512
 * bytes apart use an eighth of the L1 sets): the forward's GEMMs over L3-resident tiles ran 1.17x
 * faster at head_dim 128, the forward 1.03x on 2 threads. nr = 0 is plain row-major. */
typedef struct mfa_cpu_panels {
    const float *data;
    int64_t rows, cols; /* the stored extents; a GEMM may use fewer (a key tile's last keys) */
} mfa_cpu_panels_t;

/* Offset of element (r, c) of a [rows][cols] operand stored in panels of nr columns. */
static inline int64_t mfa_cpu_panel_offset(int64_t nr, int64_t rows, int64_t cols, int64_t r, int64_t c) {
    const int64_t width = nr > 0 ? nr : cols, first = c / width * width;
    const int64_t w = cols - first < width ? cols - first : width;
    return first * rows + r * w + (c - first);
}

/* C[M][N] (+)= A[M][K] . B[K][N] with B in panels (K <= B.rows, N <= B.cols): the kernel
 * table's gemm once per panel. */
void mfa_cpu_gemm_panels(const mfa_cpu_kernels_t *k, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                         mfa_cpu_panels_t B, float *C, int64_t ldc, bool accumulate);

/* ---- K/V packed once per call (the forward: each tile on first use) ----
 * Tiles are aligned to multiples of MFA_CPU_BK from each sequence's first key; tile (b, hk, kb)
 * holds keys [kb*BK, kb*BK + BK) of sequence b and kv head hk, zero-padded past the end. The fp32
 * tiles are B operands in panels (above), nr from the kernel table. */
typedef struct mfa_cpu_kv {
    void *mem;        /* the context's pack buffer, behind every array below */
    int64_t k_blocks; /* tiles per (sequence, kv head) */
    int64_t nr;       /* panel width of the fp32 tiles */
    float *kt;        /* [b][hk][kb] tiles of K^T [head_dim_qk][BK]: B of S = Q K^T */
    float *vt;        /* [b][hk][kb] tiles of V^T [head_dim_v][BK]: B of dP = dO V^T (backward), or NULL */
    float *k_rows;    /* [b][hk][kb] tiles of K [BK][head_dim_qk]: B of dQ += dS K (backward), or NULL */
    float *v_rows;    /* [b][hk][kb] tiles of V [BK][head_dim_v]: B of O += P V, or NULL */
    /* bf16 pairs for gemm_bf16 (bf16 inputs on a CPU with a bf16 dot product): */
    uint16_t *kt_pairs; /* [b][hk][kb][head_dim_qk/2][BK][2]: K^T, pairs along the dim */
    uint16_t *v_pairs;  /* [b][hk][kb][BK/2][head_dim_v][2]: V, pairs along the keys */
    uint16_t *vt_pairs; /* [b][hk][kb][head_dim_v/2][BK][2]: V^T, pairs along the dim (backward dP) */
    uint16_t *k_row_pairs; /* [b][hk][kb][BK/2][head_dim_qk][2]: K, pairs along the keys (backward dQ) */
    /* MFA_CPU_PACK_LAZY: each tile packed by the first thread that needs it (mfa_cpu_kv_ready) */
    _Atomic(unsigned char) *state; /* [b][hk][kb]: idle, being packed, packed (pack.c); NULL: all packed */
    const mfa_problem_t *pr;
    const mfa_cpu_kernels_t *k;
    float *rows; /* per thread: the packers' converted rows, row_floats each */
    int64_t row_floats;
} mfa_cpu_kv_t;

enum {
    MFA_CPU_PACK_VT = 1,
    MFA_CPU_PACK_K_ROWS = 2,
    MFA_CPU_PACK_V_ROWS = 4,
    MFA_CPU_PACK_K_PAIRS = 8,  /* instead of kt */
    MFA_CPU_PACK_V_PAIRS = 16, /* instead of v_rows */
    MFA_CPU_PACK_LAZY = 32,    /* no pass: tiles packed on first use (mfa_cpu_kv_ready) */
    MFA_CPU_PACK_VT_PAIRS = 64, /* instead of vt */
    MFA_CPU_PACK_K_ROW_PAIRS = 128, /* instead of k_rows */
};
mfa_error_t mfa_cpu_kv_pack(mfa_context *ctx, const mfa_problem_t *pr, int what, mfa_cpu_kv_t *kv);
/* With MFA_CPU_PACK_LAZY: tile (b, hk, kb) packed before it returns, by this thread (`thread` <
 * the context's threads) if no other has started it, else after waiting for the one that has. A
 * no-op for tiles packed by the pass. */
void mfa_cpu_kv_ready(const mfa_cpu_kv_t *kv, int64_t b, int64_t hk, int64_t kb, int thread);
/* Where tile (b, hk, kb) will be packed from while it is not yet (lazy packing): key c's K row at
 * k + c * k_step (k_bytes long), its V row likewise, for c < keys. False when the tile is packed
 * or being packed, or its rows are not contiguous. */
typedef struct {
    const char *k, *v;
    int64_t k_step, v_step, keys;
    size_t k_bytes, v_bytes;
} mfa_cpu_kv_source_t;
bool mfa_cpu_kv_source(const mfa_cpu_kv_t *kv, int64_t b, int64_t hk, int64_t kb, mfa_cpu_kv_source_t *src);
/* Ends kv's use of the context's pack buffer (which the context keeps, see mfa_cpu_state_t). */
void mfa_cpu_kv_free(mfa_cpu_kv_t *kv);
/* The packed tiles of (batch b, kv head hk, key tile kb). */
mfa_cpu_panels_t mfa_cpu_kv_kt(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, int64_t b, int64_t hk, int64_t kb);
mfa_cpu_panels_t mfa_cpu_kv_vt(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, int64_t b, int64_t hk, int64_t kb);
mfa_cpu_panels_t mfa_cpu_kv_k_rows(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, int64_t b, int64_t hk,
                                   int64_t kb);
mfa_cpu_panels_t mfa_cpu_kv_v_rows(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, int64_t b, int64_t hk,
                                   int64_t kb);
const uint16_t *mfa_cpu_kv_kt_pairs(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, int64_t b, int64_t hk,
                                    int64_t kb);
const uint16_t *mfa_cpu_kv_v_pairs(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, int64_t b, int64_t hk,
                                   int64_t kb);
const uint16_t *mfa_cpu_kv_vt_pairs(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, int64_t b, int64_t hk,
                                    int64_t kb);
/* bf16 pairs for gemm_bf16's B from key rows (bf16, element stride sd along the dim):
 * mfa_cpu_pairs_dim: keys c < g (g <= 8) of a tile transposed, pairs along the dim:
 * dst[(d/2) * 2 MFA_CPU_BK + 2c + d%2] = src[c][d] (dim even; dst at the group's first key);
 * mfa_cpu_pairs_keys: two key rows interleaved, dst[2e + i] = ri[e] (r1 NULL: zeros). */
void mfa_cpu_pairs_dim(const mfa_cpu_kernels_t *k, const uint16_t *const *src, int64_t g, int64_t sd, int64_t dim,
                       uint16_t *dst);
void mfa_cpu_pairs_keys(const uint16_t *r0, const uint16_t *r1, int64_t sd, int64_t dim, uint16_t *dst);
const uint16_t *mfa_cpu_kv_k_row_pairs(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, int64_t b, int64_t hk,
                                       int64_t kb);

/* ---- scores ---- */
/* Turns raw dot products S[r * ld + c] (rows i0 + r < i0 + n, keys j0 + c < j0 + nk) into
 * logits x with softmax argument x * mul (the return value): the plain case leaves S as is and
 * returns scale * log2(e); softcap, dense bias or per-element block masks make S the final
 * natural-log scores and return log2(e). Dropped pairs become -inf either way. With softcap on
 * and dcap not NULL, dcap[r * ld + c] = 1 - tanh^2 (the backward's chain rule). */
float mfa_cpu_finish_scores(const mfa_problem_t *pr, int64_t b, int64_t h, const mfa_seq_t *s, int64_t i0,
                            int64_t n, int64_t j0, int64_t nk, float *S, int64_t ld, float *dcap);

/* Key range [lo, hi) that any row of [i0, i0 + n) may see (causal/window bounds are monotone
 * in the row, so the first and last rows decide), and whether the block-sparse map keeps any
 * pair of the tile [i0, i0+n) x [j0, j0+nk). */
void mfa_cpu_tile_key_range(const mfa_problem_t *pr, const mfa_seq_t *s, int64_t i0, int64_t n, int64_t *lo,
                            int64_t *hi);
/* The rows [i0 + *r_lo, i0 + *r_hi) of [i0, i0 + n) that see any key of [j0, j0 + nk) under the
 * causal/window bounds: an interval, since the bounds are monotone in the row (*r_lo = *r_hi when
 * none does). A query block across the causal diagonal has rows that see nothing of the last
 * key tiles; the GEMMs skip them. */
void mfa_cpu_tile_rows(const mfa_problem_t *pr, const mfa_seq_t *s, int64_t i0, int64_t n, int64_t j0, int64_t nk,
                       int64_t *r_lo, int64_t *r_hi);
/* A tile on the causal/window edge: each row r < n sees the tile's columns [lo[r], hi[r]) (both
 * non-decreasing in r). Returns false, leaving lo / hi unset, when every row sees all nk. */
bool mfa_cpu_tile_band(const mfa_problem_t *pr, const mfa_seq_t *s, int64_t i0, int64_t n, int64_t j0, int64_t nk,
                       int64_t *lo, int64_t *hi);
/* The GEMMs of such a tile, skipping what the band leaves out (rows run at one-panel, not tile,
 * granularity): S[M][N] = A B over only the panels of columns a row sees (the others are left as
 * they were: the score finishing masks them), and C[M][N] += P[M][K] B[K][N] over only the keys
 * (K) the rows of each group of `rows` see (P is 0 outside them). */
void mfa_cpu_gemm_band_cols(const mfa_cpu_kernels_t *k, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                            mfa_cpu_panels_t B, float *C, int64_t ldc, const int64_t *lo, const int64_t *hi);
void mfa_cpu_gemm_band_keys(const mfa_cpu_kernels_t *k, int64_t M, int64_t N, int64_t K, const float *P, int64_t ldp,
                            mfa_cpu_panels_t B, float *C, int64_t ldc, const int64_t *lo, const int64_t *hi,
                            int64_t rows);
/* The same with B plain row-major, ldb apart (the backward's dV += P^T dO, dK += dS^T Q: there
 * M runs over keys and K over the query rows that see them). */
void mfa_cpu_gemm_band_keys_rows(const mfa_cpu_kernels_t *k, int64_t M, int64_t N, int64_t K, const float *P,
                                 int64_t ldp, const float *B, int64_t ldb, float *C, int64_t ldc, const int64_t *lo,
                                 const int64_t *hi, int64_t rows);
/* The two with bf16 operands (gemm_bf16): A bf16 rows, B in pairs (S: K^T pairs, ldp = 2 N
 * per pair row; O += P V: V pairs along the keys, ldp = 2 N), K even. The key range of a group
 * is widened to pairs, which P's zeros (and a zero after an odd tile's last key) fill. */
void mfa_cpu_gemm_bf16_band_cols(const mfa_cpu_kernels_t *k, int64_t M, int64_t N, int64_t K, const uint16_t *A,
                                 int64_t lda, const uint16_t *Bp, int64_t ldp, float *C, int64_t ldc,
                                 const int64_t *lo, const int64_t *hi);
void mfa_cpu_gemm_bf16_band_keys(const mfa_cpu_kernels_t *k, int64_t M, int64_t N, int64_t K, const uint16_t *P,
                                 int64_t ldp, const uint16_t *Bp, int64_t ldb, float *C, int64_t ldc,
                                 const int64_t *lo, const int64_t *hi, int64_t rows);
/* Rows that share one K range in the band GEMMs: two of the microkernels' row blocks (6 rows with
 * AVX2, 12 with AVX-512 fit in 24) keep their full height. */
#define MFA_CPU_BAND_ROWS 24
bool mfa_cpu_block_tile_kept(const mfa_problem_t *pr, int64_t b, int64_t h, int64_t i0, int64_t n, int64_t j0,
                             int64_t nk);

/* ---- the online softmax (forward), shared by the tiled forward and the decode path ---- */
/* One key tile's step for n rows, in base 2: S [n][ld] (raw logits, nk valid columns, softmax
 * argument x * mul) becomes P; per row the running max m, sum l and unnormalised output o
 * [n][ldo] (dv columns) are rescaled. A row with nothing visible in the tile gets P = 0 and keeps
 * its state. pb, when not NULL: P goes there instead, rounded to bf16 ([n][ld], for the bf16
 * P V; needs the table's to_bf16). `each_row(arg, r, n)`, when not NULL, runs before row r (the
 * forward's prefetch). */
void mfa_cpu_softmax_step(const mfa_cpu_kernels_t *k, float *S, int64_t ld, int64_t n, int64_t nk, float mul,
                          float *m, float *l, float *o, int64_t ldo, int64_t dv, uint16_t *pb,
                          void (*each_row)(void *arg, int64_t r, int64_t n), void *arg);
/* The end of the forward for rows [i0, i0 + n) of (batch b, q head h): o / l is the output and
 * (m + log2 l) ln 2 the LSE (when asked); rows that saw nothing get 0 and -inf. o [n][dv] is
 * scaled in place, then stored. */
void mfa_cpu_finish_rows(const mfa_problem_t *pr, const mfa_cpu_kernels_t *k, int64_t b, int64_t h,
                         const mfa_seq_t *s, int64_t i0, int64_t n, float *o, const float *m, const float *l);
/* Merges `splits` partial results of the same n rows, each computed over its own key range:
 * partial sp is o [n][dv] at parts + sp * stride, then m and l [MFA_CPU_BQ] at offsets
 * MFA_CPU_BQ * dv and MFA_CPU_BQ * (dv + 1) of it. Writes the merged o, m, l (log-sum-exp). */
void mfa_cpu_merge_splits(const float *parts, int64_t splits, size_t stride, int64_t n, int64_t dv, float *o,
                          float *m, float *l);

mfa_error_t mfa_cpu_fwd(mfa_context *ctx, const mfa_problem_t *pr);
/* Decode shapes (decode.c): at most MFA_CPU_DECODE_SEQ query rows, and at most MFA_CPU_BQ rows
 * per kv head (seqlen_q times the GQA group), against at least 4 key tiles; the forward then
 * reads K and V in place. */
#define MFA_CPU_DECODE_SEQ 16
bool mfa_cpu_decode_applies(const mfa_problem_t *pr);
mfa_error_t mfa_cpu_decode_fwd(mfa_context *ctx, const mfa_problem_t *pr);
mfa_error_t mfa_cpu_bwd(mfa_context *ctx, const mfa_problem_t *pr);

#endif
