/* dispatch.cu — which tensor-core kernel (if any) runs a problem.
 *
 * fp32 q, k, v (unit-stride head dims, multiples of 4, 16-byte rows, no block-sparse map) take the
 * TF32 forward (fwd32.cuh: 3xTF32, or plain TF32 with allow_tf32), with any output dtype; on
 * Hopper at head dims up to 128, the fp16-split wgmma forward (fwd32_sm90.cuh) instead.
 * The 16-bit families need: q, k, v (and dout) of one 16-bit type, unit stride along the head dim,
 * 16-byte aligned rows (pointers and strides multiples of 8 elements), head dims multiples of 8,
 * sequence positions in int32, and 16-bit outputs (an fp32 output asks for fp32 accuracy: P is
 * rounded to 16 bits on the tensor cores, so those run on the exact generic kernels). The head dim is padded up to the nearest compiled instantiation
 * (mfa_cuda_instances.h, written by CMake from MFA_CUDA_HEAD_DIMS / MFA_CUDA_DTYPES). Anything
 * else, and for now block-sparse maps (forward) or softcap / dense masks / block maps (backward),
 * runs on the generic kernels. */
#include <stdlib.h>

#include <type_traits>

#include "bwd.cuh"
#include "bwd_sm90.cuh"
#include "fwd.cuh"
#include "fwd32.cuh"
#include "fwd32_sm90.cuh"
#include "fwd_sm90.cuh"
#include "launch.h"
#include "mfa_cuda_instances.h"

#define MFA_DECLARE_FWD(T, D) extern template cudaError_t mfa_fwd::launch<T, D>(const Args &, cudaStream_t);
#define MFA_DECLARE_BWD(T, D) extern template cudaError_t mfa_bwd::launch<T, D>(const Args &, cudaStream_t);
#define MFA_DECLARE_FWD90(T, D) extern template cudaError_t mfa_fwd90::launch<T, D>(const Args &, cudaStream_t);
MFA_CUDA_FWD_INSTANCES(MFA_DECLARE_FWD)
MFA_CUDA_FWD90_INSTANCES(MFA_DECLARE_FWD90)
#define MFA_DECLARE_BWD90(T, D) extern template cudaError_t mfa_bwd90::launch<T, D>(const Args &, cudaStream_t);
MFA_CUDA_BWD90_INSTANCES(MFA_DECLARE_BWD90)
MFA_CUDA_BWD_INSTANCES(MFA_DECLARE_BWD)
#define MFA_DECLARE_FWD32(D) extern template cudaError_t mfa_fwd32::launch<D>(const Args &, cudaStream_t);
MFA_CUDA_FWD32_INSTANCES(MFA_DECLARE_FWD32)
#define MFA_DECLARE_FWD32_90(D)                                                         \
    extern template cudaError_t mfa_fwd32_90::launch<D>(const Args &, cudaStream_t); \
    extern template size_t mfa_fwd32_90::workspace_bytes<D>(const Args &);
MFA_CUDA_FWD32_90_INSTANCES(MFA_DECLARE_FWD32_90)

/* The largest compiled backward head dim (the delta pass runs only when one fits). */
constexpr int max_bwd_dim() {
    int m = 0;
#define MFA_UPDATE_MAX(T, D) m = (D) > m ? (D) : m;
    MFA_CUDA_BWD_INSTANCES(MFA_UPDATE_MAX)
#undef MFA_UPDATE_MAX
    return m;
}
#define MFA_CUDA_MAX_BWD_DIM max_bwd_dim()

namespace {

bool positions_ok(const Args &a) {
    const int64_t big = INT32_MAX / 2;
    return a.seqlen_q <= big && a.seqlen_kv <= big && a.batch * a.seqlen_q <= big * 64;
}

/* q, k, v each fp32, fp16 or bf16 with rows of whole 16-byte chunks, head dims multiples of 4: what
 * the fp32-accurate Hopper forward (fwd32_sm90.cuh) reads. */
bool split_ok(const Args &a) {
    for (const mfa_cuda_tensor_t *t : {&a.q, &a.k, &a.v})
        if ((t->dtype != MFA_DTYPE_F32 && t->dtype != MFA_DTYPE_F16 && t->dtype != MFA_DTYPE_BF16) ||
            !rows16_ok(*t, t->dtype, a.varlen))
            return false;
    return a.head_dim_qk % 4 == 0 && a.head_dim_v % 4 == 0 && !a.block_mask && positions_ok(a);
}

/* fp32 q, k, v for the TF32 forward (fwd32.cuh): split_ok's rows, all three fp32; any output. */
bool fwd32_ok(const Args &a) {
    return a.q.dtype == MFA_DTYPE_F32 && a.k.dtype == MFA_DTYPE_F32 && a.v.dtype == MFA_DTYPE_F32 && split_ok(a);
}

/* The 16-bit input type the fast kernels can take, or -1. */
int32_t fast_dtype(const Args &a, bool bwd) {
    const int32_t dt = a.q.dtype;
    if (dt != MFA_DTYPE_F16 && dt != MFA_DTYPE_BF16) return -1;
    if (!rows16_ok(a.q, dt, a.varlen) || !rows16_ok(a.k, dt, a.varlen) || !rows16_ok(a.v, dt, a.varlen)) return -1;
    if (bwd && !rows16_ok(a.dout, dt, a.varlen)) return -1;
    /* An fp32 output asks for an fp32-accurate result; the tensor-core path rounds P to 16 bits. */
    if (bwd ? (a.dq.dtype == MFA_DTYPE_F32 || a.dk.dtype == MFA_DTYPE_F32 || a.dv.dtype == MFA_DTYPE_F32)
            : a.o.dtype == MFA_DTYPE_F32)
        return -1;
    if (a.head_dim_qk % 8 != 0 || a.head_dim_v % 8 != 0 || !positions_ok(a)) return -1;
    return dt;
}

/* The Hopper forward runs on compute capability 9.0 where it was built, unless the environment
 * says MFA_CUDA_WGMMA=0 (to compare the two forwards on one machine). */
bool wgmma_wanted(int sm_major) {
    static const bool off = [] {
        const char *e = getenv("MFA_CUDA_WGMMA");
        return e && e[0] == '0';
    }();
    return sm_major == 9 && !off;
}

template <typename T> cudaError_t fwd_for(int64_t need, const Args &a, cudaStream_t st, int sm_major, bool *taken) {
    /* the instantiated head dim: the smallest compiled one that holds the problem's */
    int pick = 0;
#define MFA_PICK_FWD(TT, D) \
    if (std::is_same<T, TT>::value && need <= D && pick == 0) pick = D;
    MFA_CUDA_FWD_INSTANCES(MFA_PICK_FWD)
#undef MFA_PICK_FWD
    if (wgmma_wanted(sm_major)) {
#define MFA_TRY_FWD90(TT, D)                                                  \
    if (std::is_same<T, TT>::value && pick == D) {                            \
        *taken = true;                                                        \
        return mfa_fwd90::launch<TT, D>(a, st);                               \
    }
        MFA_CUDA_FWD90_INSTANCES(MFA_TRY_FWD90)
#undef MFA_TRY_FWD90
    }
#define MFA_TRY_FWD(TT, D)                                                    \
    if (std::is_same<T, TT>::value && pick == D) {                            \
        *taken = true;                                                        \
        return mfa_fwd::launch<TT, D>(a, st);                                 \
    }
    MFA_CUDA_FWD_INSTANCES(MFA_TRY_FWD)
#undef MFA_TRY_FWD
    return cudaSuccess;
}

/* The workspace the fp32-accurate forward may take: MFA_CUDA_SPLIT_WS_KB KiB (default 1 GiB; the
 * tests set it small to run the chunked path on small problems). */
size_t split_ws_cap() {
    static const size_t cap = [] {
        const char *e = getenv("MFA_CUDA_SPLIT_WS_KB");
        const long kb = e ? atol(e) : 0;
        return (size_t)(kb > 0 ? kb : 1L << 20) << 10;
    }();
    return cap;
}

size_t split_bytes(int d, const Args &a) {
#define MFA_BYTES_FWD32_90(D) \
    if (d == D) return mfa_fwd32_90::workspace_bytes<D>(a);
    MFA_CUDA_FWD32_90_INSTANCES(MFA_BYTES_FWD32_90)
#undef MFA_BYTES_FWD32_90
    (void)d, (void)a;
    return 0;
}

/* Batch entries the fp32-accurate forward takes in one go: all, where their workspace (about the
 * size of k and v in fp32: their fp16 hi/lo halves) fits the cap; else as many as fit, and at
 * least one. 0 for a varlen problem over the cap (its sequences share one packed token axis). */
int64_t split_chunk(int d, const Args &a) {
    const size_t cap = split_ws_cap();
    if (split_bytes(d, a) <= cap) return a.batch;
    if (a.varlen) return 0;
    Args one = a;
    one.batch = 1;
    const int64_t fit = (int64_t)(cap / split_bytes(d, one));
    return fit < 1 ? 1 : (fit > a.batch ? a.batch : fit);
}

/* The fp32-accurate Hopper forward (fwd32_sm90.cuh): its head dim for this problem, 0 where it
 * does not run. It takes fp32 inputs and the 16-bit mixes the 16-bit kernels leave (mixed types,
 * fp32 outputs). Where it does not run, problems go where they went before (fwd32.cuh for fp32,
 * the generic kernels for the rest). It also takes allow_tf32 problems: it is faster than one TF32
 * product on the H100 (151.4 vs 119.6 TFLOP/s at (4, 16, 4096, 128)), and allow_tf32 permits an
 * inexact result, it does not ask for one. */
int fwd32_90_dim(const Args &a, int sm_major) {
    if (!split_ok(a) || fast_dtype(a, false) >= 0 || !wgmma_wanted(sm_major)) return 0;
    const int64_t need = a.head_dim_qk > a.head_dim_v ? a.head_dim_qk : a.head_dim_v;
#define MFA_PICK_FWD32_90(D) \
    if (need <= D) return split_chunk(D, a) > 0 ? D : 0;
    MFA_CUDA_FWD32_90_INSTANCES(MFA_PICK_FWD32_90)
#undef MFA_PICK_FWD32_90
    return 0;
}

size_t elem_bytes(int32_t dtype) { return dtype == MFA_DTYPE_F32 ? 4 : dtype == MFA_DTYPE_BOOL ? 1 : 2; }
void skip_batches(mfa_cuda_tensor_t &t, int64_t n) {
    if (t.data) t.data = (char *)t.data + n * t.stride[0] * (int64_t)elem_bytes(t.dtype);
}

/* Runs the problem in chunks of split_chunk() batch entries (one split and one attention launch
 * each, through the same workspace on the same stream). */
cudaError_t fwd32_90_run(int d, const Args &a, cudaStream_t st, bool *taken) {
    *taken = true;
    const int64_t chunk = split_chunk(d, a);
    for (int64_t b0 = 0; b0 < a.batch; b0 += chunk) {
        Args c = a;
        if (chunk < a.batch) {
            c.batch = chunk < a.batch - b0 ? chunk : a.batch - b0;
            skip_batches(c.q, b0), skip_batches(c.k, b0), skip_batches(c.v, b0), skip_batches(c.o, b0);
            skip_batches(c.mask, b0);
            if (c.lse) c.lse += b0 * a.heads_q * a.seqlen_q;
        }
        cudaError_t e = cudaSuccess;
#define MFA_TRY_FWD32_90(D) \
    if (d == D) e = mfa_fwd32_90::launch<D>(c, st);
        MFA_CUDA_FWD32_90_INSTANCES(MFA_TRY_FWD32_90)
#undef MFA_TRY_FWD32_90
        if (e != cudaSuccess) return e;
    }
    return cudaSuccess;
}

cudaError_t fwd32_for(int64_t need, const Args &a, cudaStream_t st, bool *taken) {
#define MFA_TRY_FWD32(D)                                                      \
    if (need <= D) {                                                          \
        *taken = true;                                                        \
        return mfa_fwd32::launch<D>(a, st);                                   \
    }
    MFA_CUDA_FWD32_INSTANCES(MFA_TRY_FWD32)
#undef MFA_TRY_FWD32
    (void)need, (void)a, (void)st, (void)taken;
    return cudaSuccess;
}

template <typename T> cudaError_t bwd_for(int64_t need, const Args &a, cudaStream_t st, int sm_major, bool *taken) {
    int pick = 0;
#define MFA_PICK_BWD(TT, D) \
    if (std::is_same<T, TT>::value && need <= D && pick == 0) pick = D;
    MFA_CUDA_BWD_INSTANCES(MFA_PICK_BWD)
#undef MFA_PICK_BWD
    if (wgmma_wanted(sm_major) && mfa_bwd90::takes(a)) {
#define MFA_TRY_BWD90(TT, D)                                                  \
    if (std::is_same<T, TT>::value && pick == D) {                            \
        *taken = true;                                                        \
        return mfa_bwd90::launch<TT, D>(a, st);                               \
    }
        MFA_CUDA_BWD90_INSTANCES(MFA_TRY_BWD90)
#undef MFA_TRY_BWD90
    }
#define MFA_TRY_BWD(TT, D)                                                    \
    if (std::is_same<T, TT>::value && pick == D) {                            \
        *taken = true;                                                        \
        return mfa_bwd::launch<TT, D>(a, st);                                 \
    }
    MFA_CUDA_BWD_INSTANCES(MFA_TRY_BWD)
#undef MFA_TRY_BWD
    return cudaSuccess;
}

} // namespace

extern "C" cudaError_t mfa_cuda_fast_fwd(const Args *a, cudaStream_t st, int sm_major, bool *taken) {
    *taken = false;
    const int64_t need = a->head_dim_qk > a->head_dim_v ? a->head_dim_qk : a->head_dim_v;
    if (a->fwd_ws) {
        const int d = fwd32_90_dim(*a, sm_major);
        if (d) return fwd32_90_run(d, *a, st, taken);
    }
    if (a->q.dtype == MFA_DTYPE_F32) return fwd32_ok(*a) ? fwd32_for(need, *a, st, taken) : cudaSuccess;
    const int32_t dt = fast_dtype(*a, false);
    if (dt < 0 || a->block_mask) return cudaSuccess;
    return dt == MFA_DTYPE_BF16 ? fwd_for<__nv_bfloat16>(need, *a, st, sm_major, taken)
                                 : fwd_for<__half>(need, *a, st, sm_major, taken);
}

extern "C" cudaError_t mfa_cuda_fast_bwd(const Args *a, cudaStream_t st, int sm_major, bool *taken) {
    *taken = false;
    const int32_t dt = fast_dtype(*a, true);
    if (dt < 0 || a->block_mask || a->mask.data || a->softcap > 0.0f) return cudaSuccess;
    const int64_t need = a->head_dim_qk > a->head_dim_v ? a->head_dim_qk : a->head_dim_v;
    if (need > MFA_CUDA_MAX_BWD_DIM) return cudaSuccess;
    cudaError_t e = dt == MFA_DTYPE_BF16 ? bwd_for<__nv_bfloat16>(need, *a, st, sm_major, taken)
                                         : bwd_for<__half>(need, *a, st, sm_major, taken);
    /* deterministic: the fast kernel skipped dQ's atomics; the generic dQ pass (no atomics) runs */
    if (e == cudaSuccess && *taken && a->deterministic) e = mfa_cuda_generic_bwd(a, st, true, false);
    return e;
}

extern "C" size_t mfa_cuda_fast_fwd_workspace(const Args *a, int sm_major) {
    const int d = fwd32_90_dim(*a, sm_major);
    if (!d) return 0;
    Args c = *a;
    c.batch = split_chunk(d, *a);
    return split_bytes(d, c);
}

extern "C" int64_t mfa_cuda_fast_dq_pitch(const Args *a) { return a->head_dim_qk; }
