/* tile.c — the cpu backend's tile helpers: strided loads/stores with dtype conversion, the
 * score tile (scale, softcap, bias, masks) and the tile-level mask tests shared by fwd and bwd. */
#include <math.h>
#include <string.h>

#include "cpu.h"

void mfa_cpu_load_rows(const mfa_tensor_t *t, int64_t tb, int64_t head, int64_t t0, int64_t n, int64_t dim,
                       float *dst) {
    for (int64_t r = 0; r < n; r++) {
        const int64_t at = mfa_offset(t, tb, t0 + r, head, 0);
        float *row = dst + r * dim;
        if (t->dtype == MFA_DTYPE_F32 && t->stride[3] == 1) {
            memcpy(row, (const float *)t->data + at, (size_t)dim * sizeof(float));
        } else {
            for (int64_t d = 0; d < dim; d++) row[d] = mfa_load(t->data, t->dtype, at + d * t->stride[3]);
        }
    }
}

void mfa_cpu_load_rows_transposed(const mfa_tensor_t *t, int64_t tb, int64_t head, int64_t t0, int64_t n,
                                  int64_t dim, int64_t ld, float *dst) {
    for (int64_t r = 0; r < n; r++) {
        const int64_t at = mfa_offset(t, tb, t0 + r, head, 0);
        for (int64_t d = 0; d < dim; d++) dst[d * ld + r] = mfa_load(t->data, t->dtype, at + d * t->stride[3]);
    }
}

void mfa_cpu_store_rows(const mfa_tensor_t *t, int64_t tb, int64_t head, int64_t t0, int64_t n, int64_t dim,
                        const float *src) {
    for (int64_t r = 0; r < n; r++) {
        const int64_t at = mfa_offset(t, tb, t0 + r, head, 0);
        const float *row = src + r * dim;
        if (t->dtype == MFA_DTYPE_F32 && t->stride[3] == 1) {
            memcpy((float *)t->data + at, row, (size_t)dim * sizeof(float));
        } else {
            for (int64_t d = 0; d < dim; d++) mfa_store(t->data, t->dtype, at + d * t->stride[3], row[d]);
        }
    }
}

void mfa_cpu_score_tile(const mfa_problem_t *pr, int64_t b, int64_t h, const mfa_seq_t *s, int64_t i0, int64_t n,
                        int64_t j0, int64_t nk, const float *q, const float *kt, float *S, float *dcap) {
    const int64_t D = pr->p.head_dim_qk, BK = MFA_CPU_BK;
    const float scale = pr->scale, cap = pr->p.softcap;
    const bool per_element = pr->p.block_mask || pr->p.attn_mask.data;
    for (int64_t r = 0; r < n; r++) {
        /* S[r, :] = q[r, :] . K^T  — inner loop over contiguous keys vectorises */
        float *srow = S + r * BK;
        for (int64_t c = 0; c < BK; c++) srow[c] = 0.0f;
        for (int64_t d = 0; d < D; d++) {
            const float qd = q[r * D + d];
            const float *krow = kt + d * BK;
            for (int64_t c = 0; c < BK; c++) srow[c] += qd * krow[c];
        }
        const int64_t i = i0 + r;
        int64_t lo, hi;
        mfa_key_range(pr, i, s->sq, s->sk, &lo, &hi);
        for (int64_t c = 0; c < nk; c++) {
            float x = srow[c] * scale;
            if (cap > 0) {
                const float t = tanhf(x / cap);
                x = cap * t;
                if (dcap) dcap[r * BK + c] = 1.0f - t * t;
            }
            srow[c] = x;
        }
        for (int64_t c = 0; c < nk; c++) {
            const int64_t j = j0 + c;
            if (j < lo || j >= hi) {
                srow[c] = -INFINITY;
            } else if (per_element) {
                if (!mfa_block_keeps(pr, b, h, i, j)) srow[c] = -INFINITY;
                else srow[c] += mfa_dense_bias(pr, b, h, i, j);
            }
        }
        for (int64_t c = nk; c < BK; c++) srow[c] = -INFINITY;
    }
}

void mfa_cpu_tile_key_range(const mfa_problem_t *pr, const mfa_seq_t *s, int64_t i0, int64_t n, int64_t *lo,
                            int64_t *hi) {
    int64_t lo_last, hi_first;
    mfa_key_range(pr, i0, s->sq, s->sk, lo, &hi_first);
    mfa_key_range(pr, i0 + n - 1, s->sq, s->sk, &lo_last, hi);
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
