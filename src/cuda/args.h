/* args.h — what every CUDA kernel of libmfa receives: one flat, validated problem.
 *
 * The host glue (backend.c) fills one mfa_cuda_args_t from the core's mfa_problem_t (already
 * validated: backends never validate) and passes it by value to every kernel, so kernels read
 * sizes, strides and flags from constant memory. Plain C so both backend.c and the .cu files
 * include it. Strides are in elements, index order [batch, seq, head, dim] (the dense mask:
 * [batch, head, q, kv]), exactly as in mfa.h. */
#ifndef MFA_CUDA_ARGS_H
#define MFA_CUDA_ARGS_H

#include <stdint.h>

typedef struct mfa_cuda_tensor {
    void *data; /* device pointer; NULL = absent (only the dense mask may be absent) */
    int64_t stride[4];
    int32_t dtype; /* MFA_DTYPE_* */
    int32_t reserved_;
} mfa_cuda_tensor_t;

typedef struct mfa_cuda_args {
    mfa_cuda_tensor_t q, k, v, o;
    mfa_cuda_tensor_t dout, dq, dk, dv; /* backward only */
    mfa_cuda_tensor_t mask;             /* dense attn_mask; data NULL = none */
    float *lse;                         /* [batch, heads_q, seqlen_q] or varlen [heads_q, total_q]; NULL = not wanted */

    const uint8_t *block_mask; /* device; NULL = none */
    int64_t block_stride[4];
    int64_t block_q, block_kv;

    const int32_t *cu_q, *cu_k; /* device copies of cu_seqlens (workspace); NULL unless varlen */

    float *delta;    /* backward workspace: rowsum(dO * O), indexed like the LSE */
    float *dq_accum; /* backward workspace: fp32 dQ, [tokens_q][heads_q][dq_pitch] */
    int64_t dq_pitch;
    char *fwd_ws; /* forward workspace: the fp32 Hopper forward's split operands (fwd32_sm90.cuh) */

    int64_t batch, heads_q, heads_kv, group; /* group = heads_q / heads_kv (GQA) */
    int64_t seqlen_q, seqlen_kv;             /* packed totals when varlen */
    int64_t max_sq, max_sk;                  /* longest sequence */
    int64_t head_dim_qk, head_dim_v;

    float scale;      /* softmax scale */
    float scale_log2; /* scale * log2(e): scores enter exp2 in base-2 units */
    float softcap;    /* > 0: scores become softcap * tanh(scores / softcap) */
    int32_t mask_kind, mask_align;
    int64_t window_left, window_right;
    int32_t varlen;
    int32_t deterministic;
    int32_t allow_tf32; /* fp32 inputs: plain TF32 products instead of the 3xTF32 split */
    int32_t sm_count;   /* the device's multiprocessors (grid-order choices) */
} mfa_cuda_args_t;

#endif
