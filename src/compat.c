/* compat.c — the seed's 19-argument mfa_attention_forward, mapped onto the params struct.
 *
 * Seed layout: every operand contiguous [batch, num_heads, seq, head_dim]; a transpose flag
 * stores that operand's (batch, head) slice as [head_dim, seq]. Our strides are indexed
 * [batch, seq, head, dim], so the mapping is only a choice of strides. The seed's own argument
 * names are used in messages for the checks done here. */
#include "backend.h"
#include "context.h"

static bool valid_precision(int precision) {
    return precision == MFA_PRECISION_FP16 || precision == MFA_PRECISION_BF16 || precision == MFA_PRECISION_FP32;
}

/* Tensor over `buffer` in the seed layout, [batch, heads, seq, dim] or per-slice transposed. */
static void seed_tensor(mfa_tensor_t *t, mfa_buffer_t buffer, int precision, int64_t heads, int64_t seq,
                        int64_t dim, bool transposed) {
    t->data = NULL;
    t->buffer = buffer;
    t->byte_offset = 0;
    t->dtype = precision;
    t->stride[0] = heads * seq * dim;
    t->stride[2] = seq * dim;
    t->stride[1] = transposed ? 1 : dim;
    t->stride[3] = transposed ? seq : 1;
}

mfa_error_t mfa_attention_forward(mfa_context_t context, mfa_buffer_t q, mfa_buffer_t k, mfa_buffer_t v,
                                  mfa_buffer_t out, uint32_t batch_size, uint32_t seq_len_q, uint32_t seq_len_kv,
                                  uint32_t num_heads, uint16_t head_dim, float softmax_scale, bool causal,
                                  int input_precision, int intermediate_precision, int output_precision,
                                  bool transpose_q, bool transpose_k, bool transpose_v, bool transpose_o) {
    mfa_context *ctx = mfa_context_from_handle(context);
    if (!context) return mfa_set_error(NULL, MFA_ERROR_NULL_POINTER, "mfa_attention_forward: context is NULL");
    if (!ctx) return mfa_set_error(NULL, MFA_ERROR_INVALID_ARGS, "mfa_attention_forward: context %p is not live", context);
    const char *null_name = !q ? "q" : !k ? "k" : !v ? "v" : !out ? "out" : NULL;
    if (null_name)
        return mfa_set_error(ctx, MFA_ERROR_NULL_POINTER, "mfa_attention_forward: buffer %s is NULL", null_name);
    const struct { const char *name; int value; } precisions[3] = {
        {"input_precision", input_precision},
        {"intermediate_precision", intermediate_precision},
        {"output_precision", output_precision},
    };
    for (int i = 0; i < 3; i++)
        if (!valid_precision(precisions[i].value))
            return mfa_set_error(ctx, MFA_ERROR_INVALID_ARGS,
                                 "mfa_attention_forward: %s=%d is not a precision (0=FP16, 1=BF16, 2=FP32)",
                                 precisions[i].name, precisions[i].value);
    const struct { const char *name; uint32_t value; } sizes[4] = {
        {"batch_size", batch_size}, {"seq_len_q", seq_len_q}, {"seq_len_kv", seq_len_kv}, {"num_heads", num_heads}};
    for (int i = 0; i < 4; i++)
        if (sizes[i].value == 0)
            return mfa_set_error(ctx, MFA_ERROR_INVALID_ARGS, "mfa_attention_forward: %s=0 must be at least 1",
                                 sizes[i].name);
    if (head_dim == 0)
        return mfa_set_error(ctx, MFA_ERROR_INVALID_ARGS, "mfa_attention_forward: head_dim=0 must be at least 1");

    mfa_attention_params_t p;
    mfa_attention_params_init(&p);
    p.batch = batch_size;
    p.seqlen_q = seq_len_q;
    p.seqlen_kv = seq_len_kv;
    p.heads_q = p.heads_kv = num_heads;
    p.head_dim_qk = p.head_dim_v = head_dim;
    p.softmax_scale = softmax_scale;
    p.mask = causal ? MFA_MASK_CAUSAL : MFA_MASK_NONE;
    p.mask_align = MFA_ALIGN_TOP_LEFT;
    seed_tensor(&p.q, q, input_precision, num_heads, seq_len_q, head_dim, transpose_q);
    seed_tensor(&p.k, k, input_precision, num_heads, seq_len_kv, head_dim, transpose_k);
    seed_tensor(&p.v, v, input_precision, num_heads, seq_len_kv, head_dim, transpose_v);
    seed_tensor(&p.o, out, output_precision, num_heads, seq_len_q, head_dim, transpose_o);
    return mfa_attention_fwd(context, &p);
}
