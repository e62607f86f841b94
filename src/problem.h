/* problem.h — the validated problem every backend consumes, and the helpers that read it.
 *
 * The core (params.c) turns a caller's mfa_attention_params_t into an mfa_problem_t only after
 * every check has passed: buffers are resolved to data pointers, the softmax scale is final,
 * and the derived sizes below are filled in. Backends never validate; they trust this struct.
 *
 * The mask semantics live here once (mfa_key_range, mfa_block_keeps, mfa_dense_bias) so the
 * reference and every backend agree by construction. */
#ifndef MFA_PROBLEM_H
#define MFA_PROBLEM_H

#include <math.h>
#include <stdint.h>

#include "dtype.h"
#include "mfa.h"

typedef struct mfa_problem {
    mfa_attention_params_t p; /* a full-size copy; tensors' `data` are final (buffers resolved) */
    float scale;              /* the softmax scale actually used */
    int64_t group;            /* heads_q / heads_kv: q heads sharing one kv head */
    int64_t max_seqlen_q;     /* longest sequence (== seqlen_q unless varlen) */
    int64_t max_seqlen_kv;
    bool varlen;
} mfa_problem_t;

/* One sequence of the batch: its rows start at token q0 (varlen) or 0, and keys at k0. */
typedef struct mfa_seq {
    int64_t q0, sq; /* first packed token and length of the query sequence */
    int64_t k0, sk;
    int64_t tb;     /* batch index to use in tensor strides (0 for varlen: packed tokens) */
} mfa_seq_t;

static inline mfa_seq_t mfa_problem_seq(const mfa_problem_t *pr, int64_t b) {
    mfa_seq_t s;
    if (pr->varlen) {
        s.q0 = pr->p.cu_seqlens_q[b];
        s.sq = pr->p.cu_seqlens_q[b + 1] - s.q0;
        s.k0 = pr->p.cu_seqlens_kv[b];
        s.sk = pr->p.cu_seqlens_kv[b + 1] - s.k0;
        s.tb = 0;
    } else {
        s.q0 = s.k0 = 0;
        s.sq = pr->p.seqlen_q;
        s.sk = pr->p.seqlen_kv;
        s.tb = b;
    }
    return s;
}

/* Element offset of [b, token, head, d] in tensor t. */
static inline int64_t mfa_offset(const mfa_tensor_t *t, int64_t b, int64_t token, int64_t head,
                                 int64_t d) {
    return b * t->stride[0] + token * t->stride[1] + head * t->stride[2] + d * t->stride[3];
}

/* LSE index of (sequence s of batch b, head h, row i): [batch, heads_q, seqlen_q] or, varlen,
 * [heads_q, total_q]. */
static inline int64_t mfa_lse_index(const mfa_problem_t *pr, int64_t b, const mfa_seq_t *s,
                                    int64_t h, int64_t i) {
    if (pr->varlen) return h * pr->p.seqlen_q + s->q0 + i;
    return (b * pr->p.heads_q + h) * pr->p.seqlen_q + i;
}

/* Keys j in [*lo, *hi) pass the causal / window mask for row i of a (sq, sk) sequence.
 * *lo >= *hi means the row sees no key. */
static inline void mfa_key_range(const mfa_problem_t *pr, int64_t i, int64_t sq, int64_t sk,
                                 int64_t *lo, int64_t *hi) {
    const int64_t diag = i + (pr->p.mask_align == MFA_ALIGN_BOTTOM_RIGHT ? sk - sq : 0);
    int64_t a = 0, z = sk;
    if (pr->p.mask == MFA_MASK_CAUSAL) {
        z = diag + 1;
    } else if (pr->p.mask == MFA_MASK_WINDOW) {
        if (pr->p.window_left >= 0) a = diag - pr->p.window_left;
        if (pr->p.window_right >= 0) z = diag + pr->p.window_right + 1;
    }
    *lo = a < 0 ? 0 : (a > sk ? sk : a);
    *hi = z < 0 ? 0 : (z > sk ? sk : z);
}

/* Block-sparse map: does block (i / block_q, j / block_kv) of (b, h) keep its pairs? */
static inline bool mfa_block_keeps(const mfa_problem_t *pr, int64_t b, int64_t h, int64_t i,
                                   int64_t j) {
    const mfa_attention_params_t *p = &pr->p;
    if (!p->block_mask) return true;
    const int64_t *st = p->block_mask_stride;
    return p->block_mask[b * st[0] + h * st[1] + (i / p->block_q) * st[2] +
                         (j / p->block_kv) * st[3]] != 0;
}

/* Dense mask for (b, h, i, j): the additive term (0 when there is no dense mask; -inf where a
 * bool mask drops the pair). */
static inline float mfa_dense_bias(const mfa_problem_t *pr, int64_t b, int64_t h, int64_t i,
                                   int64_t j) {
    const mfa_tensor_t *m = &pr->p.attn_mask;
    if (!m->data) return 0.0f;
    const int64_t at = b * m->stride[0] + h * m->stride[1] + i * m->stride[2] + j * m->stride[3];
    if (m->dtype == MFA_DTYPE_BOOL) return ((const uint8_t *)m->data)[at] ? 0.0f : -INFINITY;
    return mfa_load(m->data, m->dtype, at);
}

/* FLOPs of the forward over visited (unmasked by causal/window/block) pairs; backward = 2.5x. */
double mfa_problem_flops(const mfa_problem_t *pr);

#endif
