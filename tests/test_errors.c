/* test_errors.c — every bad input gets its named error code and a message naming the argument
 * and the value, writes nothing, and crashes nothing. Each case mutates one valid params struct;
 * the same case is also run through mfa_attention_supported, which must agree. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mfa.h"

enum { B = 2, S = 16, H = 4, HKV = 2, D = 8 };
#define NQ (B * S * H * D)
#define NK (B * S * HKV * D)
#define SENTINEL 0x5a

static int failures;
static float q[NQ], k[NK], v[NK], o[NQ], lse[B * H * S], dout[NQ], dq[NQ], dk[NK], dv[NK];
static int32_t cu_q[3], cu_kv[3];
static uint8_t block_map[4];
static mfa_context_t ctx, other_ctx;
static mfa_buffer_t other_buffer, small_buffer;

static void valid_params(mfa_attention_params_t *p) {
    mfa_attention_params_init(p);
    p->batch = B, p->seqlen_q = p->seqlen_kv = S, p->heads_q = H, p->heads_kv = HKV;
    p->head_dim_qk = p->head_dim_v = D;
    mfa_tensor_contiguous(&p->q, q, MFA_DTYPE_F32, S, H, D);
    mfa_tensor_contiguous(&p->k, k, MFA_DTYPE_F32, S, HKV, D);
    mfa_tensor_contiguous(&p->v, v, MFA_DTYPE_F32, S, HKV, D);
    mfa_tensor_contiguous(&p->o, o, MFA_DTYPE_F32, S, H, D);
    mfa_tensor_contiguous(&p->dout, dout, MFA_DTYPE_F32, S, H, D);
    mfa_tensor_contiguous(&p->dq, dq, MFA_DTYPE_F32, S, H, D);
    mfa_tensor_contiguous(&p->dk, dk, MFA_DTYPE_F32, S, HKV, D);
    mfa_tensor_contiguous(&p->dv, dv, MFA_DTYPE_F32, S, HKV, D);
    p->lse = lse;
}

/* ---- the cases: one mutation each ---------------------------------------------------------- */
static void m_batch0(mfa_attention_params_t *p) { p->batch = 0; }
static void m_heads0(mfa_attention_params_t *p) { p->heads_q = 0; }
static void m_seq_negative(mfa_attention_params_t *p) { p->seqlen_kv = -3; }
static void m_dim0(mfa_attention_params_t *p) { p->head_dim_qk = 0; }
static void m_dimv_huge(mfa_attention_params_t *p) { p->head_dim_v = 100000; }
static void m_gqa(mfa_attention_params_t *p) { p->heads_kv = 3; }
static void m_null_q(mfa_attention_params_t *p) { p->q.data = NULL; }
static void m_null_v(mfa_attention_params_t *p) { p->v.data = NULL; }
static void m_dtype(mfa_attention_params_t *p) { p->k.dtype = 9; }
static void m_bool_q(mfa_attention_params_t *p) { p->q.dtype = MFA_DTYPE_BOOL; }
static void m_mask(mfa_attention_params_t *p) { p->mask = 7; }
static void m_align(mfa_attention_params_t *p) { p->mask_align = -2; }
static void m_window(mfa_attention_params_t *p) { p->mask = MFA_MASK_WINDOW, p->window_left = -5; }
static void m_window_right(mfa_attention_params_t *p) { p->mask = MFA_MASK_WINDOW, p->window_right = -2; }
static void m_scale_nan(mfa_attention_params_t *p) { p->softmax_scale = NAN; }
static void m_softcap(mfa_attention_params_t *p) { p->softcap = -1.0f; }
static void m_stride_overflow(mfa_attention_params_t *p) { p->q.stride[1] = INT64_MAX / 4; }
static void m_stride_wrap(mfa_attention_params_t *p) { p->k.stride[0] = INT64_MIN / 2; }
static void m_out_overlap(mfa_attention_params_t *p) { p->o.stride[2] = 0; }
static void m_misaligned(mfa_attention_params_t *p) { p->q.data = (char *)q + 2; }
static void m_both_memory(mfa_attention_params_t *p) { p->v.buffer = small_buffer; }
static void m_buffer_small(mfa_attention_params_t *p) { p->q.data = NULL, p->q.buffer = small_buffer; }
static void m_buffer_offset(mfa_attention_params_t *p) {
    p->o.data = NULL, p->o.buffer = small_buffer, p->o.byte_offset = 1u << 20;
}
static void m_wrong_context(mfa_attention_params_t *p) { p->k.data = NULL, p->k.buffer = other_buffer; }
static void m_block_shape(mfa_attention_params_t *p) {
    p->block_mask = block_map, p->block_q = p->block_kv = 8, p->block_mask_rows = 2, p->block_mask_cols = 3;
}
static void m_block_size(mfa_attention_params_t *p) {
    p->block_mask = block_map, p->block_q = 0, p->block_kv = 8, p->block_mask_rows = p->block_mask_cols = 2;
}
static void m_attn_mask_dtype(mfa_attention_params_t *p) {
    p->attn_mask.data = block_map, p->attn_mask.dtype = 11;
}
static void m_cu_order(mfa_attention_params_t *p) {
    cu_q[0] = 0, cu_q[1] = 20, cu_q[2] = 12, cu_kv[0] = 0, cu_kv[1] = 16, cu_kv[2] = 32;
    p->seqlen_q = 12, p->seqlen_kv = 32, p->cu_seqlens_q = cu_q, p->cu_seqlens_kv = cu_kv;
}
static void m_cu_total(mfa_attention_params_t *p) {
    cu_q[0] = 0, cu_q[1] = 10, cu_q[2] = 30, cu_kv[0] = 0, cu_kv[1] = 16, cu_kv[2] = 32;
    p->seqlen_q = 32, p->seqlen_kv = 32, p->cu_seqlens_q = cu_q, p->cu_seqlens_kv = cu_kv;
}
static void m_cu_start(mfa_attention_params_t *p) {
    cu_q[0] = 4, cu_q[1] = 10, cu_q[2] = 32, cu_kv[0] = 0, cu_kv[1] = 16, cu_kv[2] = 32;
    p->seqlen_q = 32, p->seqlen_kv = 32, p->cu_seqlens_q = cu_q, p->cu_seqlens_kv = cu_kv;
}
static void m_cu_half(mfa_attention_params_t *p) { p->cu_seqlens_q = cu_q, p->cu_seqlens_kv = NULL; }
static void m_struct_size(mfa_attention_params_t *p) { p->struct_size = 0; }
static void m_struct_newer(mfa_attention_params_t *p) { p->struct_size = sizeof *p + 64; }
static void m_no_lse(mfa_attention_params_t *p) { p->lse = NULL; }
static void m_null_dq(mfa_attention_params_t *p) { p->dq.data = NULL; }
static void m_dk_overlap(mfa_attention_params_t *p) { p->dk.stride[1] = 0; }

typedef struct {
    const char *name;
    void (*mutate)(mfa_attention_params_t *);
    int32_t direction;
    mfa_error_t code;
    const char *must_say[2]; /* the argument and the value, as the message must name them */
} error_case_t;

static const error_case_t cases[] = {
    {"batch 0", m_batch0, 0, MFA_ERROR_INVALID_ARGS, {"batch", "=0"}},
    {"heads_q 0", m_heads0, 0, MFA_ERROR_INVALID_ARGS, {"heads_q", "=0"}},
    {"negative seqlen", m_seq_negative, 0, MFA_ERROR_INVALID_ARGS, {"seqlen_kv", "-3"}},
    {"head_dim 0", m_dim0, 0, MFA_ERROR_INVALID_ARGS, {"head_dim_qk", "=0"}},
    {"head_dim over max", m_dimv_huge, 0, MFA_ERROR_UNSUPPORTED, {"head_dim_v=100000", "maximum"}},
    {"heads_q % heads_kv", m_gqa, 0, MFA_ERROR_INVALID_ARGS, {"heads_q=4", "heads_kv=3"}},
    {"NULL q", m_null_q, 0, MFA_ERROR_NULL_POINTER, {"q.data", "NULL"}},
    {"NULL v", m_null_v, 0, MFA_ERROR_NULL_POINTER, {"v.data", "NULL"}},
    {"unknown dtype", m_dtype, 0, MFA_ERROR_INVALID_ARGS, {"k.dtype", "=9"}},
    {"bool q", m_bool_q, 0, MFA_ERROR_INVALID_ARGS, {"q.dtype", "=3"}},
    {"unknown mask", m_mask, 0, MFA_ERROR_INVALID_ARGS, {"mask", "=7"}},
    {"unknown align", m_align, 0, MFA_ERROR_INVALID_ARGS, {"mask_align", "-2"}},
    {"window_left < -1", m_window, 0, MFA_ERROR_INVALID_ARGS, {"window_left", "-5"}},
    {"window_right < -1", m_window_right, 0, MFA_ERROR_INVALID_ARGS, {"window_right", "-2"}},
    {"scale NaN", m_scale_nan, 0, MFA_ERROR_INVALID_ARGS, {"softmax_scale", "nan"}},
    {"softcap negative", m_softcap, 0, MFA_ERROR_INVALID_ARGS, {"softcap", "-1"}},
    {"stride overflow", m_stride_overflow, 0, MFA_ERROR_OUT_OF_BOUNDS, {"q", "overflow"}},
    {"negative stride wraps", m_stride_wrap, 0, MFA_ERROR_OUT_OF_BOUNDS, {"k", "-4611686018427387904"}},
    {"output overlap", m_out_overlap, 0, MFA_ERROR_INVALID_ARGS, {"o.stride[2]", "=0"}},
    {"misaligned data", m_misaligned, 0, MFA_ERROR_INVALID_ARGS, {"q.data", "aligned"}},
    {"data and buffer", m_both_memory, 0, MFA_ERROR_INVALID_ARGS, {"v", "both"}},
    {"buffer too small", m_buffer_small, 0, MFA_ERROR_OUT_OF_BOUNDS, {"q", "holds 256 bytes"}},
    {"buffer offset", m_buffer_offset, 0, MFA_ERROR_OUT_OF_BOUNDS, {"o", "byte_offset=1048576"}},
    {"buffer of other context", m_wrong_context, 0, MFA_ERROR_WRONG_CONTEXT, {"k.buffer", "context"}},
    {"block map shape", m_block_shape, 0, MFA_ERROR_INVALID_ARGS, {"block_mask shape [2, 3]", "[2, 2]"}},
    {"block size 0", m_block_size, 0, MFA_ERROR_INVALID_ARGS, {"block_q=0", "block_kv=8"}},
    {"attn_mask dtype", m_attn_mask_dtype, 0, MFA_ERROR_INVALID_ARGS, {"attn_mask.dtype", "=11"}},
    {"cu_seqlens decreasing", m_cu_order, 0, MFA_ERROR_INVALID_ARGS, {"cu_seqlens_q[2]=12", "non-decreasing"}},
    {"cu_seqlens total", m_cu_total, 0, MFA_ERROR_INVALID_ARGS, {"cu_seqlens_q[batch=2]=30", "seqlen_q=32"}},
    {"cu_seqlens start", m_cu_start, 0, MFA_ERROR_INVALID_ARGS, {"cu_seqlens_q[0]=4", "must be 0"}},
    {"cu_seqlens half", m_cu_half, 0, MFA_ERROR_NULL_POINTER, {"cu_seqlens_kv", "NULL"}},
    {"params not initialised", m_struct_size, 0, MFA_ERROR_INVALID_ARGS, {"struct_size=0", "mfa_attention_params_init"}},
    {"params newer than library", m_struct_newer, 0, MFA_ERROR_UNSUPPORTED, {"struct_size", "newer"}},
    {"backward without lse", m_no_lse, 1, MFA_ERROR_NULL_POINTER, {"lse", "NULL"}},
    {"backward NULL dq", m_null_dq, 1, MFA_ERROR_NULL_POINTER, {"dq.data", "NULL"}},
    {"backward dk overlap", m_dk_overlap, 1, MFA_ERROR_INVALID_ARGS, {"dk.stride[1]", "=0"}},
};

static bool untouched(const void *mem, size_t bytes) {
    const uint8_t *b = mem;
    for (size_t i = 0; i < bytes; i++)
        if (b[i] != SENTINEL) return false;
    return true;
}

static void check(const char *name, mfa_context_t c, mfa_error_t got, mfa_error_t want, const char *const say[2]) {
    const char *msg = mfa_last_error_message(c);
    bool ok = got == want;
    for (int i = 0; i < 2; i++) ok = ok && say[i] && strstr(msg, say[i]);
    ok = ok && untouched(o, sizeof o) && untouched(lse, sizeof lse) && untouched(dq, sizeof dq) &&
         untouched(dk, sizeof dk) && untouched(dv, sizeof dv);
    printf("%-28s %s  [%d %s] %s\n", name, ok ? "ok  " : "FAIL", got, mfa_error_string(got), msg);
    if (!ok) printf("    expected code %d and a message containing \"%s\" and \"%s\", outputs untouched\n", want,
                    say[0], say[1]);
    failures += !ok;
}

static void poison_outputs(void) {
    memset(o, SENTINEL, sizeof o), memset(lse, SENTINEL, sizeof lse);
    memset(dq, SENTINEL, sizeof dq), memset(dk, SENTINEL, sizeof dk), memset(dv, SENTINEL, sizeof dv);
}

/* Handles and the seed entry points. */
static void handle_cases(void) {
    mfa_attention_params_t p;
    valid_params(&p);
    mfa_buffer_t buf;
    const char *const null_ctx[2] = {"context", "NULL"};
    check("fwd NULL context", NULL, mfa_attention_fwd(NULL, &p), MFA_ERROR_NULL_POINTER, null_ctx);
    check("bwd NULL context", NULL, mfa_attention_bwd(NULL, &p), MFA_ERROR_NULL_POINTER, null_ctx);
    check("create_buffer NULL context", NULL, mfa_create_buffer(NULL, 64, &buf), MFA_ERROR_NULL_POINTER, null_ctx);
    const char *const null_params[2] = {"params", "NULL"};
    check("NULL params", ctx, mfa_attention_fwd(ctx, NULL), MFA_ERROR_NULL_POINTER, null_params);
    const char *const null_out[2] = {"context", "NULL"};
    check("create_context NULL out", NULL, mfa_create_context(NULL), MFA_ERROR_NULL_POINTER, null_out);
    const char *const size0[2] = {"size_bytes", "=0"};
    check("create_buffer size 0", ctx, mfa_create_buffer(ctx, 0, &buf), MFA_ERROR_INVALID_ARGS, size0);
    const char *const null_data[2] = {"data", "NULL"};
    check("buffer_from_ptr NULL", ctx, mfa_buffer_from_ptr(ctx, NULL, 64, &buf), MFA_ERROR_NULL_POINTER, null_data);
    const char *const dir[2] = {"direction", "=5"};
    check("supported bad direction", ctx, mfa_attention_supported(ctx, &p, 5), MFA_ERROR_INVALID_ARGS, dir);

    mfa_context_options_t opt;
    mfa_context_options_init(&opt);
    opt.backend = 42;
    mfa_context_t bad;
    const char *const backend[2] = {"backend", "=42"};
    check("unknown backend", NULL, mfa_create_context_ex(&bad, &opt), MFA_ERROR_INVALID_ARGS, backend);

    /* Seed API: NULL buffer, bad precision, zero size, too-small buffer. */
    mfa_buffer_t bq, bk, bv, bo;
    mfa_buffer_from_ptr(ctx, q, sizeof q, &bq), mfa_buffer_from_ptr(ctx, k, sizeof k, &bk);
    mfa_buffer_from_ptr(ctx, v, sizeof v, &bv), mfa_buffer_from_ptr(ctx, o, sizeof o, &bo);
    const char *const seed_null[2] = {"buffer k", "NULL"};
    check("seed NULL buffer", ctx,
          mfa_attention_forward(ctx, bq, NULL, bv, bo, 1, S, S, 1, D, 0, false, 2, 2, 2, false, false, false, false),
          MFA_ERROR_NULL_POINTER, seed_null);
    const char *const seed_prec[2] = {"output_precision", "=3"};
    check("seed bad precision", ctx,
          mfa_attention_forward(ctx, bq, bk, bv, bo, 1, S, S, 1, D, 0, false, 2, 2, 3, false, false, false, false),
          MFA_ERROR_INVALID_ARGS, seed_prec);
    const char *const seed_zero[2] = {"seq_len_q", "=0"};
    check("seed zero seq", ctx,
          mfa_attention_forward(ctx, bq, bk, bv, bo, 1, 0, S, 1, D, 0, false, 2, 2, 2, false, false, false, false),
          MFA_ERROR_INVALID_ARGS, seed_zero);
    const char *const seed_hd[2] = {"head_dim", "=0"};
    check("seed head_dim 0", ctx,
          mfa_attention_forward(ctx, bq, bk, bv, bo, 1, S, S, 1, 0, 0, false, 2, 2, 2, false, false, false, false),
          MFA_ERROR_INVALID_ARGS, seed_hd);
    const char *const seed_oob[2] = {"q", "buffer holds"};
    check("seed buffer too small", ctx,
          mfa_attention_forward(ctx, bq, bk, bv, bo, 4, S, S, H, D, 0, false, 2, 2, 2, false, false, false, false),
          MFA_ERROR_OUT_OF_BOUNDS, seed_oob);
    const char *const seed_ctx[2] = {"k.buffer", "context"};
    check("seed buffer of other context", ctx,
          mfa_attention_forward(ctx, bq, other_buffer, bv, bo, 1, 2, 2, 1, D, 0, false, 2, 2, 2, false, false, false,
                                false),
          MFA_ERROR_WRONG_CONTEXT, seed_ctx);
    mfa_destroy_buffer(bq), mfa_destroy_buffer(bk), mfa_destroy_buffer(bv), mfa_destroy_buffer(bo);
}

int main(void) {
    for (size_t i = 0; i < NQ; i++) q[i] = dout[i] = 0.25f;
    for (size_t i = 0; i < NK; i++) k[i] = v[i] = 0.5f;
    mfa_context_options_t opt;
    mfa_context_options_init(&opt);
    opt.backend = MFA_BACKEND_CPU;
    if (mfa_create_context_ex(&ctx, &opt) || mfa_create_context_ex(&other_ctx, &opt)) return 1;
    mfa_create_buffer(other_ctx, sizeof k, &other_buffer);
    mfa_create_buffer(ctx, 256, &small_buffer);
    poison_outputs();

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const error_case_t *c = &cases[i];
        mfa_attention_params_t p;
        valid_params(&p);
        c->mutate(&p);
        mfa_error_t supported = mfa_attention_supported(ctx, &p, c->direction);
        mfa_error_t got = c->direction == MFA_DIRECTION_FWD ? mfa_attention_fwd(ctx, &p) : mfa_attention_bwd(ctx, &p);
        check(c->name, ctx, got, c->code, c->must_say);
        if (supported != got) {
            printf("    mfa_attention_supported said %d, the call %d\n", supported, got);
            failures++;
        }
    }
    handle_cases();

    /* The valid params really are valid: the failures above are each one mutation's doing. */
    mfa_attention_params_t p;
    valid_params(&p);
    if (mfa_attention_fwd(ctx, &p) != MFA_SUCCESS || mfa_attention_bwd(ctx, &p) != MFA_SUCCESS) {
        printf("FAIL: the unmutated params were rejected: %s\n", mfa_last_error_message(ctx));
        failures++;
    }
    mfa_destroy_context(ctx);
    mfa_destroy_context(other_ctx); /* frees other_buffer too */
    mfa_destroy_context(NULL);      /* accepted */
    mfa_destroy_buffer(NULL);
    printf("%s: %d failure%s\n", failures ? "FAILED" : "PASSED", failures, failures == 1 ? "" : "s");
    return failures ? 1 : 0;
}
