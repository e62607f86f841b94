/* check.c — run one case on the context under test and on the float64 reference, compare.
 *
 * Flow of mfa_check_case_ex:
 *   1. draw inputs (q, k, v, masks, varlen lengths) from the case seed; allocate every output
 *      with the case's layout between sentinel guards and poison it with NaN;
 *   2. forward on the context under test (outputs in the case's dtype) and on the reference
 *      (f32 outputs, the same input bits); check inputs untouched, padding untouched, fully
 *      masked rows exact, then compare o and the LSE element-wise (tolerance.h);
 *   3. backward (when asked): dO random; each backend gets its own forward's o and LSE, as a
 *      user would pass them; the same checks for dq, dk, dv.
 * The first failing check stops the case; its report lists the first <= 5 mismatches. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "tolerance.h"

enum { MAX_SHOWN = 5 };

typedef struct run {
    const mfa_check_case_t *c;
    mfa_check_rng_t rng;
    int64_t B, TB, TQ, TK; /* sequences; tensor batch and token extents (1 / totals if varlen) */
    int64_t max_sq, max_sk;
    int32_t *cu_q, *cu_k;
    int32_t in_dt, out_dt;
    mfa_check_array_t q, k, v, o, lse, dout, dq, dk, dv;              /* under test */
    mfa_check_array_t o_r, lse_r, dout_r, dq_r, dk_r, dv_r, blk, den; /* reference; masks */
    unsigned char *row_alive, *key_alive; /* [B][heads_q][max_sq], [B][heads_kv][max_sk] */
    double score_max;                     /* largest |scaled score + bias| of a kept pair */
    double scale;                         /* the softmax scale in use */
    int buffers;                          /* the case's `buffers`, 2 on device backends */
    char *rep;
    size_t rep_size, rep_len;
} run_t;

static void say(run_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(run_t *r, const char *fmt, ...) {
    if (!r->rep || r->rep_len + 1 >= r->rep_size) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->rep + r->rep_len, r->rep_size - r->rep_len, fmt, ap);
    va_end(ap);
    if (n > 0)
        r->rep_len +=
            (size_t)n < r->rep_size - r->rep_len ? (size_t)n : r->rep_size - r->rep_len - 1;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

/* ---- Sequences and masks ------------------------------------------------------------------- */
static void seq(const run_t *r, int64_t b, int64_t *q0, int64_t *sq, int64_t *k0, int64_t *sk) {
    if (r->cu_q) {
        *q0 = r->cu_q[b], *sq = r->cu_q[b + 1] - r->cu_q[b];
        *k0 = r->cu_k[b], *sk = r->cu_k[b + 1] - r->cu_k[b];
    } else {
        *q0 = *k0 = 0, *sq = r->c->seqlen_q, *sk = r->c->seqlen_kv;
    }
}

/* The case's mask semantics, written from mfa.h independently of the library. */
static int keeps(const run_t *r, int64_t b, int64_t h, int64_t i, int64_t j, int64_t sq,
                 int64_t sk) {
    const mfa_check_case_t *c = r->c;
    const int64_t d = i + (c->mask_align == MFA_ALIGN_BOTTOM_RIGHT ? sk - sq : 0);
    if (c->mask == MFA_MASK_CAUSAL && j > d) return 0;
    if (c->mask == MFA_MASK_WINDOW) {
        if (c->window_left >= 0 && j < d - c->window_left) return 0;
        if (c->window_right >= 0 && j > d + c->window_right) return 0;
    }
    if (c->block && mfa_check_array_get(&r->blk, mfa_check_array_at(&r->blk, b, h, i / c->block_q,
                                                                    j / c->block_kv)) == 0.0)
        return 0;
    if (c->dense) {
        const double x = mfa_check_array_get(&r->den, mfa_check_array_at(&r->den, b, h, i, j));
        if (c->dense == MFA_CHECK_DENSE_BOOL ? x == 0.0 : x == -INFINITY) return 0;
    }
    return 1;
}

static int64_t lse_at(const run_t *r, int64_t b, int64_t h, int64_t q0, int64_t i) {
    return r->cu_q ? mfa_check_array_at(&r->lse, 0, h, q0 + i, 0)
                   : mfa_check_array_at(&r->lse, b, h, i, 0);
}

static int scan_pairs(run_t *r, double scale);

/* ---- Setup --------------------------------------------------------------------------------- */
static int alloc_like(run_t *r, mfa_check_array_t *a, int32_t dtype, int64_t tokens, int64_t heads,
                      int64_t dim, int transposed) {
    const int64_t n[4] = {r->TB, tokens, heads, dim};
    int64_t st[4];
    mfa_check_layout_strides(r->c->layout, transposed, n, st);
    return mfa_check_array_alloc(a, dtype, n, st);
}

static void draw_lengths(run_t *r) {
    const mfa_check_case_t *c = r->c;
    const int independent = c->seqlen_q != c->seqlen_kv;
    r->cu_q[0] = r->cu_k[0] = 0;
    for (int64_t b = 0; b < r->B; b++) {
        int64_t lq = 1 + (int64_t)(mfa_check_rng_u64(&r->rng) % (uint64_t)c->seqlen_q);
        int64_t lk =
            independent ? 1 + (int64_t)(mfa_check_rng_u64(&r->rng) % (uint64_t)c->seqlen_kv) : lq;
        if (b == 0) lq = c->seqlen_q, lk = c->seqlen_kv; /* the longest is the declared one */
        if (b == 1) lq = lk = 0;                         /* an empty sequence */
        if (b == 3 && independent) lk = 0;               /* queries that see no key */
        r->cu_q[b + 1] = r->cu_q[b] + (int32_t)lq;
        r->cu_k[b + 1] = r->cu_k[b] + (int32_t)lk;
    }
}

static int setup_masks(run_t *r) {
    const mfa_check_case_t *c = r->c;
    const int64_t B = r->B, H = c->heads_q, SQ = r->max_sq, SK = r->max_sk;
    if (c->block) {
        const int64_t rows = (SQ + c->block_q - 1) / c->block_q;
        const int64_t cols = (SK + c->block_kv - 1) / c->block_kv;
        const int64_t n[4] = {B, H, rows, cols};
        int64_t st[4] = {H * rows * cols, rows * cols, cols, 1};
        if (c->block == MFA_CHECK_BLOCK_SHARED) st[0] = st[1] = 0;
        if (mfa_check_array_alloc(&r->blk, MFA_DTYPE_BOOL, n, st)) return -1;
        for (int64_t i = 0; i < r->blk.extent; i++)
            ((uint8_t *)r->blk.data)[i] = mfa_check_rng_uniform(&r->rng) < 0.6;
    }
    if (c->dense) {
        const int32_t dt = c->dense == MFA_CHECK_DENSE_BOOL  ? MFA_DTYPE_BOOL
                           : c->dense == MFA_CHECK_DENSE_F32 ? MFA_DTYPE_F32
                                                             : MFA_DTYPE_BF16;
        const int64_t n[4] = {B, H, SQ, SK};
        int64_t st[4] = {H * SQ * SK, SQ * SK, SK, 1};
        if (c->dense_broadcast & MFA_CHECK_BCAST_HEAD) st[1] = 0, st[0] = SQ * SK;
        if (c->dense_broadcast & MFA_CHECK_BCAST_BATCH) st[0] = 0;
        if (mfa_check_array_alloc(&r->den, dt, n, st)) return -1;
        for (int64_t b = 0; b < B; b++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t i = 0; i < SQ; i++)
                    for (int64_t j = 0; j < SK; j++) {
                        const double u = mfa_check_rng_uniform(&r->rng);
                        double x = dt == MFA_DTYPE_BOOL ? (u < 0.75)
                                   : u < 0.1            ? -INFINITY
                                                        : mfa_check_rng_normal(&r->rng);
                        if (i == SQ / 2) x = dt == MFA_DTYPE_BOOL ? 0.0 : -INFINITY; /* dead row */
                        mfa_check_array_set(&r->den, mfa_check_array_at(&r->den, b, h, i, j), x);
                    }
    }
    return 0;
}

/* The arrays the context under test reads or writes. */
static int tested_arrays(run_t *r, mfa_check_array_t **all) {
    mfa_check_array_t *list[] = {&r->q,   &r->k,    &r->v,  &r->o,  &r->lse, &r->blk,
                                 &r->den, &r->dout, &r->dq, &r->dk, &r->dv};
    int n = 0;
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        if (list[i]->alloc) all[n++] = list[i];
    return n;
}

/* Gives the tested arrays buffers of the context under test: mode 1 wraps the host memory, mode
 * 2 allocates library buffers that mirror each whole allocation (guards included). */
static int make_buffers(run_t *r, mfa_context_t ut, int mode) {
    mfa_check_array_t *all[16];
    const int n = tested_arrays(r, all);
    for (int i = 0; i < n; i++) {
        mfa_check_array_t *a = all[i];
        const size_t used =
            (size_t)((unsigned char *)a->data - a->alloc) + (size_t)a->extent * a->esize;
        const mfa_error_t e = mode == 1 ? mfa_buffer_from_ptr(ut, a->alloc, used, &a->buffer)
                                        : mfa_create_buffer(ut, a->bytes, &a->buffer);
        a->mirrored = mode == 2;
        if (e != MFA_SUCCESS) {
            say(r, "%s failed: %s (%s)\n", mode == 1 ? "mfa_buffer_from_ptr" : "mfa_create_buffer",
                mfa_error_string(e), mfa_last_error_message(ut));
            return -1;
        }
    }
    return 0;
}

/* Copies every mirrored array host -> buffer (to_device) or buffer -> host. */
static int sync_mirrors(run_t *r, mfa_context_t ut, int to_device) {
    mfa_check_array_t *all[16];
    const int n = tested_arrays(r, all);
    for (int i = 0; i < n; i++) {
        if (!all[i]->mirrored) continue;
        const mfa_error_t e =
            to_device ? mfa_buffer_copy_from_host(all[i]->buffer, 0, all[i]->alloc, all[i]->bytes)
                      : mfa_buffer_copy_to_host(all[i]->buffer, 0, all[i]->alloc, all[i]->bytes);
        if (e != MFA_SUCCESS) {
            say(r, "buffer copy %s failed: %s (%s)\n", to_device ? "to the device" : "to the host",
                mfa_error_string(e), mfa_last_error_message(ut));
            return -1;
        }
    }
    return 0;
}

static int setup(run_t *r) {
    const mfa_check_case_t *c = r->c;
    r->B = c->batch, r->max_sq = c->seqlen_q, r->max_sk = c->seqlen_kv;
    r->TB = c->batch, r->TQ = c->seqlen_q, r->TK = c->seqlen_kv;
    r->in_dt = mfa_check_mfa_dtype(c->in_dtype), r->out_dt = mfa_check_mfa_dtype(c->out_dtype);
    if (c->varlen) {
        r->cu_q = calloc((size_t)r->B + 1, sizeof(int32_t));
        r->cu_k = calloc((size_t)r->B + 1, sizeof(int32_t));
        if (!r->cu_q || !r->cu_k) return -1;
        draw_lengths(r);
        r->TB = 1, r->TQ = r->cu_q[r->B], r->TK = r->cu_k[r->B];
    }
    const int64_t Hq = c->heads_q, Hk = c->heads_kv, Dk = c->head_dim_qk, Dv = c->head_dim_v;
    const int t = c->transpose;
    int bad = alloc_like(r, &r->q, r->in_dt, r->TQ, Hq, Dk, t & MFA_CHECK_TQ) ||
              alloc_like(r, &r->k, r->in_dt, r->TK, Hk, Dk, t & MFA_CHECK_TK) ||
              alloc_like(r, &r->v, r->in_dt, r->TK, Hk, Dv, t & MFA_CHECK_TV) ||
              alloc_like(r, &r->o, r->out_dt, r->TQ, Hq, Dv, t & MFA_CHECK_TO) ||
              alloc_like(r, &r->o_r, MFA_DTYPE_F32, r->TQ, Hq, Dv, t & MFA_CHECK_TO);
    const int64_t ln[4] = {c->varlen ? 1 : r->B, Hq, c->varlen ? r->TQ : r->max_sq, 1};
    const int64_t ls[4] = {ln[1] * ln[2], ln[2], 1, 1};
    bad = bad || mfa_check_array_alloc(&r->lse, MFA_DTYPE_F32, ln, ls) ||
          mfa_check_array_alloc(&r->lse_r, MFA_DTYPE_F32, ln, ls);
    if (!bad && c->backward)
        bad = alloc_like(r, &r->dout, r->out_dt, r->TQ, Hq, Dv, t & MFA_CHECK_TO) ||
              alloc_like(r, &r->dout_r, MFA_DTYPE_F32, r->TQ, Hq, Dv, t & MFA_CHECK_TO) ||
              alloc_like(r, &r->dq, r->out_dt, r->TQ, Hq, Dk, t & MFA_CHECK_TQ) ||
              alloc_like(r, &r->dk, r->out_dt, r->TK, Hk, Dk, t & MFA_CHECK_TK) ||
              alloc_like(r, &r->dv, r->out_dt, r->TK, Hk, Dv, t & MFA_CHECK_TV) ||
              alloc_like(r, &r->dq_r, MFA_DTYPE_F32, r->TQ, Hq, Dk, t & MFA_CHECK_TQ) ||
              alloc_like(r, &r->dk_r, MFA_DTYPE_F32, r->TK, Hk, Dk, t & MFA_CHECK_TK) ||
              alloc_like(r, &r->dv_r, MFA_DTYPE_F32, r->TK, Hk, Dv, t & MFA_CHECK_TV);
    if (bad || setup_masks(r)) return -1;

    /* q.k * scale has std scale * s^2 * sqrt(D) for q, k ~ N(0, s^2): pick s for score_std */
    const double scale = c->softmax_scale > 0 ? c->softmax_scale : 1.0 / sqrt((double)Dk);
    const double target = c->score_std > 0 ? c->score_std : 2.0;
    const double s = sqrt(target / (scale * sqrt((double)Dk)));
    mfa_check_array_fill(&r->q, &r->rng, s, c->uniform);
    mfa_check_array_fill(&r->k, &r->rng, s, c->uniform);
    mfa_check_array_fill(&r->v, &r->rng, 1.0, c->uniform);

    r->scale = scale;
    return scan_pairs(r, scale);
}

/* Marks the rows and keys that keep at least one pair, and finds the largest |scaled score +
 * bias| over kept pairs (it sets the fp32 part of the tolerance, see tolerance.h). */
static int scan_pairs(run_t *r, double scale) {
    const mfa_check_case_t *c = r->c;
    const int64_t Hq = c->heads_q, Hk = c->heads_kv, D = c->head_dim_qk;
    const size_t nalive = (size_t)(r->B * Hq * r->max_sq + r->B * Hk * r->max_sk) + 1;
    r->row_alive = calloc(nalive, 1);
    double *qd = malloc(sizeof(double) * (size_t)(r->TB * r->TQ * Hq * D + 1));
    double *kd = malloc(sizeof(double) * (size_t)(r->TB * r->TK * Hk * D + 1));
    if (!r->row_alive || !qd || !kd) {
        free(qd);
        free(kd);
        return -1;
    }
    r->key_alive = r->row_alive + r->B * Hq * r->max_sq;
    for (int64_t tb = 0; tb < r->TB; tb++)
        for (int64_t d = 0; d < D; d++) {
            for (int64_t t = 0; t < r->TQ; t++)
                for (int64_t h = 0; h < Hq; h++)
                    qd[((tb * r->TQ + t) * Hq + h) * D + d] =
                        mfa_check_array_get(&r->q, mfa_check_array_at(&r->q, tb, t, h, d));
            for (int64_t t = 0; t < r->TK; t++)
                for (int64_t h = 0; h < Hk; h++)
                    kd[((tb * r->TK + t) * Hk + h) * D + d] =
                        mfa_check_array_get(&r->k, mfa_check_array_at(&r->k, tb, t, h, d));
        }
    for (int64_t b = 0; b < r->B; b++) {
        int64_t q0, sq, k0, sk;
        seq(r, b, &q0, &sq, &k0, &sk);
        const int64_t tb = r->cu_q ? 0 : b;
        for (int64_t h = 0; h < Hq; h++)
            for (int64_t i = 0; i < sq; i++) {
                const double *qrow = qd + ((tb * r->TQ + q0 + i) * Hq + h) * D;
                for (int64_t j = 0; j < sk; j++) {
                    if (!keeps(r, b, h, i, j, sq, sk)) continue;
                    r->row_alive[(b * Hq + h) * r->max_sq + i] = 1;
                    r->key_alive[(b * Hk + h / (Hq / Hk)) * r->max_sk + j] = 1;
                    const double *krow = kd + ((tb * r->TK + k0 + j) * Hk + h / (Hq / Hk)) * D;
                    double dot = 0;
                    for (int64_t d = 0; d < D; d++) dot += qrow[d] * krow[d];
                    double score = scale * dot;
                    if (c->dense > MFA_CHECK_DENSE_BOOL)
                        score +=
                            mfa_check_array_get(&r->den, mfa_check_array_at(&r->den, b, h, i, j));
                    if (fabs(score) > r->score_max) r->score_max = fabs(score);
                }
            }
    }
    free(qd);
    free(kd);
    return 0;
}

static void teardown(run_t *r) {
    mfa_check_array_t *all[] = {&r->q,    &r->k,    &r->v,    &r->o,   &r->lse,   &r->dout,
                                &r->dq,   &r->dk,   &r->dv,   &r->o_r, &r->lse_r, &r->dout_r,
                                &r->dq_r, &r->dk_r, &r->dv_r, &r->blk, &r->den};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        mfa_destroy_buffer(all[i]->buffer);
        mfa_check_array_free(all[i]);
    }
    free(r->cu_q);
    free(r->cu_k);
    free(r->row_alive);
}

/* ---- Params ---------------------------------------------------------------------------------- */
static void tensor(mfa_tensor_t *t, const mfa_check_array_t *a, int use_buffer) {
    memset(t, 0, sizeof *t);
    if (use_buffer && a->buffer) {
        t->buffer = a->buffer;
        t->byte_offset = (uint64_t)((unsigned char *)a->data - a->alloc);
    } else {
        t->data = a->data;
    }
    t->dtype = a->dtype;
    memcpy(t->stride, a->stride, sizeof t->stride);
}

/* The pointer to element 0 the context sees for a raw-pointer field (lse, block_mask). */
static void *raw(const mfa_check_array_t *a, int use_buffer) {
    if (!use_buffer || !a->buffer) return a->data;
    return (unsigned char *)mfa_buffer_contents(a->buffer) + ((unsigned char *)a->data - a->alloc);
}

static void params(const run_t *r, mfa_attention_params_t *p, int ref) {
    const mfa_check_case_t *c = r->c;
    mfa_attention_params_init(p);
    p->batch = r->B;
    p->seqlen_q = r->TQ, p->seqlen_kv = r->TK;
    p->heads_q = c->heads_q, p->heads_kv = c->heads_kv;
    p->head_dim_qk = c->head_dim_qk, p->head_dim_v = c->head_dim_v;
    const int buf = !ref && r->buffers;
    tensor(&p->q, &r->q, buf), tensor(&p->k, &r->k, buf), tensor(&p->v, &r->v, buf);
    tensor(&p->o, ref ? &r->o_r : &r->o, buf);
    if (c->lse || c->backward) p->lse = ref ? r->lse_r.data : raw(&r->lse, buf);
    p->softmax_scale = c->softmax_scale;
    p->softcap = c->softcap;
    p->mask = c->mask, p->mask_align = c->mask_align;
    if (c->mask == MFA_MASK_WINDOW)
        p->window_left = c->window_left, p->window_right = c->window_right;
    if (c->block) {
        p->block_mask = raw(&r->blk, buf);
        p->block_q = c->block_q, p->block_kv = c->block_kv;
        p->block_mask_rows = r->blk.n[2], p->block_mask_cols = r->blk.n[3];
        memcpy(p->block_mask_stride, r->blk.stride, sizeof p->block_mask_stride);
    }
    if (c->dense) tensor(&p->attn_mask, &r->den, buf);
    p->cu_seqlens_q = r->cu_q, p->cu_seqlens_kv = r->cu_k;
    if (c->backward) {
        tensor(&p->dout, ref ? &r->dout_r : &r->dout, buf);
        tensor(&p->dq, ref ? &r->dq_r : &r->dq, buf);
        tensor(&p->dk, ref ? &r->dk_r : &r->dk, buf);
        tensor(&p->dv, ref ? &r->dv_r : &r->dv, buf);
    }
}

/* ---- Checks ---------------------------------------------------------------------------------- */
typedef struct snap {
    const mfa_check_array_t *a;
    const char *name;
    unsigned char *copy;
} snap_t;

static void snap_take(snap_t *s, int n) {
    for (int i = 0; i < n; i++)
        if (s[i].a->alloc && (s[i].copy = malloc(s[i].a->bytes)))
            memcpy(s[i].copy, s[i].a->alloc, s[i].a->bytes);
}

/* 0 when every snapshot still matches; frees the copies. */
static int snap_check(run_t *r, snap_t *s, int n, const char *who) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        if (!s[i].copy) continue;
        if (!bad && memcmp(s[i].copy, s[i].a->alloc, s[i].a->bytes) != 0) {
            say(r, "%s modified its input %s\n", who, s[i].name);
            bad = 1;
        }
        free(s[i].copy);
        s[i].copy = NULL;
    }
    return bad;
}

static int untouched(run_t *r, const mfa_check_array_t *a, const char *name, const char *who) {
    char msg[200];
    if (mfa_check_array_untouched(a, name, msg, sizeof msg) == 0) return 0;
    say(r, "%s: %s\n", who, msg);
    return 1;
}

/* 0 when x[tb, token, head, :] is all exact zeros; otherwise reports the first nonzero. */
static int zero_row(run_t *r, const mfa_check_array_t *x, const char *name, int64_t tb,
                    int64_t token, int64_t head, const char *why) {
    for (int64_t d = 0; d < x->n[3]; d++) {
        const double val = mfa_check_array_get(x, mfa_check_array_at(x, tb, token, head, d));
        if (val == 0.0) continue;
        say(r, "%s but %s[%lld, %lld, %lld, %lld] = %g (must be 0)\n", why, name, (long long)tb,
            (long long)token, (long long)head, (long long)d, val);
        return 1;
    }
    return 0;
}

/* Fully masked rows give o == 0 and lse == -inf (forward) and dq == 0 (backward); keys that no
 * row keeps give dk == dv == 0. Exact, not through the tolerance. */
static int dead_exact(run_t *r, int bwd, int ref, const char *who) {
    const mfa_check_case_t *c = r->c;
    const int64_t Hq = c->heads_q, Hk = c->heads_kv;
    const mfa_check_array_t *o = ref ? &r->o_r : &r->o, *lse = ref ? &r->lse_r : &r->lse;
    const mfa_check_array_t *dq = ref ? &r->dq_r : &r->dq, *dk = ref ? &r->dk_r : &r->dk;
    const mfa_check_array_t *dv = ref ? &r->dv_r : &r->dv;
    char why[160];
    for (int64_t b = 0; b < r->B; b++) {
        int64_t q0, sq, k0, sk;
        seq(r, b, &q0, &sq, &k0, &sk);
        const int64_t tb = r->cu_q ? 0 : b;
        for (int64_t h = 0; h < Hq; h++)
            for (int64_t i = 0; i < sq; i++) {
                if (r->row_alive[(b * Hq + h) * r->max_sq + i]) continue;
                snprintf(why, sizeof why, "%s: row (seq %lld, head %lld, row %lld) keeps no key",
                         who, (long long)b, (long long)h, (long long)i);
                if (bwd ? zero_row(r, dq, "dq", tb, q0 + i, h, why)
                        : zero_row(r, o, "o", tb, q0 + i, h, why))
                    return 1;
                const double l = mfa_check_array_get(lse, lse_at(r, b, h, q0, i));
                if (!bwd && (c->lse || c->backward) && l != -INFINITY) {
                    say(r, "%s but lse = %g (must be -inf)\n", why, l);
                    return 1;
                }
            }
        for (int64_t g = 0; bwd && g < Hk; g++)
            for (int64_t j = 0; j < sk; j++) {
                if (r->key_alive[(b * Hk + g) * r->max_sk + j]) continue;
                snprintf(why, sizeof why,
                         "%s: key (seq %lld, kv head %lld, key %lld) is kept by no row", who,
                         (long long)b, (long long)g, (long long)j);
                if (zero_row(r, dk, "dk", tb, k0 + j, g, why) ||
                    zero_row(r, dv, "dv", tb, k0 + j, g, why))
                    return 1;
            }
    }
    return 0;
}

/* The size of the terms an output is summed from, from the inputs' rms: the scale of its
 * rounding errors when the output itself cancels to zero (see tolerance.h). */
static double term_scale(const run_t *r, int output) {
    const double dv = sqrt((double)r->c->head_dim_v);
    switch (output) {
    case MFA_CHECK_O:
        return mfa_check_array_rms(&r->v);
    case MFA_CHECK_DV:
        return mfa_check_array_rms(&r->dout);
    case MFA_CHECK_DQ:
        return r->scale * mfa_check_array_rms(&r->k) * mfa_check_array_rms(&r->dout) *
               mfa_check_array_rms(&r->v) * dv;
    case MFA_CHECK_DK:
        return r->scale * mfa_check_array_rms(&r->q) * mfa_check_array_rms(&r->dout) *
               mfa_check_array_rms(&r->v) * dv;
    default:
        return 1.0;
    }
}

/* Element-wise comparison of x (under test) with ref over the described elements. */
static int compare(run_t *r, const char *name, int output, const mfa_check_array_t *x,
                   const mfa_check_array_t *ref, mfa_check_stat_t *st) {
    const int is_lse = output == MFA_CHECK_LSE;
    const mfa_check_tolerance_t tol = mfa_check_tolerance(x->dtype, output, r->score_max);
    double sum2 = 0;
    int64_t n = 0;
    for (int pass = 0; pass < 2; pass++) {
        double rms = n ? sqrt(sum2 / (double)n) : 0.0;
        if (pass == 1 && rms <= 1e-6 * term_scale(r, output)) /* cancels to zero everywhere */
            rms = term_scale(r, output);
        int64_t bad = 0;
        if (pass == 1) st->rms_ref = rms;
        for (int64_t i0 = 0; i0 < x->n[0]; i0++)
            for (int64_t i1 = 0; i1 < x->n[1]; i1++)
                for (int64_t i2 = 0; i2 < x->n[2]; i2++)
                    for (int64_t i3 = 0; i3 < x->n[3]; i3++) {
                        const int64_t at = mfa_check_array_at(x, i0, i1, i2, i3);
                        const double xv = mfa_check_array_get(x, at),
                                     rv = mfa_check_array_get(ref, at);
                        if (pass == 0) {
                            if (isfinite(rv) && rv != 0.0) sum2 += rv * rv, n++;
                            continue;
                        }
                        const double err = fabs(xv - rv);
                        const double lim = tol.atol * rms + tol.rtol * fabs(rv);
                        int ok = 1;
                        if (isnan(xv) || isnan(rv))
                            ok = 0;
                        else if (isinf(rv) || isinf(xv))
                            ok = xv == rv;
                        else {
                            const double ratio = lim > 0 ? err / lim : (err > 0 ? INFINITY : 0);
                            if (ratio > st->max_ratio) st->max_ratio = ratio;
                            if (err > st->max_abs) st->max_abs = err;
                            if (rms > 0 && err / rms > st->err_rms) st->err_rms = err / rms;
                            if (fabs(rv) >= rms && rv != 0 && err / fabs(rv) > st->err_rel)
                                st->err_rel = err / fabs(rv);
                            ok = err <= lim;
                        }
                        st->compared++;
                        if (ok) continue;
                        if (bad++ >= MAX_SHOWN) continue;
                        if (is_lse)
                            say(r, "  lse[b=%lld, h=%lld, i=%lld] = %.9g, reference %.9g",
                                (long long)i0, (long long)i1, (long long)i2, xv, rv);
                        else
                            say(r, "  %s[%lld, %lld, %lld, %lld] = %.9g, reference %.9g", name,
                                (long long)i0, (long long)i1, (long long)i2, (long long)i3, xv, rv);
                        if (isnan(xv))
                            say(r, " (NaN: unwritten or invalid)\n");
                        else
                            say(r, "  |err| %.3g > tol %.3g\n", err, lim);
                    }
        if (pass == 1 && bad) {
            say(r, "%s: %lld of %lld elements outside tolerance (rtol %g, atol %g x rms %.3g)\n",
                name, (long long)bad, (long long)st->compared, tol.rtol, tol.atol, rms);
            return 1;
        }
    }
    return 0;
}

static int status_of(mfa_error_t e) {
    return e == MFA_ERROR_UNSUPPORTED || e == MFA_ERROR_DEVICE_NOT_SUPPORTED ? MFA_CHECK_SKIP
                                                                             : MFA_CHECK_FAIL;
}

/* Runs fwd or bwd on both contexts with all checks; returns MFA_CHECK_*. */
static int direction(run_t *r, mfa_context_t ut, mfa_context_t ref, int bwd,
                     mfa_check_result_t *res) {
    mfa_attention_params_t pt, pr;
    params(r, &pt, 0);
    params(r, &pr, 1);
    const char *dir = bwd ? "backward" : "forward";
    mfa_error_t e = mfa_attention_supported(ut, &pt, bwd);
    if (e != MFA_SUCCESS) {
        say(r, "%s not accepted: %s (%s)\n", dir, mfa_error_string(e), mfa_last_error_message(ut));
        return status_of(e);
    }
    mfa_check_array_t *outs[] = {bwd ? &r->dq : &r->o,       bwd ? &r->dk : &r->lse,
                                 bwd ? &r->dv : NULL,        bwd ? &r->dq_r : &r->o_r,
                                 bwd ? &r->dk_r : &r->lse_r, bwd ? &r->dv_r : NULL};
    const char *onames[] = {bwd ? "dq" : "o", bwd ? "dk" : "lse", "dv"};
    for (int i = 0; i < 6; i++)
        if (outs[i]) mfa_check_array_poison(outs[i]);
    snap_t s[] = {
        {&r->q, "q", 0},           {&r->k, "k", 0}, {&r->v, "v", 0},     {&r->blk, "block_mask", 0},
        {&r->den, "attn_mask", 0}, {&r->o, "o", 0}, {&r->lse, "lse", 0}, {&r->dout, "dout", 0}};
    const int ns = bwd ? 8 : 5;
    snap_take(s, ns);
    double t0 = now_ms();
    int copy_bad = sync_mirrors(r, ut, 1);
    e = copy_bad ? MFA_SUCCESS : bwd ? mfa_attention_bwd(ut, &pt) : mfa_attention_fwd(ut, &pt);
    if (!copy_bad && e == MFA_SUCCESS) e = mfa_synchronize(ut);
    *(bwd ? &res->ms_bwd : &res->ms_fwd) = now_ms() - t0;
    if (!copy_bad && e == MFA_SUCCESS) copy_bad = sync_mirrors(r, ut, 0);
    int bad = snap_check(r, s, ns, "under test") || copy_bad;
    if (e != MFA_SUCCESS) {
        say(r, "%s failed: %s (%s)\n", dir, mfa_error_string(e), mfa_last_error_message(ut));
        return status_of(e);
    }
    for (int i = 0; i < 3 && !bad; i++)
        if (outs[i]) bad = untouched(r, outs[i], onames[i], "under test");
    if (bad) return MFA_CHECK_FAIL;

    t0 = now_ms();
    e = bwd ? mfa_attention_bwd(ref, &pr) : mfa_attention_fwd(ref, &pr);
    *(bwd ? &res->ms_ref_bwd : &res->ms_ref_fwd) = now_ms() - t0;
    if (e != MFA_SUCCESS) {
        say(r, "reference %s failed: %s (%s)\n", dir, mfa_error_string(e),
            mfa_last_error_message(ref));
        return MFA_CHECK_FAIL;
    }
    if (dead_exact(r, bwd, 0, "under test") || dead_exact(r, bwd, 1, "reference"))
        return MFA_CHECK_FAIL;
    const int which[] = {bwd ? MFA_CHECK_DQ : MFA_CHECK_O, bwd ? MFA_CHECK_DK : MFA_CHECK_LSE,
                         MFA_CHECK_DV};
    for (int i = 0; i < 3; i++) {
        if (!outs[i]) continue;
        if (!bwd && i == 1 && !r->c->lse && !r->c->backward) continue;
        if (compare(r, onames[i], which[i], outs[i], outs[i + 3], &res->stat[which[i]]))
            return MFA_CHECK_FAIL;
    }
    return MFA_CHECK_PASS;
}

int mfa_check_case_ex(const mfa_check_case_t *c, mfa_context_t ut, mfa_context_t ref, uint64_t seed,
                      mfa_check_result_t *result, char *report, size_t report_size) {
    mfa_check_result_t local;
    mfa_check_result_t *res = result ? result : &local;
    memset(res, 0, sizeof *res);
    run_t r;
    memset(&r, 0, sizeof r);
    r.c = c, r.rep = report, r.rep_size = report_size;
    const char *backend = mfa_context_backend_name(ut);
    const int host = strcmp(backend, "cpu") == 0 || strcmp(backend, "reference") == 0;
    r.buffers = host ? c->buffers : 2; /* device memory: always library buffers */
    if (report && report_size) report[0] = 0;
    mfa_check_rng_seed(&r.rng, seed ^ mfa_check_hash(c->name));

    int st = MFA_CHECK_FAIL;
    if (c->heads_kv <= 0 || c->heads_q % c->heads_kv || (c->varlen && c->batch < 2)) {
        say(&r, "malformed case\n");
    } else if (setup(&r)) {
        say(&r, "out of memory setting up the case\n");
    } else if (!r.buffers || make_buffers(&r, ut, r.buffers) == 0) {
        st = direction(&r, ut, ref, 0, res);
        if (st == MFA_CHECK_PASS && c->backward) {
            mfa_check_array_fill(&r.dout, &r.rng, 1.0, 0);
            /* the same values in f32 for the reference (same strides: gaps are copied too) */
            for (int64_t i = 0; i < r.dout.extent; i++)
                ((float *)r.dout_r.data)[i] = (float)mfa_check_array_get(&r.dout, i);
            st = direction(&r, ut, ref, 1, res);
        }
    }
    for (int i = 0; i < MFA_CHECK_NOUT; i++)
        if (res->stat[i].max_ratio > res->max_ratio) res->max_ratio = res->stat[i].max_ratio;
    if (st == MFA_CHECK_FAIL)
        say(&r, "seed %llu (replay: MFA_SEED=%llu mfa check --filter %s)\n",
            (unsigned long long)seed, (unsigned long long)seed, c->name);
    res->score_max = r.score_max;
    teardown(&r);
    res->status = st;
    return st;
}

int mfa_check_case(const mfa_check_case_t *c, mfa_context_t ut, mfa_context_t ref, uint64_t seed,
                   char *report, size_t report_size) {
    return mfa_check_case_ex(c, ut, ref, seed, NULL, report, report_size);
}
