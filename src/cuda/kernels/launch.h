/* launch.h — the kernel families' host entry points, called by backend.c (plain C).
 *
 * Each returns the CUDA status of its launches (cudaSuccess when nothing needed launching).
 * The args are validated (core) and complete (backend.c); the workspace pointers in them are
 * sized by mfa_cuda_workspace_bytes' caller. */
#ifndef MFA_CUDA_LAUNCH_H
#define MFA_CUDA_LAUNCH_H

#include <cuda_runtime_api.h>
#include <stdbool.h>
#include <stddef.h>

#include "../args.h"

#ifdef __cplusplus
extern "C" {
#endif

/* generic.cu: exact fp32 on CUDA cores, every feature, any layout. */
size_t mfa_cuda_generic_smem(const mfa_cuda_args_t *a, int which); /* 0 fwd, 1 dq, 2 dkdv */
cudaError_t mfa_cuda_generic_fwd(const mfa_cuda_args_t *a, cudaStream_t stream);
cudaError_t mfa_cuda_generic_bwd(const mfa_cuda_args_t *a, cudaStream_t stream, bool dq, bool dkdv);
/* delta = rowsum(dO * O) into a->delta. exact_order: sum in the generic dP's order (one thread
 * a row), so that dP - delta is exactly 0 where O == V; otherwise one coalesced warp a row. */
cudaError_t mfa_cuda_bwd_delta(const mfa_cuda_args_t *a, cudaStream_t stream, bool exact_order);

/* dispatch.cu: the tensor-core families. *taken is set to false (and nothing is launched) when
 * no instantiated kernel fits the problem; the caller then runs the generic path. */
cudaError_t mfa_cuda_fast_fwd(const mfa_cuda_args_t *a, cudaStream_t stream, int sm_major, bool *taken);
cudaError_t mfa_cuda_fast_bwd(const mfa_cuda_args_t *a, cudaStream_t stream, int sm_major, bool *taken);
/* Workspace bytes the fast forward wants in a->fwd_ws (0: none); without it, it runs a path that
 * needs none. */
size_t mfa_cuda_fast_fwd_workspace(const mfa_cuda_args_t *a, int sm_major);
/* The fast backward's fp32 dQ workspace pitch (floats per (token, head) row) for head_dim_qk. */
int64_t mfa_cuda_fast_dq_pitch(const mfa_cuda_args_t *a);

#ifdef __cplusplus
}
#endif
#endif
