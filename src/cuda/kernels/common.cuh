/* common.cuh — device helpers shared by every kernel family: element loads/stores for the four
 * dtypes, the sequence of a batch entry (varlen or not), and the mask semantics of mfa.h.
 *
 * The mask functions are the device twins of src/problem.h (mfa_key_range, mfa_block_keeps,
 * mfa_dense_bias) and must stay identical in meaning: the float64 reference uses those. */
#ifndef MFA_CUDA_COMMON_CUH
#define MFA_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "../args.h"
#include "mfa.h"

#define MFA_LOG2E 1.4426950408889634f /* log2(e): e^x = 2^(x * LOG2E) */
#define MFA_LN2 0.6931471805599453f   /* ln(2) */

typedef mfa_cuda_args_t Args;

/* ---- Elements ------------------------------------------------------------------------------ */
__device__ __forceinline__ float mfa_ld(const void *base, int32_t dtype, int64_t at) {
    switch (dtype) {
    case MFA_DTYPE_F32: return ((const float *)base)[at];
    case MFA_DTYPE_F16: return __half2float(((const __half *)base)[at]);
    case MFA_DTYPE_BF16: return __bfloat162float(((const __nv_bfloat16 *)base)[at]);
    default: return ((const uint8_t *)base)[at] ? 1.0f : 0.0f;
    }
}

__device__ __forceinline__ void mfa_st(void *base, int32_t dtype, int64_t at, float x) {
    switch (dtype) {
    case MFA_DTYPE_F32: ((float *)base)[at] = x; break;
    case MFA_DTYPE_F16: ((__half *)base)[at] = __float2half_rn(x); break;
    case MFA_DTYPE_BF16: ((__nv_bfloat16 *)base)[at] = __float2bfloat16_rn(x); break;
    default: ((uint8_t *)base)[at] = x != 0.0f; break;
    }
}

/* Element offset of [b, token, head, d]. */
__device__ __forceinline__ int64_t mfa_at(const mfa_cuda_tensor_t &t, int64_t b, int64_t token, int64_t head,
                                          int64_t d) {
    return b * t.stride[0] + token * t.stride[1] + head * t.stride[2] + d * t.stride[3];
}

/* The MFA_DTYPE_* of a 16-bit element type. */
template <typename T> __host__ __device__ constexpr int32_t mfa_dtype_of();
template <> __host__ __device__ constexpr int32_t mfa_dtype_of<__half>() { return MFA_DTYPE_F16; }
template <> __host__ __device__ constexpr int32_t mfa_dtype_of<__nv_bfloat16>() { return MFA_DTYPE_BF16; }

/* Whether the vector (16-byte) paths can take t as `dtype`: unit stride along the head dim,
 * 16-byte aligned base and rows (batch stride ignored when varlen: packed tokens). Host side
 * (dispatch, launchers) and device side (output stores) alike. */
__host__ __device__ inline bool rows16_ok(const mfa_cuda_tensor_t &t, int32_t dtype, bool varlen) {
    const int per16 = dtype == MFA_DTYPE_F32 ? 4 : 8; /* elements in 16 bytes */
    if (t.dtype != dtype || t.stride[3] != 1 || (uintptr_t)t.data % 16 != 0) return false;
    for (int i = varlen ? 1 : 0; i < 3; i++)
        if (t.stride[i] % per16 != 0) return false;
    return true;
}

/* ---- Sequences ----------------------------------------------------------------------------- */
struct Seq {
    int64_t q0, sq; /* first packed query token, length */
    int64_t k0, sk;
    int64_t tb; /* batch index for tensor strides: 0 when varlen (packed tokens) */
};

__device__ __forceinline__ Seq mfa_seq(const Args &a, int64_t b) {
    Seq s;
    if (a.varlen) {
        s.q0 = a.cu_q[b], s.sq = a.cu_q[b + 1] - s.q0;
        s.k0 = a.cu_k[b], s.sk = a.cu_k[b + 1] - s.k0;
        s.tb = 0;
    } else {
        s.q0 = s.k0 = 0, s.sq = a.seqlen_q, s.sk = a.seqlen_kv, s.tb = b;
    }
    return s;
}

/* Which (pair, tile) block `lin` of a 1-D grid of n_tiles x n_pairs blocks runs (a pair is a
 * (batch, head)), `resident` blocks running at a time. Two orders:
 *  - tiles adjacent: the blocks running together are the tiles of a few heads, which share their
 *    head's inputs (and, backward, its dQ reductions) in L2;
 *  - pairs fastest: each head's tile t runs in wave t. With many heads every wave then re-reads
 *    every head's inputs from DRAM, but with few heads (n_pairs <= resident / 4) the tiles of a
 *    head still run together, and this order keeps the heaviest tiles (under causal / window
 *    masks) of all heads first, which shortens the tail; backward, it also keeps the blocks of
 *    one head from adding into the same dQ rows at the same moment (the Hopper backward at d256
 *    instead starts each block's walk at a different query tile, BwdWalk::rotate, and keeps tiles
 *    adjacent without a mask: its S = 4k non-causal ran 0.65x FA2 with pairs fastest).
 * `adjacent_if_even`: take the first order whenever the tiles cost the same (no mask).
 * `tiles_together`: pairs fastest only while at least this many tiles of a head run at a time
 * (resident / n_pairs); below it each head's dQ rows are added by too few blocks between their
 * trips to DRAM (the Hopper backward with 32 heads: 4 tiles a head ran d256 S = 4k causal at
 * 0.84x FA2 with 32 % DRAM throughput; with 8 needed, i.e. tiles adjacent, 1.14x, and d64
 * S = 16k 6 % faster).
 * Measured on the H100 (docs/cuda.md): forward d64 S = 1k 219 -> 258 TFLOP/s with tiles adjacent;
 * forward d128 S = 16k causal 353 with pairs fastest vs 329; backward d256 S = 1k 2.9 -> 2.1 ms with
 * tiles adjacent, d128 S = 16k 2.7 % slower.
 * `lin`: the work item's place in that order (blockIdx.x, or a persistent block's item). */
__device__ __forceinline__ void mfa_grid_order(const Args &a, int64_t lin, int64_t n_tiles, int64_t n_pairs,
                                               int blocks_per_sm, bool adjacent_if_even, int64_t &pair, int64_t &tile,
                                               int tiles_together = 4) {
    const bool adjacent = (adjacent_if_even && a.mask_kind == MFA_MASK_NONE) ||
                          tiles_together * n_pairs > (int64_t)a.sm_count * blocks_per_sm;
    /* 32-bit divisions (a 64-bit one is a call of ~70 instructions, on every work item's path):
     * the launches keep n_tiles * n_pairs below 2^31 (a grid's limit) */
    const uint32_t l = (uint32_t)lin, nt = (uint32_t)n_tiles, np = (uint32_t)n_pairs;
    if (adjacent)
        pair = l / nt, tile = l % nt;
    else
        pair = l % np, tile = l / np;
}

/* The query tile of forward work item `lin` (a block's blockIdx.x where each block takes one):
 * last tiles (most keys under causal) first. */
struct FwdBlock {
    int64_t b, h, i0;
};
__device__ __forceinline__ FwdBlock mfa_fwd_item(const Args &a, int br, int blocks_per_sm, int64_t lin) {
    const int64_t n_tiles = (a.max_sq + br - 1) / br;
    int64_t pair, tile;
    mfa_grid_order(a, lin, n_tiles, a.batch * a.heads_q, blocks_per_sm, true, pair, tile);
    const uint32_t p = (uint32_t)pair, hq = (uint32_t)a.heads_q; /* below 2^31, as above */
    return {p / hq, p % hq, (n_tiles - 1 - tile) * br};
}
__device__ __forceinline__ FwdBlock mfa_fwd_block(const Args &a, int br, int blocks_per_sm) {
    return mfa_fwd_item(a, br, blocks_per_sm, blockIdx.x);
}

/* LSE (and delta) index of row i of head h of sequence b. */
__device__ __forceinline__ int64_t mfa_lse_at(const Args &a, int64_t b, const Seq &s, int64_t h, int64_t i) {
    return a.varlen ? h * a.seqlen_q + s.q0 + i : (b * a.heads_q + h) * a.seqlen_q + i;
}

/* Host: one launch of a tensor-core kernel over `blocks` blocks with `smem` bytes of dynamic
 * shared memory (above the 48 KiB default, so the limit is raised first); the args by value. */
static inline cudaError_t mfa_launch(const void *fn, int64_t blocks, int threads, size_t smem, const Args &a,
                                     cudaStream_t stream) {
    if (blocks == 0) return cudaSuccess;
    cudaError_t e = cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    void *args[] = {(void *)&a};
    return cudaLaunchKernel(fn, dim3((unsigned)blocks), dim3(threads), args, smem, stream);
}

/* ---- Masks (the device twins of problem.h) -------------------------------------------------- */
/* Keys j in [lo, hi) pass the causal / window mask for row i of an (sq, sk) sequence. */
/* The key on row i's causal diagonal (top-left: i; bottom-right: shifted by sk - sq). */
__device__ __forceinline__ int64_t mfa_key_diag(const Args &a, int64_t i, int64_t sq, int64_t sk) {
    return i + (a.mask_align == MFA_ALIGN_BOTTOM_RIGHT ? sk - sq : 0);
}

__device__ __forceinline__ void mfa_key_range(const Args &a, int64_t i, int64_t sq, int64_t sk, int64_t &lo,
                                              int64_t &hi) {
    const int64_t diag = mfa_key_diag(a, i, sq, sk);
    int64_t x = 0, z = sk;
    if (a.mask_kind == MFA_MASK_CAUSAL) {
        z = diag + 1;
    } else if (a.mask_kind == MFA_MASK_WINDOW) {
        if (a.window_left >= 0) x = diag - a.window_left;
        if (a.window_right >= 0) z = diag + a.window_right + 1;
    }
    lo = x < 0 ? 0 : (x > sk ? sk : x);
    hi = z < 0 ? 0 : (z > sk ? sk : z);
}

/* Union of the key ranges of rows [i0, i0 + n): the bounds are monotone in the row. */
__device__ __forceinline__ void mfa_tile_key_range(const Args &a, const Seq &s, int64_t i0, int64_t n, int64_t &lo,
                                                   int64_t &hi) {
    int64_t l2, h1;
    mfa_key_range(a, i0, s.sq, s.sk, lo, h1);
    mfa_key_range(a, i0 + n - 1, s.sq, s.sk, l2, hi);
}

/* The keys a forward block's rows [i0, i0 + n) meet: [lo, hi) in all, and the first row's end and
 * the last row's start; a key tile [j0, j0 + bc) needs a mask unless every row sees all of it
 * and it lies inside the sequence. */
struct FwdKeys {
    int64_t lo, hi, lo_last, hi_first;
    __device__ __forceinline__ FwdKeys(const Args &a, const Seq &s, int64_t i0, int n) {
        mfa_key_range(a, i0, s.sq, s.sk, lo, hi_first);
        mfa_key_range(a, i0 + n - 1, s.sq, s.sk, lo_last, hi);
    }
    __device__ __forceinline__ bool needs_mask(const Seq &s, int64_t j0, int bc) const {
        return j0 + bc > s.sk || lo_last > j0 || hi_first < j0 + bc;
    }
    /* the key tiles of `bc` keys the rows walk: [first, end), empty where they see no key */
    __device__ __forceinline__ void tiles(int bc, int64_t &first, int64_t &end) const {
        end = (hi + bc - 1) / bc;
        first = lo < hi ? lo / bc : end;
    }
};

__device__ __forceinline__ bool mfa_block_keeps(const Args &a, int64_t b, int64_t h, int64_t i, int64_t j) {
    if (!a.block_mask) return true;
    return a.block_mask[b * a.block_stride[0] + h * a.block_stride[1] + (i / a.block_q) * a.block_stride[2] +
                        (j / a.block_kv) * a.block_stride[3]] != 0;
}

/* Whether the block-sparse map keeps any pair of rows [i0, i0+n) x keys [j0, j0+nk): 0 none,
 * 1 every pair (no per-element test needed), 2 some. */
__device__ __forceinline__ int mfa_block_tile(const Args &a, int64_t b, int64_t h, int64_t i0, int64_t n,
                                              int64_t j0, int64_t nk) {
    if (!a.block_mask) return 1;
    bool any = false, all = true;
    for (int64_t rb = i0 / a.block_q; rb <= (i0 + n - 1) / a.block_q; rb++)
        for (int64_t cb = j0 / a.block_kv; cb <= (j0 + nk - 1) / a.block_kv; cb++) {
            const bool k = mfa_block_keeps(a, b, h, rb * a.block_q, cb * a.block_kv);
            any |= k, all &= k;
        }
    return !any ? 0 : (all ? 1 : 2);
}

/* Additive dense-mask term for (b, h, i, j): 0 without a dense mask, -inf where a bool mask drops. */
__device__ __forceinline__ float mfa_dense_bias(const Args &a, int64_t b, int64_t h, int64_t i, int64_t j) {
    if (!a.mask.data) return 0.0f;
    const int64_t at = b * a.mask.stride[0] + h * a.mask.stride[1] + i * a.mask.stride[2] + j * a.mask.stride[3];
    if (a.mask.dtype == MFA_DTYPE_BOOL) return ((const uint8_t *)a.mask.data)[at] ? 0.0f : -INFINITY;
    return mfa_ld(a.mask.data, a.mask.dtype, at);
}

#endif
