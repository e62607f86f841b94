/* layout.c — what the C compiler says about mfa.h: every struct size and field offset, by name.
 * Compiled into the Zig tests, which compare it with @sizeOf/@offsetOf of the translated header. */
#include <stddef.h>

#include "mfa.h"

typedef struct mfa_zig_layout_row {
    const char *name;
    long long value;
} mfa_zig_layout_row;

#define SIZE(T) {"sizeof " #T, (long long)sizeof(T)}
#define OFF(T, f) {#T "." #f, (long long)offsetof(T, f)}

const mfa_zig_layout_row mfa_zig_layout[] = {
    SIZE(mfa_context_options_t),
    OFF(mfa_context_options_t, struct_size), OFF(mfa_context_options_t, backend),
    OFF(mfa_context_options_t, device), OFF(mfa_context_options_t, num_threads),
    SIZE(mfa_tensor_t),
    OFF(mfa_tensor_t, data), OFF(mfa_tensor_t, buffer), OFF(mfa_tensor_t, byte_offset),
    OFF(mfa_tensor_t, dtype), OFF(mfa_tensor_t, reserved_), OFF(mfa_tensor_t, stride),
    SIZE(mfa_attention_params_t),
    OFF(mfa_attention_params_t, struct_size), OFF(mfa_attention_params_t, reserved_),
    OFF(mfa_attention_params_t, batch), OFF(mfa_attention_params_t, seqlen_q),
    OFF(mfa_attention_params_t, seqlen_kv), OFF(mfa_attention_params_t, heads_q),
    OFF(mfa_attention_params_t, heads_kv), OFF(mfa_attention_params_t, head_dim_qk),
    OFF(mfa_attention_params_t, head_dim_v), OFF(mfa_attention_params_t, q),
    OFF(mfa_attention_params_t, k), OFF(mfa_attention_params_t, v), OFF(mfa_attention_params_t, o),
    OFF(mfa_attention_params_t, lse), OFF(mfa_attention_params_t, softmax_scale),
    OFF(mfa_attention_params_t, softcap), OFF(mfa_attention_params_t, mask),
    OFF(mfa_attention_params_t, mask_align), OFF(mfa_attention_params_t, window_left),
    OFF(mfa_attention_params_t, window_right), OFF(mfa_attention_params_t, block_mask),
    OFF(mfa_attention_params_t, block_q), OFF(mfa_attention_params_t, block_kv),
    OFF(mfa_attention_params_t, block_mask_rows), OFF(mfa_attention_params_t, block_mask_cols),
    OFF(mfa_attention_params_t, block_mask_stride), OFF(mfa_attention_params_t, attn_mask),
    OFF(mfa_attention_params_t, cu_seqlens_q), OFF(mfa_attention_params_t, cu_seqlens_kv),
    OFF(mfa_attention_params_t, dout), OFF(mfa_attention_params_t, dq),
    OFF(mfa_attention_params_t, dk), OFF(mfa_attention_params_t, dv),
    OFF(mfa_attention_params_t, deterministic), OFF(mfa_attention_params_t, allow_tf32),
};
const int mfa_zig_layout_count = (int)(sizeof mfa_zig_layout / sizeof mfa_zig_layout[0]);
