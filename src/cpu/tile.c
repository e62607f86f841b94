/* tile.c — fp32 views of tensor rows, stores back in the tensor's dtype, the GEMM over packed
 * panels, and the score finishing (scale, softcap, dense bias, masks) shared by the forward and
 * the backward. */
#include <math.h>
#include <string.h>

#include "cpu.h"

/* Rows usable in place as a GEMM operand: fp32, unit dim stride, rows densely packed. Rows
 * further apart (BSHD with many heads: a 4 KiB row stride) would map every row of a tile to the
 * same L1 set, so those are copied instead. */
static bool is_dense_f32_rows(const mfa_tensor_t *t, int64_t dim) {
    return t->dtype == MFA_DTYPE_F32 && t->stride[3] == 1 && t->stride[1] == dim;
}

const float *mfa_cpu_rows(const mfa_cpu_kernels_t *k, const mfa_tensor_t *t, int64_t tb, int64_t head, int64_t t0,
                          int64_t n, int64_t dim, float *scratch, int64_t *ld) {
    if (is_dense_f32_rows(t, dim)) {
        *ld = t->stride[1];
        return (const float *)t->data + mfa_offset(t, tb, t0, head, 0);
    }
    for (int64_t r = 0; r < n; r++) {
        const int64_t at = mfa_offset(t, tb, t0 + r, head, 0);
        float *row = scratch + r * dim;
        if (t->stride[3] == 1) {
            k->to_f32(row, (const char *)t->data + at * (int64_t)mfa_dtype_size(t->dtype), t->dtype, dim);
        } else {
            for (int64_t d = 0; d < dim; d++) row[d] = mfa_load(t->data, t->dtype, at + d * t->stride[3]);
        }
    }
    *ld = dim;
    return scratch;
}

void mfa_cpu_rows_bf16(const mfa_tensor_t *t, int64_t tb, int64_t head, int64_t t0, int64_t n, int64_t dim,
                       uint16_t *dst) {
    for (int64_t r = 0; r < n; r++) {
        const uint16_t *src = (const uint16_t *)t->data + mfa_offset(t, tb, t0 + r, head, 0);
        if (t->stride[3] == 1) memcpy(dst + r * dim, src, sizeof(uint16_t) * (size_t)dim);
        else
            for (int64_t d = 0; d < dim; d++) dst[r * dim + d] = src[d * t->stride[3]];
    }
}

void mfa_cpu_gemm_panels(const mfa_cpu_kernels_t *k, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                         mfa_cpu_panels_t B, float *C, int64_t ldc, bool accumulate) {
    const int64_t width = k->nr > 0 ? k->nr : B.cols;
    for (int64_t first = 0; first < N; first += width) {
        const int64_t stored = B.cols - first < width ? B.cols - first : width; /* this panel's row length */
        const int64_t used = N - first < width ? N - first : width;
        k->gemm(M, used, K, A, lda, B.data + first * B.rows, stored, C + first, ldc, accumulate);
    }
}

/* Whether every row of [i0, i0 + n) sees every key of [j0, j0 + nk): the bounds are monotone
 * in the row, so the first row's end and the last row's start decide. */
static bool tile_whole(const mfa_problem_t *pr, const mfa_seq_t *s, int64_t i0, int64_t n, int64_t j0, int64_t nk) {
    int64_t lo_last, hi_first, unused;
    mfa_key_range(pr, i0, s->sq, s->sk, &unused, &hi_first);
    mfa_key_range(pr, i0 + n - 1, s->sq, s->sk, &lo_last, &unused);
    return lo_last <= j0 && hi_first >= j0 + nk;
}

/* The columns [*c_lo, *c_hi) of the tile at j0 (nk keys) that row i sees. */
static void row_cols(const mfa_problem_t *pr, const mfa_seq_t *s, int64_t i, int64_t j0, int64_t nk, int64_t *c_lo,
                     int64_t *c_hi) {
    int64_t lo, hi;
    mfa_key_range(pr, i, s->sq, s->sk, &lo, &hi);
    *c_lo = lo - j0 < 0 ? 0 : lo - j0 > nk ? nk : lo - j0;
    *c_hi = hi - j0 < *c_lo ? *c_lo : hi - j0 > nk ? nk : hi - j0;
}

bool mfa_cpu_tile_band(const mfa_problem_t *pr, const mfa_seq_t *s, int64_t i0, int64_t n, int64_t j0, int64_t nk,
                       int64_t *lo, int64_t *hi) {
    if (tile_whole(pr, s, i0, n, j0, nk)) return false;
    for (int64_t r = 0; r < n; r++) row_cols(pr, s, i0 + r, j0, nk, &lo[r], &hi[r]);
    return true;
}

/* The band GEMMs' two walks, shared by the fp32 and bf16 forms. Rows [*r_a, *r_b) of M see a
 * column of [first, first + used): called for panels left to right, both bounds only move
 * forward (lo / hi are non-decreasing in the row). */
static void panel_rows(int64_t M, const int64_t *lo, const int64_t *hi, int64_t first, int64_t used, int64_t *r_a,
                       int64_t *r_b) {
    while (*r_a < M && hi[*r_a] <= first) ++*r_a;
    if (*r_b < *r_a) *r_b = *r_a;
    while (*r_b < M && lo[*r_b] < first + used) ++*r_b;
}

/* The keys [*k0, *k1) (within K) rows [r0, r0 + m) see; `pairs` widens them to whole pairs. */
static void group_keys(const int64_t *lo, const int64_t *hi, int64_t r0, int64_t m, int64_t K, bool pairs, int64_t *k0,
                       int64_t *k1) {
    const int64_t end = pairs ? (hi[r0 + m - 1] + 1) & ~(int64_t)1 : hi[r0 + m - 1];
    *k0 = pairs ? lo[r0] & ~(int64_t)1 : lo[r0];
    *k1 = end < K ? end : K;
}

void mfa_cpu_gemm_band_cols(const mfa_cpu_kernels_t *k, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                            mfa_cpu_panels_t B, float *C, int64_t ldc, const int64_t *lo, const int64_t *hi) {
    const int64_t width = k->nr > 0 ? k->nr : B.cols;
    int64_t r_a = 0, r_b = 0;
    for (int64_t first = 0; first < N; first += width) {
        const int64_t stored = B.cols - first < width ? B.cols - first : width;
        const int64_t used = N - first < width ? N - first : width;
        panel_rows(M, lo, hi, first, used, &r_a, &r_b);
        if (r_a < r_b)
            k->gemm(r_b - r_a, used, K, A + r_a * lda, lda, B.data + first * B.rows, stored, C + r_a * ldc + first, ldc,
                    false);
    }
}

void mfa_cpu_gemm_band_keys_rows(const mfa_cpu_kernels_t *k, int64_t M, int64_t N, int64_t K, const float *P,
                                 int64_t ldp, const float *B, int64_t ldb, float *C, int64_t ldc, const int64_t *lo,
                                 const int64_t *hi, int64_t rows) {
    for (int64_t r0 = 0; r0 < M; r0 += rows) {
        const int64_t m = M - r0 < rows ? M - r0 : rows;
        int64_t k0, k1;
        group_keys(lo, hi, r0, m, K, false, &k0, &k1);
        if (k0 < k1) k->gemm(m, N, k1 - k0, P + r0 * ldp + k0, ldp, B + k0 * ldb, ldb, C + r0 * ldc, ldc, true);
    }
}

void mfa_cpu_gemm_band_keys(const mfa_cpu_kernels_t *k, int64_t M, int64_t N, int64_t K, const float *P, int64_t ldp,
                            mfa_cpu_panels_t B, float *C, int64_t ldc, const int64_t *lo, const int64_t *hi,
                            int64_t rows) {
    const int64_t width = k->nr > 0 ? k->nr : B.cols;
    for (int64_t first = 0; first < N; first += width) { /* a K x width panel of B stays in L1 */
        const int64_t stored = B.cols - first < width ? B.cols - first : width;
        const int64_t used = N - first < width ? N - first : width;
        mfa_cpu_gemm_band_keys_rows(k, M, used, K, P, ldp, B.data + first * B.rows, stored, C + first, ldc, lo, hi, rows);
    }
}

void mfa_cpu_gemm_bf16_band_cols(const mfa_cpu_kernels_t *k, int64_t M, int64_t N, int64_t K, const uint16_t *A,
                                 int64_t lda, const uint16_t *Bp, int64_t ldp, float *C, int64_t ldc,
                                 const int64_t *lo, const int64_t *hi) {
    const int64_t width = k->nr > 0 ? k->nr : N;
    int64_t r_a = 0, r_b = 0;
    for (int64_t first = 0; first < N; first += width) {
        const int64_t used = N - first < width ? N - first : width;
        panel_rows(M, lo, hi, first, used, &r_a, &r_b);
        if (r_a < r_b)
            k->gemm_bf16(r_b - r_a, used, K, A + r_a * lda, lda, Bp + 2 * first, ldp, C + r_a * ldc + first, ldc,
                         false);
    }
}

void mfa_cpu_gemm_bf16_band_keys(const mfa_cpu_kernels_t *k, int64_t M, int64_t N, int64_t K, const uint16_t *P,
                                 int64_t ldp, const uint16_t *Bp, int64_t ldb, float *C, int64_t ldc,
                                 const int64_t *lo, const int64_t *hi, int64_t rows) {
    for (int64_t r0 = 0; r0 < M; r0 += rows) {
        const int64_t m = M - r0 < rows ? M - r0 : rows;
        int64_t k0, k1;
        group_keys(lo, hi, r0, m, K, true, &k0, &k1);
        if (k0 < k1)
            k->gemm_bf16(m, N, k1 - k0, P + r0 * ldp + k0, ldp, Bp + (k0 / 2) * ldb, ldb, C + r0 * ldc, ldc, true);
    }
}

void mfa_cpu_store_rows(const mfa_cpu_kernels_t *k, const mfa_tensor_t *t, int64_t tb, int64_t head, int64_t t0,
                        int64_t n, int64_t dim, const float *src) {
    const bool unit = t->stride[3] == 1;
    for (int64_t r = 0; r < n; r++) {
        const int64_t at = mfa_offset(t, tb, t0 + r, head, 0);
        const float *row = src + r * dim;
        if (unit && t->dtype == MFA_DTYPE_F32) {
            memcpy((float *)t->data + at, row, (size_t)dim * sizeof(float));
        } else if (unit && t->dtype == MFA_DTYPE_BF16) {
            uint16_t *out = (uint16_t *)t->data + at;
            if (k->to_bf16) k->to_bf16(out, row, dim);
            else
                for (int64_t d = 0; d < dim; d++) out[d] = mfa_f32_to_bf16(row[d]); /* vectorised by the compiler */
        } else {
            for (int64_t d = 0; d < dim; d++) mfa_store(t->data, t->dtype, at + d * t->stride[3], row[d]);
        }
    }
}

float mfa_cpu_finish_scores(const mfa_problem_t *pr, int64_t b, int64_t h, const mfa_seq_t *s, int64_t i0,
                            int64_t n, int64_t j0, int64_t nk, float *S, int64_t ld, float *dcap) {
    const float scale = pr->scale, cap = pr->p.softcap;
    const bool per_element = pr->p.block_mask || pr->p.attn_mask.data;
    const bool plain = cap == 0 && !per_element;
    /* nothing to do when every row sees every key of the tile (most tiles) */
    if (plain && tile_whole(pr, s, i0, n, j0, nk)) return scale * MFA_LOG2E;
    for (int64_t r = 0; r < n; r++) {
        float *x = S + r * ld;
        const int64_t i = i0 + r;
        int64_t c_lo, c_hi; /* columns [c_lo, c_hi) of this tile pass the causal/window bounds */
        row_cols(pr, s, i, j0, nk, &c_lo, &c_hi);
        for (int64_t c = 0; c < c_lo; c++) x[c] = -INFINITY;
        for (int64_t c = c_hi; c < nk; c++) x[c] = -INFINITY;
        if (dcap && cap > 0) { /* dropped pairs: P = 0, and dS must not read stale scratch */
            for (int64_t c = 0; c < c_lo; c++) dcap[r * ld + c] = 0.0f;
            for (int64_t c = c_hi; c < nk; c++) dcap[r * ld + c] = 0.0f;
        }
        if (plain) continue;
        for (int64_t c = c_lo; c < c_hi; c++) {
            float v = x[c] * scale;
            if (cap > 0) {
                const float t = tanhf(v / cap);
                v = cap * t;
                if (dcap) dcap[r * ld + c] = 1.0f - t * t;
            }
            if (per_element) {
                const int64_t j = j0 + c;
                v = mfa_block_keeps(pr, b, h, i, j) ? v + mfa_dense_bias(pr, b, h, i, j) : -INFINITY;
            }
            x[c] = v;
        }
    }
    return plain ? scale * MFA_LOG2E : MFA_LOG2E;
}

void mfa_cpu_tile_key_range(const mfa_problem_t *pr, const mfa_seq_t *s, int64_t i0, int64_t n, int64_t *lo,
                            int64_t *hi) {
    int64_t lo_last, hi_first;
    mfa_key_range(pr, i0, s->sq, s->sk, lo, &hi_first);
    mfa_key_range(pr, i0 + n - 1, s->sq, s->sk, &lo_last, hi);
}

/* Whether row i sees any key of [j0, j0 + nk). */
static bool row_sees(const mfa_problem_t *pr, const mfa_seq_t *s, int64_t i, int64_t j0, int64_t nk) {
    int64_t lo, hi;
    mfa_key_range(pr, i, s->sq, s->sk, &lo, &hi);
    return lo < hi && hi > j0 && lo < j0 + nk;
}

void mfa_cpu_tile_rows(const mfa_problem_t *pr, const mfa_seq_t *s, int64_t i0, int64_t n, int64_t j0, int64_t nk,
                       int64_t *r_lo, int64_t *r_hi) {
    int64_t a = 0, z = n;
    while (a < z && !row_sees(pr, s, i0 + a, j0, nk)) a++;
    while (z > a && !row_sees(pr, s, i0 + z - 1, j0, nk)) z--;
    *r_lo = a, *r_hi = z;
}

bool mfa_cpu_block_tile_kept(const mfa_problem_t *pr, int64_t b, int64_t h, int64_t i0, int64_t n, int64_t j0,
                             int64_t nk) {
    const mfa_attention_params_t *p = &pr->p;
    if (!p->block_mask) return true;
    for (int64_t rb = i0 / p->block_q; rb <= (i0 + n - 1) / p->block_q; rb++)
        for (int64_t cb = j0 / p->block_kv; cb <= (j0 + nk - 1) / p->block_kv; cb++)
            if (mfa_block_keeps(pr, b, h, rb * p->block_q, cb * p->block_kv)) return true;
    return false;
}

void mfa_cpu_softmax_step(const mfa_cpu_kernels_t *k, float *S, int64_t ld, int64_t n, int64_t nk, float mul,
                          float *m, float *l, float *o, int64_t ldo, int64_t dv, uint16_t *pb,
                          void (*each_row)(void *arg, int64_t r, int64_t n), void *arg) {
    for (int64_t r = 0; r < n; r++) {
        if (each_row) each_row(arg, r, n);
        float *x = S + r * ld;
        const float tile_max = k->max(x, nk) * mul;
        if (tile_max == -INFINITY) { /* nothing visible in this tile for this row */
            if (pb) memset(pb + r * ld, 0, sizeof(uint16_t) * (size_t)nk);
            else memset(x, 0, sizeof(float) * (size_t)nk);
            continue;
        }
        const float m_new = tile_max > m[r] ? tile_max : m[r];
        /* 2^-inf = 0 on the first visible tile; once a row's max settles it rarely moves, and
         * exp2f per row and tile was 1% of the forward */
        const float correction = m_new == m[r] ? 1.0f : exp2f(m[r] - m_new);
        float sum;
        if (pb && k->exp2_sum_bf16) {
            sum = k->exp2_sum_bf16(x, nk, mul, m_new, pb + r * ld);
        } else {
            sum = k->exp2_sum(x, nk, mul, m_new);
            if (pb) k->to_bf16(pb + r * ld, x, nk);
        }
        l[r] = l[r] * correction + sum;
        if (correction != 1.0f) k->scale(o + r * ldo, dv, correction);
        m[r] = m_new;
    }
}

void mfa_cpu_finish_rows(const mfa_problem_t *pr, const mfa_cpu_kernels_t *k, int64_t b, int64_t h,
                         const mfa_seq_t *s, int64_t i0, int64_t n, float *o, const float *m, const float *l) {
    const int64_t dv = pr->p.head_dim_v;
    for (int64_t r = 0; r < n; r++) {
        k->scale(o + r * dv, dv, l[r] > 0 ? 1.0f / l[r] : 0.0f);
        if (pr->p.lse)
            pr->p.lse[mfa_lse_index(pr, b, s, h, i0 + r)] = l[r] > 0 ? (m[r] + log2f(l[r])) * MFA_LN2 : -INFINITY;
    }
    mfa_cpu_store_rows(k, &pr->p.o, s->tb, h, s->q0 + i0, n, dv, o);
}

void mfa_cpu_merge_splits(const float *parts, int64_t splits, size_t stride, int64_t n, int64_t dv, float *o,
                          float *m, float *l) {
    const int64_t at_m = MFA_CPU_BQ * dv, at_l = MFA_CPU_BQ * (dv + 1);
    memset(o, 0, sizeof(float) * (size_t)(n * dv));
    for (int64_t r = 0; r < n; r++) {
        m[r] = -INFINITY, l[r] = 0.0f;
        for (int64_t sp = 0; sp < splits; sp++) {
            const float pm = parts[sp * stride + at_m + r];
            m[r] = pm > m[r] ? pm : m[r];
        }
        if (m[r] == -INFINITY) continue;
        for (int64_t sp = 0; sp < splits; sp++) {
            const float *part = parts + sp * stride;
            if (part[at_m + r] == -INFINITY) continue;
            const float w = exp2f(part[at_m + r] - m[r]);
            l[r] += part[at_l + r] * w;
            for (int64_t e = 0; e < dv; e++) o[r * dv + e] += w * part[r * dv + e];
        }
    }
}
