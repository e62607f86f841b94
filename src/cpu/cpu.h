/* cpu.h — shared pieces of the cpu backend: tile sizes, per-thread scratch, the tile helpers
 * used by both the forward and the backward, and the thread pool entry point.
 *
 * This is the portable C path: plain loops the compiler vectorises. It is the readable
 * reference implementation of the tiled algorithm (FlashAttention-2, Dao 2023): queries in blocks
 * of MFA_CPU_BQ rows, keys in tiles of MFA_CPU_BK, an online softmax in fp32, O(seq) memory. */
#ifndef MFA_CPU_H
#define MFA_CPU_H

#include "../backend.h"

/* 64 x 64 tiles: a K^T tile of 64 keys x 128 dims in fp32 is 32 KiB, so Q, K^T, V and S for
 * head_dim 128 stay within L2 of one core; 64 rows amortise each K/V tile load 64 times. */
#define MFA_CPU_BQ 64
#define MFA_CPU_BK 64
/* Largest head dim the cpu backend takes (scratch grows linearly with it). */
#define MFA_CPU_MAX_HEAD_DIM 512

/* Runs fn(arg, item, thread) for item in [0, n_items) on up to ctx->num_threads threads
 * (thread in [0, threads)), items handed out dynamically in increasing order. Returns the
 * number of threads used (>= 1) so callers can size per-thread scratch beforehand with
 * mfa_cpu_threads_for(). */
typedef void (*mfa_cpu_task_fn)(void *arg, int64_t item, int thread);
int mfa_cpu_threads_for(const mfa_context *ctx, int64_t n_items);
void mfa_cpu_parallel_for(int threads, int64_t n_items, mfa_cpu_task_fn fn, void *arg);

/* Tokens [t0, t0 + n) of head `head` (batch index tb) of tensor t, converted to fp32 into
 * dst[r * dim + d]; the transposed form writes dst[d * ld + r]. */
void mfa_cpu_load_rows(const mfa_tensor_t *t, int64_t tb, int64_t head, int64_t t0, int64_t n, int64_t dim,
                       float *dst);
void mfa_cpu_load_rows_transposed(const mfa_tensor_t *t, int64_t tb, int64_t head, int64_t t0, int64_t n,
                                  int64_t dim, int64_t ld, float *dst);
/* Stores fp32 rows src[r * dim + d] into tokens [t0, t0 + n) of tensor t, in its dtype. */
void mfa_cpu_store_rows(const mfa_tensor_t *t, int64_t tb, int64_t head, int64_t t0, int64_t n, int64_t dim,
                        const float *src);

/* Final scores of a tile, S[r * MFA_CPU_BK + c] for rows i0 + r (r < n) and keys j0 + c
 * (c < nk): scale * q.k, softcap, dense bias, then -inf where any mask drops the pair.
 * q: [n][d] fp32, kt: [d][MFA_CPU_BK] fp32. When dcap is not NULL and softcap is on, it
 * receives d(capped)/d(raw) = 1 - tanh^2 per element (the backward's chain rule). */
void mfa_cpu_score_tile(const mfa_problem_t *pr, int64_t b, int64_t h, const mfa_seq_t *s, int64_t i0, int64_t n,
                        int64_t j0, int64_t nk, const float *q, const float *kt, float *S, float *dcap);

/* Key range [lo, hi) that any row of [i0, i0 + n) may see (causal/window only; the bounds are
 * monotone in the row, so the first and last rows decide), and whether the block-sparse map
 * keeps any pair of the tile [i0, i0+n) x [j0, j0+nk). */
void mfa_cpu_tile_key_range(const mfa_problem_t *pr, const mfa_seq_t *s, int64_t i0, int64_t n, int64_t *lo,
                            int64_t *hi);
bool mfa_cpu_block_tile_kept(const mfa_problem_t *pr, int64_t b, int64_t h, int64_t i0, int64_t n, int64_t j0,
                             int64_t nk);

mfa_error_t mfa_cpu_fwd(mfa_context *ctx, const mfa_problem_t *pr);
mfa_error_t mfa_cpu_bwd(mfa_context *ctx, const mfa_problem_t *pr);

#endif
