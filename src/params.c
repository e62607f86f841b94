/* params.c — the API edge: every check on a caller's params, then the mfa_problem_t backends run.
 *
 * Order of checks: handles, struct version, sizes, enums, scalars, masks, varlen offsets, then
 * each tensor's memory (pointer, alignment, extent overflow, buffer bounds). Each failure names
 * the argument and its value. Nothing is written before every check has passed. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "params.h"

#define CHECK(cond, code, ...)                                 \
    do {                                                       \
        if (!(cond)) return mfa_set_error(ctx, code, __VA_ARGS__); \
    } while (0)

void mfa_attention_params_init(mfa_attention_params_t *p) {
    if (!p) return;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->mask = MFA_MASK_NONE;
    p->mask_align = MFA_ALIGN_TOP_LEFT;
    p->window_left = p->window_right = -1;
}

mfa_tensor_t *mfa_tensor_contiguous(mfa_tensor_t *t, void *data, int32_t dtype, int64_t seq,
                                    int64_t heads, int64_t dim) {
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->data = data;
    t->dtype = dtype;
    t->stride[3] = 1;
    t->stride[2] = dim;
    t->stride[1] = heads * dim;
    t->stride[0] = seq * heads * dim;
    return t;
}

static bool is_float_dtype(int32_t d) {
    return d == MFA_DTYPE_F32 || d == MFA_DTYPE_F16 || d == MFA_DTYPE_BF16;
}

/* Lowest and highest element offsets a strided index space reaches, or false on overflow. */
static bool strided_reach(const int64_t *extent, const int64_t *stride, int n, int64_t *lo,
                          int64_t *hi) {
    int64_t a = 0, z = 0;
    for (int i = 0; i < n; i++) {
        if (extent[i] == 0) { /* an empty tensor reaches nothing */
            *lo = *hi = 0;
            return true;
        }
        int64_t step;
        if (__builtin_mul_overflow(stride[i], extent[i] - 1, &step)) return false;
        if (step < 0 ? __builtin_add_overflow(a, step, &a) : __builtin_add_overflow(z, step, &z))
            return false;
    }
    *lo = a;
    *hi = z;
    return true;
}

/* Checks one tensor's memory for `extent` elements [batch, seq, head, dim] and resolves a buffer
 * into a data pointer. `output`: zero strides over more than one element would overlap writes. */
static mfa_error_t check_tensor(mfa_context *ctx, const char *name, mfa_tensor_t *t,
                                const int64_t extent[4], bool output, bool allow_bool) {
    static const char *const axis[4] = {"batch", "seq", "head", "dim"};
    static const char *const mask_axis[4] = {"batch", "head", "q", "kv"};
    const char *const *ax = allow_bool ? mask_axis : axis;
    CHECK(is_float_dtype(t->dtype) || (allow_bool && t->dtype == MFA_DTYPE_BOOL), MFA_ERROR_INVALID_ARGS,
          "%s.dtype=%d is not a valid dtype (0=f16, 1=bf16, 2=f32%s)", name, t->dtype,
          allow_bool ? ", 3=bool" : "");
    CHECK(!(t->data && t->buffer), MFA_ERROR_INVALID_ARGS,
          "%s: both data (%p) and buffer (%p) are set; set one", name, t->data, t->buffer);
    CHECK(t->data || t->buffer, MFA_ERROR_NULL_POINTER, "%s.data is NULL (and no buffer is set)", name);
    const size_t esize = mfa_dtype_size(t->dtype);
    if (output)
        for (int i = 0; i < 4; i++)
            CHECK(t->stride[i] != 0 || extent[i] <= 1, MFA_ERROR_INVALID_ARGS,
                  "%s.stride[%d] (%s)=0 with %lld elements on that axis: output elements would overlap",
                  name, i, ax[i], (long long)extent[i]);
    int64_t lo, hi;
    CHECK(strided_reach(extent, t->stride, 4, &lo, &hi), MFA_ERROR_OUT_OF_BOUNDS,
          "%s: strides [%lld, %lld, %lld, %lld] over extent [%lld, %lld, %lld, %lld] overflow int64", name,
          (long long)t->stride[0], (long long)t->stride[1], (long long)t->stride[2], (long long)t->stride[3],
          (long long)extent[0], (long long)extent[1], (long long)extent[2], (long long)extent[3]);
    int64_t lo_byte, hi_byte; /* [lo_byte, hi_byte) relative to the tensor's start */
    CHECK(!__builtin_mul_overflow(lo, (int64_t)esize, &lo_byte) &&
              !__builtin_mul_overflow(hi, (int64_t)esize, &hi_byte) &&
              !__builtin_add_overflow(hi_byte, (int64_t)esize, &hi_byte),
          MFA_ERROR_OUT_OF_BOUNDS, "%s: byte extent of offsets %lld..%lld overflows int64", name,
          (long long)lo, (long long)hi);
    if (t->buffer) {
        mfa_buffer *b = mfa_buffer_from_handle(t->buffer);
        CHECK(b, MFA_ERROR_INVALID_ARGS, "%s.buffer=%p is not a live mfa buffer", name, t->buffer);
        CHECK(b->ctx == ctx, MFA_ERROR_WRONG_CONTEXT,
              "%s.buffer=%p was created by context %p, not by this context %p", name, t->buffer,
              (void *)b->ctx, (void *)ctx);
        CHECK(t->byte_offset <= (uint64_t)INT64_MAX && (int64_t)t->byte_offset + lo_byte >= 0 &&
                  (uint64_t)((int64_t)t->byte_offset + lo_byte) <= b->size &&
                  (int64_t)t->byte_offset <= INT64_MAX - hi_byte &&
                  (uint64_t)((int64_t)t->byte_offset + hi_byte) <= b->size,
              MFA_ERROR_OUT_OF_BOUNDS,
              "%s: reaches bytes [%lld, %lld) from byte_offset=%llu but its buffer holds %zu bytes", name,
              (long long)lo_byte, (long long)hi_byte, (unsigned long long)t->byte_offset, b->size);
        t->data = (char *)b->data + t->byte_offset;
        t->buffer = NULL;
        t->byte_offset = 0;
    } else {
        CHECK(t->byte_offset == 0, MFA_ERROR_INVALID_ARGS,
              "%s.byte_offset=%llu is only meaningful with a buffer", name, (unsigned long long)t->byte_offset);
        const uintptr_t at = (uintptr_t)t->data;
        CHECK(at % esize == 0, MFA_ERROR_INVALID_ARGS, "%s.data=%p is not aligned to its %zu-byte elements",
              name, t->data, esize);
        CHECK((lo_byte >= 0 || at >= (uintptr_t)(-lo_byte)) && at + (uintptr_t)hi_byte >= at,
              MFA_ERROR_OUT_OF_BOUNDS, "%s: offsets %lld..%lld from data=%p wrap the address space", name,
              (long long)lo, (long long)hi, t->data);
    }
    return MFA_SUCCESS;
}

static mfa_error_t check_sizes(mfa_context *ctx, const mfa_attention_params_t *p) {
    CHECK(p->batch >= 1, MFA_ERROR_INVALID_ARGS, "batch=%lld must be at least 1", (long long)p->batch);
    CHECK(p->seqlen_q >= 0, MFA_ERROR_INVALID_ARGS, "seqlen_q=%lld is negative", (long long)p->seqlen_q);
    CHECK(p->seqlen_kv >= 0, MFA_ERROR_INVALID_ARGS, "seqlen_kv=%lld is negative", (long long)p->seqlen_kv);
    CHECK(p->heads_q >= 1, MFA_ERROR_INVALID_ARGS, "heads_q=%lld must be at least 1", (long long)p->heads_q);
    CHECK(p->heads_kv >= 1, MFA_ERROR_INVALID_ARGS, "heads_kv=%lld must be at least 1", (long long)p->heads_kv);
    CHECK(p->heads_q % p->heads_kv == 0, MFA_ERROR_INVALID_ARGS,
          "heads_q=%lld is not a multiple of heads_kv=%lld", (long long)p->heads_q, (long long)p->heads_kv);
    CHECK(p->head_dim_qk >= 1, MFA_ERROR_INVALID_ARGS, "head_dim_qk=%lld must be at least 1", (long long)p->head_dim_qk);
    CHECK(p->head_dim_v >= 1, MFA_ERROR_INVALID_ARGS, "head_dim_v=%lld must be at least 1", (long long)p->head_dim_v);
    const int64_t max = ctx->backend->max_head_dim;
    CHECK(p->head_dim_qk <= max, MFA_ERROR_UNSUPPORTED, "head_dim_qk=%lld exceeds the %s backend's maximum %lld",
          (long long)p->head_dim_qk, ctx->backend->name, (long long)max);
    CHECK(p->head_dim_v <= max, MFA_ERROR_UNSUPPORTED, "head_dim_v=%lld exceeds the %s backend's maximum %lld",
          (long long)p->head_dim_v, ctx->backend->name, (long long)max);
    return MFA_SUCCESS;
}

static mfa_error_t check_scalars_and_masks(mfa_context *ctx, const mfa_attention_params_t *p) {
    CHECK(isfinite(p->softmax_scale), MFA_ERROR_INVALID_ARGS, "softmax_scale=%g is not finite", (double)p->softmax_scale);
    CHECK(isfinite(p->softcap) && p->softcap >= 0, MFA_ERROR_INVALID_ARGS,
          "softcap=%g must be 0 (off) or a positive finite value", (double)p->softcap);
    CHECK(p->mask == MFA_MASK_NONE || p->mask == MFA_MASK_CAUSAL || p->mask == MFA_MASK_WINDOW,
          MFA_ERROR_INVALID_ARGS, "mask=%d is not a mask kind (0=none, 1=causal, 2=window)", p->mask);
    CHECK(p->mask_align == MFA_ALIGN_TOP_LEFT || p->mask_align == MFA_ALIGN_BOTTOM_RIGHT, MFA_ERROR_INVALID_ARGS,
          "mask_align=%d is not an alignment (0=top-left, 1=bottom-right)", p->mask_align);
    CHECK(p->window_left >= -1, MFA_ERROR_INVALID_ARGS, "window_left=%lld is below -1 (-1 = unbounded)",
          (long long)p->window_left);
    CHECK(p->window_right >= -1, MFA_ERROR_INVALID_ARGS, "window_right=%lld is below -1 (-1 = unbounded)",
          (long long)p->window_right);
    return MFA_SUCCESS;
}

/* Varlen offsets: both or neither, batch + 1 entries from 0, non-decreasing, ending at the total. */
static mfa_error_t check_cu_seqlens(mfa_context *ctx, const char *name, const int32_t *cu, int64_t batch,
                                    int64_t total, const char *total_name, int64_t *max_len) {
    CHECK(cu[0] == 0, MFA_ERROR_INVALID_ARGS, "%s[0]=%d must be 0", name, cu[0]);
    int64_t longest = 0;
    for (int64_t b = 0; b < batch; b++) {
        CHECK(cu[b + 1] >= cu[b], MFA_ERROR_INVALID_ARGS, "%s is not non-decreasing: %s[%lld]=%d < %s[%lld]=%d",
              name, name, (long long)(b + 1), cu[b + 1], name, (long long)b, cu[b]);
        if (cu[b + 1] - cu[b] > longest) longest = cu[b + 1] - cu[b];
    }
    CHECK(cu[batch] == total, MFA_ERROR_INVALID_ARGS, "%s[batch=%lld]=%d does not match the packed total %s=%lld",
          name, (long long)batch, cu[batch], total_name, (long long)total);
    *max_len = longest;
    return MFA_SUCCESS;
}

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

static mfa_error_t check_block_mask(mfa_context *ctx, const mfa_problem_t *pr) {
    const mfa_attention_params_t *p = &pr->p;
    CHECK(p->block_q >= 1 && p->block_kv >= 1, MFA_ERROR_INVALID_ARGS,
          "block_mask is set but block_q=%lld, block_kv=%lld (both must be at least 1)", (long long)p->block_q,
          (long long)p->block_kv);
    const int64_t rows = ceil_div(pr->max_seqlen_q, p->block_q), cols = ceil_div(pr->max_seqlen_kv, p->block_kv);
    CHECK(p->block_mask_rows == rows && p->block_mask_cols == cols, MFA_ERROR_INVALID_ARGS,
          "block_mask shape [%lld, %lld] does not match [ceil(%lld/%lld), ceil(%lld/%lld)] = [%lld, %lld]",
          (long long)p->block_mask_rows, (long long)p->block_mask_cols, (long long)pr->max_seqlen_q,
          (long long)p->block_q, (long long)pr->max_seqlen_kv, (long long)p->block_kv, (long long)rows,
          (long long)cols);
    const int64_t extent[4] = {p->batch, p->heads_q, rows, cols};
    int64_t lo, hi;
    CHECK(strided_reach(extent, p->block_mask_stride, 4, &lo, &hi), MFA_ERROR_OUT_OF_BOUNDS,
          "block_mask_stride [%lld, %lld, %lld, %lld] overflows int64", (long long)p->block_mask_stride[0],
          (long long)p->block_mask_stride[1], (long long)p->block_mask_stride[2], (long long)p->block_mask_stride[3]);
    return MFA_SUCCESS;
}

mfa_error_t mfa_prepare(mfa_context_t handle, const mfa_attention_params_t *user, int32_t direction,
                        mfa_problem_t *pr) {
    mfa_context *ctx = mfa_context_from_handle(handle);
    if (!handle) return mfa_set_error(NULL, MFA_ERROR_NULL_POINTER, "context is NULL");
    if (!ctx) return mfa_set_error(NULL, MFA_ERROR_INVALID_ARGS, "context %p is not a live mfa context", handle);
    CHECK(user, MFA_ERROR_NULL_POINTER, "params is NULL");
    CHECK(direction == MFA_DIRECTION_FWD || direction == MFA_DIRECTION_BWD, MFA_ERROR_INVALID_ARGS,
          "direction=%d is not 0 (forward) or 1 (backward)", direction);
    CHECK(user->struct_size >= 2 * sizeof(uint32_t), MFA_ERROR_INVALID_ARGS,
          "params.struct_size=%u: initialise params with mfa_attention_params_init", user->struct_size);
    CHECK(user->struct_size <= sizeof pr->p, MFA_ERROR_UNSUPPORTED,
          "params.struct_size=%u is larger than this library's %zu: the header is newer than the library",
          user->struct_size, sizeof pr->p);

    /* Fields an older caller does not know keep their defaults. */
    memset(pr, 0, sizeof *pr);
    mfa_attention_params_init(&pr->p);
    memcpy(&pr->p, user, user->struct_size);
    mfa_attention_params_t *p = &pr->p;

    mfa_error_t err;
    if ((err = check_sizes(ctx, p)) || (err = check_scalars_and_masks(ctx, p))) return err;

    pr->varlen = p->cu_seqlens_q || p->cu_seqlens_kv;
    pr->max_seqlen_q = p->seqlen_q;
    pr->max_seqlen_kv = p->seqlen_kv;
    if (pr->varlen) {
        CHECK(p->cu_seqlens_q && p->cu_seqlens_kv, MFA_ERROR_NULL_POINTER,
              "varlen needs both cu_seqlens_q and cu_seqlens_kv, but %s is NULL",
              p->cu_seqlens_q ? "cu_seqlens_kv" : "cu_seqlens_q");
        CHECK(p->seqlen_q <= INT32_MAX && p->seqlen_kv <= INT32_MAX, MFA_ERROR_INVALID_ARGS,
              "varlen packed totals seqlen_q=%lld, seqlen_kv=%lld exceed int32 offsets",
              (long long)p->seqlen_q, (long long)p->seqlen_kv);
        if ((err = check_cu_seqlens(ctx, "cu_seqlens_q", p->cu_seqlens_q, p->batch, p->seqlen_q, "seqlen_q",
                                    &pr->max_seqlen_q)) ||
            (err = check_cu_seqlens(ctx, "cu_seqlens_kv", p->cu_seqlens_kv, p->batch, p->seqlen_kv, "seqlen_kv",
                                    &pr->max_seqlen_kv)))
            return err;
    }
    if (p->block_mask && (err = check_block_mask(ctx, pr))) return err;

    /* Tensor extents [batch, seq, head, dim]; varlen indexes packed tokens with batch 1. */
    const int64_t tb = pr->varlen ? 1 : p->batch;
    const int64_t q_ext[4] = {tb, p->seqlen_q, p->heads_q, p->head_dim_qk};
    const int64_t k_ext[4] = {tb, p->seqlen_kv, p->heads_kv, p->head_dim_qk};
    const int64_t v_ext[4] = {tb, p->seqlen_kv, p->heads_kv, p->head_dim_v};
    const int64_t o_ext[4] = {tb, p->seqlen_q, p->heads_q, p->head_dim_v};
    const bool bwd = direction == MFA_DIRECTION_BWD;
    if ((err = check_tensor(ctx, "q", &p->q, q_ext, false, false)) ||
        (err = check_tensor(ctx, "k", &p->k, k_ext, false, false)) ||
        (err = check_tensor(ctx, "v", &p->v, v_ext, false, false)) ||
        (err = check_tensor(ctx, "o", &p->o, o_ext, !bwd, false)))
        return err;
    if (p->attn_mask.data || p->attn_mask.buffer) {
        const int64_t m_ext[4] = {p->batch, p->heads_q, pr->max_seqlen_q, pr->max_seqlen_kv};
        if ((err = check_tensor(ctx, "attn_mask", &p->attn_mask, m_ext, false, true))) return err;
    }
    CHECK(((uintptr_t)p->lse) % sizeof(float) == 0, MFA_ERROR_INVALID_ARGS, "lse=%p is not 4-byte aligned",
          (void *)p->lse);
    if (bwd) {
        CHECK(p->lse, MFA_ERROR_NULL_POINTER, "lse is NULL: the backward needs the forward's log-sum-exp");
        if ((err = check_tensor(ctx, "dout", &p->dout, o_ext, false, false)) ||
            (err = check_tensor(ctx, "dq", &p->dq, q_ext, true, false)) ||
            (err = check_tensor(ctx, "dk", &p->dk, k_ext, true, false)) ||
            (err = check_tensor(ctx, "dv", &p->dv, v_ext, true, false)))
            return err;
    }

    pr->scale = p->softmax_scale > 0 ? p->softmax_scale : (float)(1.0 / sqrt((double)p->head_dim_qk));
    pr->group = p->heads_q / p->heads_kv;
    if (ctx->backend->supports) return ctx->backend->supports(ctx, pr, direction);
    return MFA_SUCCESS;
}

double mfa_problem_flops(const mfa_problem_t *pr) {
    const mfa_attention_params_t *p = &pr->p;
    double pairs = 0;
    for (int64_t b = 0; b < p->batch; b++) {
        mfa_seq_t s = mfa_problem_seq(pr, b);
        for (int64_t i = 0; i < s.sq; i++) {
            int64_t lo, hi;
            mfa_key_range(pr, i, s.sq, s.sk, &lo, &hi);
            if (hi > lo) pairs += (double)(hi - lo);
        }
        if (!pr->varlen) { /* every sequence is the same: count one */
            pairs *= (double)p->batch;
            break;
        }
    }
    return 2.0 * pairs * (double)p->heads_q * (double)(p->head_dim_qk + p->head_dim_v);
}
