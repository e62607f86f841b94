/* generic.cu — the exact fp32 kernels (CUDA cores, no tensor cores): every feature, any dtype
 * of every tensor, any strides, any head dim up to 256.
 *
 * What this is: the CUDA backend's always-correct path and the readable one. It is the cpu
 * backend's algorithm (src/cpu/fwd.c, bwd.c) moved to the GPU: a block of 128 threads owns 16
 * query rows (8 threads a row) and streams tiles of 32 keys through shared memory, converting
 * every element to fp32 on load, with the online softmax of FlashAttention-2 (Dao 2023):
 *     m' = max(m, max_j s_j);  O = O e^(m - m') + sum_j e^(s_j - m') v_j;  l likewise.
 * The backward is the cpu's three passes: delta = rowsum(dO * O); dQ per block of query rows;
 * dK, dV per block of keys (looping over the q heads of its GQA group), hence deterministic.
 *
 * What this is not: fast. The tensor-core families (fwd.cuh, bwd.cuh) take f16/bf16 problems
 * with unit-stride head dims; this file takes everything else (fp32 inputs, transposed layouts,
 * odd head dims, mixed dtypes) and is the oracle those are first compared with on the GPU. */
#include <cuda_runtime.h>

#include "common.cuh"
#include "launch.h"

namespace {

constexpr int GQ = 16;  /* query rows per block */
constexpr int GK = 32;  /* keys per tile */
constexpr int GT = 128; /* threads per block: GQ rows x 8 threads */
constexpr int GW = 32;  /* head-dim elements per thread in the row-owner loops: 256 / 8 */
constexpr int SP = GK + 1; /* pitch of the score tiles (a column per thread: no bank conflicts) */

__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* rows [t0, t0 + n_rows) of head `head`, dims [0, dim), as fp32 into dst[r * pitch + d];
 * rows at or past n_valid are zero (so masked keys never multiply garbage). */
__device__ void load_rows(const mfa_cuda_tensor_t &t, int64_t tb, int64_t head, int64_t t0, int n_valid,
                          int n_rows, int dim, float *dst, int pitch) {
    for (int x = threadIdx.x; x < n_rows * dim; x += GT) {
        const int r = x / dim, d = x % dim;
        dst[r * pitch + d] = r < n_valid ? mfa_ld(t.data, t.dtype, mfa_at(t, tb, t0 + r, head, d)) : 0.0f;
    }
}

__device__ void store_rows(const mfa_cuda_tensor_t &t, int64_t tb, int64_t head, int64_t t0, int n, int dim,
                           const float *src, int pitch, float mul) {
    for (int x = threadIdx.x; x < n * dim; x += GT) {
        const int r = x / dim, d = x % dim;
        mfa_st(t.data, t.dtype, mfa_at(t, tb, t0 + r, head, d), src[r * pitch + d] * mul);
    }
}

/* Final scores of a tile: S[r][c] for rows i0 + r (r < n) and keys j0 + c (c < nk) are
 * scale * q.k, then softcap, then the dense bias; -inf where a mask drops the pair and outside
 * the tile. dcap (optional) receives d(capped)/d(raw) = 1 - tanh^2 (1 without softcap). */
__device__ void score_tile(const Args &a, int64_t b, int64_t h, const Seq &s, int64_t i0, int n, int64_t j0,
                           int nk, int block_state, const float *Q, const float *K, int kp, float *S, float *dcap) {
    const int D = (int)a.head_dim_qk;
    for (int x = threadIdx.x; x < GQ * GK; x += GT) {
        const int r = x / GK, c = x % GK; /* a warp shares r: Q is a broadcast, K rows differ */
        float v = -INFINITY, dc = 1.0f;
        if (r < n && c < nk) {
            const int64_t i = i0 + r, j = j0 + c;
            int64_t lo, hi;
            mfa_key_range(a, i, s.sq, s.sk, lo, hi);
            if (j >= lo && j < hi && (block_state == 1 || mfa_block_keeps(a, b, h, i, j))) {
                float acc = 0.0f;
                for (int d = 0; d < D; d++) acc = fmaf(Q[r * D + d], K[c * kp + d], acc);
                float y = acc * a.scale;
                if (a.softcap > 0.0f) {
                    const float t = tanhf(y / a.softcap);
                    y = a.softcap * t;
                    dc = 1.0f - t * t;
                }
                v = y + mfa_dense_bias(a, b, h, i, j);
            }
        }
        S[r * SP + c] = v;
        if (dcap) dcap[r * SP + c] = dc;
    }
}

/* Reductions over the 8 consecutive lanes that share a query row. */
__device__ __forceinline__ float row_max8(float x) {
    for (int o = 1; o < 8; o <<= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
    return x;
}
__device__ __forceinline__ float row_sum8(float x) {
    for (int o = 1; o < 8; o <<= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
    return x;
}

/* Block lin of a 1-D grid over (q tile, batch * heads): heads vary fastest and the last q tiles
 * (the most keys under a causal mask) come first. */
__device__ __forceinline__ void decode_rows(const Args &a, int64_t n_tiles, int64_t &b, int64_t &h, int64_t &tile) {
    const int64_t bh = a.batch * a.heads_q, lin = blockIdx.x;
    tile = n_tiles - 1 - lin / bh;
    b = lin % bh / a.heads_q;
    h = lin % bh % a.heads_q;
}

__global__ void __launch_bounds__(GT) generic_fwd(const __grid_constant__ Args a) {
    extern __shared__ float sm[];
    const int Dq = (int)a.head_dim_qk, Dv = (int)a.head_dim_v, kp = Dq + 1;
    int64_t b, h, tile;
    decode_rows(a, (a.max_sq + GQ - 1) / GQ, b, h, tile);
    const int64_t hk = h / a.group;
    const Seq s = mfa_seq(a, b);
    const int64_t i0 = tile * GQ;
    if (i0 >= s.sq) return;
    const int n = (int)min64(GQ, s.sq - i0);
    float *Qs = sm, *Ks = Qs + GQ * Dq, *Vs = Ks + GK * kp, *S = Vs + GK * Dv; /* S: [GQ][SP] */
    load_rows(a.q, s.tb, h, s.q0 + i0, n, GQ, Dq, Qs, Dq);

    const int r = threadIdx.x >> 3, part = threadIdx.x & 7;
    float acc[GW];
#pragma unroll
    for (int w = 0; w < GW; w++) acc[w] = 0.0f;
    float m = -INFINITY, l = 0.0f;

    int64_t lo, hi;
    mfa_tile_key_range(a, s, i0, n, lo, hi);
    for (int64_t j0 = lo; j0 < hi; j0 += GK) {
        const int nk = (int)min64(GK, hi - j0);
        const int bs = mfa_block_tile(a, b, h, i0, n, j0, nk);
        if (!bs) continue; /* uniform over the block: every thread computes the same */
        __syncthreads();   /* the previous tile is no longer read */
        load_rows(a.k, s.tb, hk, s.k0 + j0, nk, GK, Dq, Ks, kp);
        load_rows(a.v, s.tb, hk, s.k0 + j0, nk, GK, Dv, Vs, Dv);
        __syncthreads();
        score_tile(a, b, h, s, i0, n, j0, nk, bs, Qs, Ks, kp, S, nullptr);
        __syncthreads();

        /* online softmax of row r over this tile: 4 scores per thread */
        float x[4], tmax = -INFINITY;
#pragma unroll
        for (int u = 0; u < 4; u++) x[u] = S[r * SP + part + 8 * u], tmax = fmaxf(tmax, x[u]);
        tmax = row_max8(tmax);
        /* rows that see nothing in this tile keep their state (the shuffles stay warp-wide) */
        const bool any = tmax != -INFINITY;
        const float m_new = any ? fmaxf(m, tmax) : m;
        const float corr = any ? expf(m - m_new) : 1.0f; /* e^-inf = 0 on the first visible tile */
        float sum = 0.0f;
#pragma unroll
        for (int u = 0; u < 4; u++) {
            x[u] = any ? expf(x[u] - m_new) : 0.0f;
            sum += x[u];
            S[r * SP + part + 8 * u] = x[u];
        }
        sum = row_sum8(sum);
        __syncwarp(); /* the row's 8 lanes read each other's probabilities */
        if (!any) continue;
        l = l * corr + sum;
        m = m_new;
#pragma unroll
        for (int w = 0; w < GW; w++) {
            const int d = part + 8 * w;
            if (d < Dv) {
                float o = acc[w] * corr;
                for (int c = 0; c < GK; c++) o = fmaf(S[r * SP + c], Vs[c * Dv + d], o);
                acc[w] = o;
            }
        }
    }

    if (r < n) {
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
#pragma unroll
        for (int w = 0; w < GW; w++) {
            const int d = part + 8 * w;
            if (d < Dv) mfa_st(a.o.data, a.o.dtype, mfa_at(a.o, s.tb, s.q0 + i0 + r, h, d), acc[w] * inv);
        }
        if (a.lse && part == 0) a.lse[mfa_lse_at(a, b, s, h, i0 + r)] = l > 0.0f ? m + logf(l) : -INFINITY;
    }
}

/* delta = rowsum(dO * O) per (row, head), indexed like the LSE: one thread a row, summing in the
 * order ds_tile sums dP = dO . V, so that where O == V (one visible key) dP - delta is exactly 0. */
__global__ void __launch_bounds__(128) bwd_delta(const __grid_constant__ Args a) {
    const int64_t bh = a.batch * a.heads_q;
    const int64_t b = blockIdx.x % bh / a.heads_q, h = blockIdx.x % bh % a.heads_q;
    const int64_t i = blockIdx.x / bh * 128 + threadIdx.x;
    const Seq s = mfa_seq(a, b);
    if (i >= s.sq) return;
    const int64_t o0 = mfa_at(a.o, s.tb, s.q0 + i, h, 0), g0 = mfa_at(a.dout, s.tb, s.q0 + i, h, 0);
    float sum = 0.0f;
    for (int64_t d = 0; d < a.head_dim_v; d++)
        sum = fmaf(mfa_ld(a.dout.data, a.dout.dtype, g0 + d * a.dout.stride[3]),
                   mfa_ld(a.o.data, a.o.dtype, o0 + d * a.o.stride[3]), sum);
    a.delta[mfa_lse_at(a, b, s, h, i)] = sum;
}

/* The same sum for the tensor-core backward, whose dP has no such exactness to match: one warp a
 * row, coalesced. */
__global__ void __launch_bounds__(128) bwd_delta_warp(const __grid_constant__ Args a) {
    const int64_t bh = a.batch * a.heads_q;
    const int64_t b = blockIdx.x % bh / a.heads_q, h = blockIdx.x % bh % a.heads_q;
    const int64_t i = blockIdx.x / bh * 4 + (threadIdx.x >> 5);
    const Seq s = mfa_seq(a, b);
    if (i >= s.sq) return;
    float sum = 0.0f;
    for (int64_t d = threadIdx.x & 31; d < a.head_dim_v; d += 32)
        sum += mfa_ld(a.dout.data, a.dout.dtype, mfa_at(a.dout, s.tb, s.q0 + i, h, d)) *
               mfa_ld(a.o.data, a.o.dtype, mfa_at(a.o, s.tb, s.q0 + i, h, d));
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if ((threadIdx.x & 31) == 0) a.delta[mfa_lse_at(a, b, s, h, i)] = sum;
}

/* Per score-tile element of the backward: P = e^(S - lse) (0 where dropped or the row is
 * empty), dP = dO_r . V_c, dS = P (dP - delta) dcap. Writes P into P (when given) and dS into S. */
__device__ void ds_tile(const Args &a, const float *lse, const float *delta, const float *dO, const float *Vs,
                        int vp, float *S, const float *dcap, float *P) {
    const int Dv = (int)a.head_dim_v;
    for (int x = threadIdx.x; x < GQ * GK; x += GT) {
        const int r = x / GK, c = x % GK;
        const float sc = S[r * SP + c];
        const float p = (sc == -INFINITY || lse[r] == -INFINITY) ? 0.0f : expf(sc - lse[r]);
        float dp = 0.0f;
        if (p != 0.0f)
            for (int e = 0; e < Dv; e++) dp = fmaf(dO[r * Dv + e], Vs[c * vp + e], dp);
        S[r * SP + c] = p * (dp - delta[r]) * dcap[r * SP + c];
        if (P) P[r * SP + c] = p;
    }
}

__device__ void load_row_stats(const Args &a, int64_t b, const Seq &s, int64_t h, int64_t i0, int n, float *lse,
                               float *delta) {
    for (int r = threadIdx.x; r < GQ; r += GT) {
        const bool ok = r < n;
        lse[r] = ok ? a.lse[mfa_lse_at(a, b, s, h, i0 + r)] : -INFINITY;
        delta[r] = ok ? a.delta[mfa_lse_at(a, b, s, h, i0 + r)] : 0.0f;
    }
}

/* dQ for GQ rows of one (batch, q head). */
__global__ void __launch_bounds__(GT) generic_bwd_dq(const __grid_constant__ Args a) {
    extern __shared__ float sm[];
    const int Dq = (int)a.head_dim_qk, Dv = (int)a.head_dim_v, kp = Dq + 1, vp = Dv + 1;
    int64_t b, h, tile;
    decode_rows(a, (a.max_sq + GQ - 1) / GQ, b, h, tile);
    const int64_t hk = h / a.group;
    const Seq s = mfa_seq(a, b);
    const int64_t i0 = tile * GQ;
    if (i0 >= s.sq) return;
    const int n = (int)min64(GQ, s.sq - i0);
    float *Qs = sm, *dOs = Qs + GQ * Dq, *Ks = dOs + GQ * Dv, *Vs = Ks + GK * kp, *S = Vs + GK * vp;
    float *dC = S + GQ * SP, *lse = dC + GQ * SP, *delta = lse + GQ;
    load_rows(a.q, s.tb, h, s.q0 + i0, n, GQ, Dq, Qs, Dq);
    load_rows(a.dout, s.tb, h, s.q0 + i0, n, GQ, Dv, dOs, Dv);
    load_row_stats(a, b, s, h, i0, n, lse, delta);

    const int r = threadIdx.x >> 3, part = threadIdx.x & 7;
    float acc[GW];
#pragma unroll
    for (int w = 0; w < GW; w++) acc[w] = 0.0f;
    int64_t lo, hi;
    mfa_tile_key_range(a, s, i0, n, lo, hi);
    for (int64_t j0 = lo; j0 < hi; j0 += GK) {
        const int nk = (int)min64(GK, hi - j0);
        const int bs = mfa_block_tile(a, b, h, i0, n, j0, nk);
        if (!bs) continue;
        __syncthreads();
        load_rows(a.k, s.tb, hk, s.k0 + j0, nk, GK, Dq, Ks, kp);
        load_rows(a.v, s.tb, hk, s.k0 + j0, nk, GK, Dv, Vs, vp);
        __syncthreads();
        score_tile(a, b, h, s, i0, n, j0, nk, bs, Qs, Ks, kp, S, dC);
        __syncthreads();
        ds_tile(a, lse, delta, dOs, Vs, vp, S, dC, nullptr);
        __syncthreads();
#pragma unroll
        for (int w = 0; w < GW; w++) {
            const int d = part + 8 * w;
            if (d < Dq) {
                float o = acc[w];
                for (int c = 0; c < GK; c++) o = fmaf(S[r * SP + c], Ks[c * kp + d], o);
                acc[w] = o;
            }
        }
    }
    if (r < n) {
#pragma unroll
        for (int w = 0; w < GW; w++) {
            const int d = part + 8 * w;
            if (d < Dq) mfa_st(a.dq.data, a.dq.dtype, mfa_at(a.dq, s.tb, s.q0 + i0 + r, h, d), acc[w] * a.scale);
        }
    }
}

/* dK and dV for GK keys of one (batch, kv head), over every q head of its group. The fp32
 * accumulators live in shared memory: thread t owns key t / 4 and every 4th dim from t % 4. */
__global__ void __launch_bounds__(GT) generic_bwd_dkdv(const __grid_constant__ Args a) {
    extern __shared__ float sm[];
    const int Dq = (int)a.head_dim_qk, Dv = (int)a.head_dim_v, kp = Dq + 1, vp = Dv + 1;
    const int64_t bh = a.batch * a.heads_kv, n_tiles = (a.max_sk + GK - 1) / GK;
    const int64_t lin = blockIdx.x, b = lin % bh / a.heads_kv, hk = lin % bh % a.heads_kv;
    const int64_t j0 = (n_tiles - 1 - lin / bh) * GK;
    const Seq s = mfa_seq(a, b);
    if (j0 >= s.sk) return;
    const int nk = (int)min64(GK, s.sk - j0);
    float *Ks = sm, *Vs = Ks + GK * kp, *Qs = Vs + GK * vp, *dOs = Qs + GQ * Dq, *S = dOs + GQ * Dv;
    float *dC = S + GQ * SP, *P = dC + GQ * SP, *lse = P + GQ * SP, *delta = lse + GQ;
    float *dK = delta + GQ, *dV = dK + GK * Dq;
    load_rows(a.k, s.tb, hk, s.k0 + j0, nk, GK, Dq, Ks, kp);
    load_rows(a.v, s.tb, hk, s.k0 + j0, nk, GK, Dv, Vs, vp);
    for (int x = threadIdx.x; x < GK * (Dq + Dv); x += GT) dK[x] = 0.0f; /* dV follows dK */

    const int c = threadIdx.x >> 2, part = threadIdx.x & 3;
    for (int64_t h = hk * a.group; h < (hk + 1) * a.group; h++) {
        for (int64_t i0 = 0; i0 < s.sq; i0 += GQ) {
            const int n = (int)min64(GQ, s.sq - i0);
            int64_t lo, hi;
            mfa_tile_key_range(a, s, i0, n, lo, hi);
            if (hi <= j0 || lo >= j0 + nk) continue;
            const int bs = mfa_block_tile(a, b, h, i0, n, j0, nk);
            if (!bs) continue;
            __syncthreads(); /* the previous q tile is no longer read */
            load_rows(a.q, s.tb, h, s.q0 + i0, n, GQ, Dq, Qs, Dq);
            load_rows(a.dout, s.tb, h, s.q0 + i0, n, GQ, Dv, dOs, Dv);
            load_row_stats(a, b, s, h, i0, n, lse, delta);
            __syncthreads();
            score_tile(a, b, h, s, i0, n, j0, nk, bs, Qs, Ks, kp, S, dC);
            __syncthreads();
            ds_tile(a, lse, delta, dOs, Vs, vp, S, dC, P);
            __syncthreads();
            for (int e = part; e < Dv; e += 4) {
                float o = dV[c * Dv + e];
                for (int rr = 0; rr < GQ; rr++) o = fmaf(P[rr * SP + c], dOs[rr * Dv + e], o);
                dV[c * Dv + e] = o;
            }
            for (int d = part; d < Dq; d += 4) {
                float o = dK[c * Dq + d];
                for (int rr = 0; rr < GQ; rr++) o = fmaf(S[rr * SP + c], Qs[rr * Dq + d], o);
                dK[c * Dq + d] = o;
            }
        }
    }
    __syncthreads();
    store_rows(a.dk, s.tb, hk, s.k0 + j0, nk, Dq, dK, Dq, a.scale);
    store_rows(a.dv, s.tb, hk, s.k0 + j0, nk, Dv, dV, Dv, 1.0f);
}

cudaError_t launch(const void *kernel, int64_t blocks, int threads, size_t smem, const Args &a, cudaStream_t st) {
    if (blocks == 0) return cudaSuccess;
    if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
    }
    void *args[] = {(void *)&a};
    return cudaLaunchKernel(kernel, dim3((unsigned)blocks), dim3(threads), args, smem, st);
}

} // namespace

extern "C" size_t mfa_cuda_generic_smem(const Args *a, int which) {
    const size_t Dq = (size_t)a->head_dim_qk, Dv = (size_t)a->head_dim_v, f = sizeof(float);
    switch (which) {
    case 0: return f * (GQ * Dq + GK * (Dq + 1) + GK * Dv + GQ * SP);
    case 1: return f * (GQ * Dq + GQ * Dv + GK * (Dq + 1) + GK * (Dv + 1) + 2 * GQ * SP + 2 * GQ);
    default: return f * (GK * (Dq + 1) + GK * (Dv + 1) + GQ * Dq + GQ * Dv + 3 * GQ * SP + 2 * GQ + GK * (Dq + Dv));
    }
}

extern "C" cudaError_t mfa_cuda_generic_fwd(const Args *a, cudaStream_t st) {
    const int64_t blocks = a->batch * a->heads_q * ((a->max_sq + GQ - 1) / GQ);
    return launch((const void *)generic_fwd, blocks, GT, mfa_cuda_generic_smem(a, 0), *a, st);
}

extern "C" cudaError_t mfa_cuda_bwd_delta(const Args *a, cudaStream_t st, bool exact_order) {
    if (!exact_order) {
        const int64_t blocks = a->batch * a->heads_q * ((a->max_sq + 3) / 4);
        return launch((const void *)bwd_delta_warp, blocks, 128, 0, *a, st);
    }
    const int64_t blocks = a->batch * a->heads_q * ((a->max_sq + 127) / 128);
    return launch((const void *)bwd_delta, blocks, 128, 0, *a, st);
}

extern "C" cudaError_t mfa_cuda_generic_bwd(const Args *a, cudaStream_t st, bool dq, bool dkdv) {
    cudaError_t e = cudaSuccess;
    if (dq) {
        const int64_t blocks = a->batch * a->heads_q * ((a->max_sq + GQ - 1) / GQ);
        e = launch((const void *)generic_bwd_dq, blocks, GT, mfa_cuda_generic_smem(a, 1), *a, st);
    }
    if (e == cudaSuccess && dkdv) {
        const int64_t blocks = a->batch * a->heads_kv * ((a->max_sk + GK - 1) / GK);
        e = launch((const void *)generic_bwd_dkdv, blocks, GT, mfa_cuda_generic_smem(a, 2), *a, st);
    }
    return e;
}
