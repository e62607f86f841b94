/* bwd.cuh — the tensor-core backward: FlashAttention-2's (Dao 2023), for f16/bf16 with
 * unit-stride head dims and causal / window / no masks.
 *
 * One block owns BC keys of one (batch, kv head) and keeps K and V in shared memory. It walks the
 * query tiles (BR rows, of every q head of its GQA group) whose key range meets its keys, and for
 * each recomputes the probabilities from the forward's LSE instead of storing them:
 *     S^T = K Q^T,  P^T = 2^(S^T scale log2e - lse log2e)      (A: keys x queries, registers)
 *     dP^T = V dO^T,  dS^T = P^T (dP^T - delta),  delta = rowsum(dO O)   (delta: a prior kernel)
 *     dV += P^T dO,  dK += dS^T Q                                (B: accumulated in registers)
 *     dQ += dS K                                                  (C: fp32 atomics to a workspace)
 * P^T and dS^T pass through shared memory (in the input type) between the phases because each
 * phase spreads its warps differently (tile-sizes.h). dK and dQ are multiplied by the softmax
 * scale once, at the end; a last kernel converts the fp32 dQ to the caller's dtype and layout.
 * dK and dV need no atomics: the block loops over the GQA group's q heads itself. */
#ifndef MFA_CUDA_BWD_CUH
#define MFA_CUDA_BWD_CUH

#include <cuda_runtime.h>

#include "../ptx.cuh"
#include "../tile-sizes.h"
#include "common.cuh"
#include "tile.cuh"

namespace mfa_bwd {

template <typename T, int D> struct Bwd {
    static constexpr int BC = BwdTile<D>::BC, BR = BwdTile<D>::BR, WARPS = BwdTile<D>::WARPS;
    static constexpr int THREADS = WARPS * 32, DP = (D + 63) / 64 * 64, PP = BR;
    static constexpr int WA_K = BwdTile<D>::WA_K, MA = BC / 16 / WA_K;                     /* phase A */
    static constexpr int WA_Q = WARPS / WA_K, QA = BR / WA_Q, NA = QA / 8;
    static constexpr int WB_K = BwdTile<D>::WB_K, MB = BC / 16 / WB_K;                     /* phase B */
    static constexpr int WB_D = WARPS / WB_K, DB = D / WB_D, NB = DB / 8;
    static constexpr int WC_Q = BR / 16, WC_D = WARPS / WC_Q, DC = D / WC_D, NC = DC / 8;  /* phase C */
    /* K, V; Q and dO twice (the next query tile loads while this one computes); P^T, dS^T; lse and
     * delta twice; and where it fits, the fp32 dQ tile staged for coalesced vector atomics. */
    static constexpr size_t SMEM_BASE = (size_t)(2 * BC * DP + 4 * BR * DP + 2 * BC * PP) * sizeof(T) + 4 * BR * sizeof(float);
    static constexpr int QP = D + 8; /* staged dQ pitch in floats (rows shift banks by 8) */
    static constexpr bool STAGE_DQ = SMEM_BASE + (size_t)BR * QP * sizeof(float) <= 227 * 1024;
    static constexpr size_t SMEM = SMEM_BASE + (STAGE_DQ ? (size_t)BR * QP * sizeof(float) : 0);
    static_assert(WA_K * WA_Q == WARPS && WB_K * WB_D == WARPS && WC_Q * WC_D == WARPS, "warp grids");
    static_assert(MA * 16 * WA_K == BC && MB * 16 * WB_K == BC, "key tiles");
    static_assert(NA % 2 == 0 && NB % 2 == 0 && NC % 2 == 0 && PP % 64 == 0, "fragment pairs");
};

template <typename T, int D>
__global__ void __launch_bounds__(Bwd<T, D>::THREADS, 1) bwd_kernel(const __grid_constant__ Args a) {
    using K = Bwd<T, D>;
    constexpr int BC = K::BC, BR = K::BR, THREADS = K::THREADS, DP = K::DP, PP = K::PP;
    constexpr int WA_K = K::WA_K, MA = K::MA, QA = K::QA, NA = K::NA;
    constexpr int WB_K = K::WB_K, MB = K::MB, DB = K::DB, NB = K::NB;
    constexpr int WC_Q = K::WC_Q, DC = K::DC, NC = K::NC;
    extern __shared__ __align__(128) char smem[];
    const uint32_t sK = smem_u32(smem), sV = sK + BC * DP * 2, sQ0 = sV + BC * DP * 2; /* Q, dO, Q, dO */
    const uint32_t sP = sQ0 + 4 * BR * DP * 2, sS = sP + BC * PP * 2;
    float *sStat = (float *)(smem + (sS - sK) + BC * PP * 2); /* [buf][lse BR | delta BR] */
    float *sQacc = sStat + 4 * BR;                            /* [BR][QP] when STAGE_DQ */

    /* Which keys: 1-D grid, kv heads fastest, first key tiles (most queries under causal) first. */
    const int64_t bh = a.batch * a.heads_kv, lin = blockIdx.x;
    const int64_t b = lin % bh / a.heads_kv, hk = lin % bh % a.heads_kv, j0 = lin / bh * BC;
    const Seq s = mfa_seq(a, b);
    if (j0 >= s.sk) return;
    const int nk = (int)min((int64_t)BC, s.sk - j0);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int dqk = (int)a.head_dim_qk, dv = (int)a.head_dim_v;

    const T *kg = (const T *)a.k.data + s.tb * a.k.stride[0] + (s.k0 + j0) * a.k.stride[1] + hk * a.k.stride[2];
    const T *vg = (const T *)a.v.data + s.tb * a.v.stride[0] + (s.k0 + j0) * a.v.stride[1] + hk * a.v.stride[2];
    load_tile<T, D, BC, THREADS>(sK, kg, a.k.stride[1], nk, dqk, (const T *)a.k.data);
    load_tile<T, D, BC, THREADS>(sV, vg, a.v.stride[1], nk, dv, (const T *)a.v.data);
    cp_async_commit();

    /* Per-lane ldmatrix coordinates: A operands (row-major), B operands (n-major), B transposed. */
    const int a_row = (lane & 7) + ((lane >> 3) & 1) * 8, a_col = lane >> 4;
    const int b_row = (lane & 7) + (lane >> 4) * 8, b_col = (lane >> 3) & 1;
    const int v_row = a_row, v_col = a_col;
    const int kw = warp % WA_K, qw = warp / WA_K;  /* phase A: MA*16 keys x QA queries */
    const int kb = warp % WB_K, dw = warp / WB_K;  /* phase B: MB*16 keys x DB dims */
    const int cq = warp % WC_Q, cd = warp / WC_Q;  /* phase C: 16 queries x DC dims */

    float acc_dv[MB][NB][4], acc_dk[MB][NB][4];
#pragma unroll
    for (int m = 0; m < MB; m++)
#pragma unroll
        for (int n = 0; n < NB; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc_dv[m][n][e] = acc_dk[m][n][e] = 0.0f;

    const float sl2 = a.scale_log2;
    /* The query tiles to visit, in order: (q head h of the group, first row i0), skipping tiles
     * none of whose rows sees a key of this block. */
    const int64_t h_end = (hk + 1) * a.group;
    auto visits = [&](int64_t i0) {
        int64_t lo_first, hi_first, lo_last, hi_last;
        const int64_t n = min((int64_t)BR, s.sq - i0);
        mfa_key_range(a, i0, s.sq, s.sk, lo_first, hi_first);
        mfa_key_range(a, i0 + n - 1, s.sq, s.sk, lo_last, hi_last);
        return hi_last > j0 && lo_first < j0 + nk;
    };
    auto advance = [&](int64_t &h, int64_t &i0) { /* to the next visited tile; h == h_end: none */
        for (;;) {
            i0 += BR;
            if (i0 >= s.sq) i0 = 0, h++;
            if (h >= h_end || (s.sq > 0 && visits(i0))) return;
        }
    };
    auto load_q = [&](int64_t h, int64_t i0, int buf) {
        if (h >= h_end) return;
        const int n = (int)min((int64_t)BR, s.sq - i0);
        const T *qg = (const T *)a.q.data + s.tb * a.q.stride[0] + (s.q0 + i0) * a.q.stride[1] + h * a.q.stride[2];
        const T *og = (const T *)a.dout.data + s.tb * a.dout.stride[0] + (s.q0 + i0) * a.dout.stride[1] +
                      h * a.dout.stride[2];
        const uint32_t q_s = sQ0 + buf * 2 * BR * DP * 2;
        load_tile<T, D, BR, THREADS>(q_s, qg, a.q.stride[1], n, dqk, (const T *)a.q.data);
        load_tile<T, D, BR, THREADS>(q_s + BR * DP * 2, og, a.dout.stride[1], n, dv, (const T *)a.dout.data);
        /* lse and delta; padding rows get lse = +inf, so P = 2^-inf = 0 there */
        for (int r = threadIdx.x; r < BR; r += THREADS) {
            float *st = sStat + buf * 2 * BR + r;
            if (r < n) {
                const int64_t at = mfa_lse_at(a, b, s, h, i0 + r);
                cp_async4(smem_u32(st), a.lse + at);
                cp_async4(smem_u32(st + BR), a.delta + at);
            } else {
                st[0] = INFINITY, st[BR] = 0.0f;
            }
        }
    };
    int64_t h = hk * a.group, i0 = -BR;
    advance(h, i0);
    load_q(h, i0, 0);
    cp_async_commit();
    for (int buf = 0; h < h_end; buf ^= 1) {
        int64_t h_next = h, i_next = i0;
        advance(h_next, i_next);
        {
            const int n_rows = (int)min((int64_t)BR, s.sq - i0);
            int64_t lo_first, hi_first, lo_last, hi_last;
            mfa_key_range(a, i0, s.sq, s.sk, lo_first, hi_first);
            mfa_key_range(a, i0 + n_rows - 1, s.sq, s.sk, lo_last, hi_last);
            const bool need_mask = j0 + BC > s.sk || lo_last > j0 || hi_first < j0 + BC;
            const uint32_t sQ = sQ0 + buf * 2 * BR * DP * 2, sO = sQ + BR * DP * 2;

            __syncthreads(); /* the previous tile is done with the other buffer, P^T, dS^T, stats */
            load_q(h_next, i_next, buf ^ 1);
            cp_async_commit();
            const float *sL = sStat + buf * 2 * BR, *sDl = sL + BR; /* this tile's lse, delta */
            cp_async_wait<1>(); /* this tile (and K, V) landed; the next one may still be in flight */
            __syncthreads();

            /* Phase A: S^T and dP^T for keys kw*MA*16.. x queries qw*QA.. */
            {
                float acc_s[MA][NA][4], acc_p[MA][NA][4];
#pragma unroll
                for (int m = 0; m < MA; m++)
#pragma unroll
                    for (int n = 0; n < NA; n++)
#pragma unroll
                        for (int e = 0; e < 4; e++) acc_s[m][n][e] = acc_p[m][n][e] = 0.0f;
#pragma unroll
                for (int ks = 0; ks < D / 16; ks++) {
                    uint32_t ka[MA][4], va[MA][4];
#pragma unroll
                    for (int m = 0; m < MA; m++) {
                        ldsm_x4(ka[m], sK + swz<DP>((kw * MA + m) * 16 + a_row, ks * 2 + a_col));
                        ldsm_x4(va[m], sV + swz<DP>((kw * MA + m) * 16 + a_row, ks * 2 + a_col));
                    }
#pragma unroll
                    for (int np = 0; np < NA / 2; np++) {
                        uint32_t qb[4], ob[4];
                        ldsm_x4(qb, sQ + swz<DP>(qw * QA + np * 16 + b_row, ks * 2 + b_col));
                        ldsm_x4(ob, sO + swz<DP>(qw * QA + np * 16 + b_row, ks * 2 + b_col));
#pragma unroll
                        for (int m = 0; m < MA; m++) {
                            mma16816<T>(acc_s[m][2 * np], ka[m], qb[0], qb[1]);
                            mma16816<T>(acc_s[m][2 * np + 1], ka[m], qb[2], qb[3]);
                            mma16816<T>(acc_p[m][2 * np], va[m], ob[0], ob[1]);
                            mma16816<T>(acc_p[m][2 * np + 1], va[m], ob[2], ob[3]);
                        }
                    }
                }
#pragma unroll
                for (int n = 0; n < NA; n++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const int q = qw * QA + n * 8 + 2 * t + e; /* query column of this element */
                        int64_t rlo = 0, rhi = 0;
                        if (need_mask) mfa_key_range(a, i0 + q, s.sq, s.sk, rlo, rhi);
                        const float nl2 = -sL[q] * MFA_LOG2E, dl = sDl[q];
#pragma unroll
                        for (int m = 0; m < MA; m++)
#pragma unroll
                            for (int hf = 0; hf < 2; hf++) {
                                const int64_t jj = j0 + (kw * MA + m) * 16 + g + hf * 8;
                                const bool keep = !need_mask || (jj >= rlo && jj < rhi);
                                /* a row that sees no key (lse -inf) is always masked: keep is false */
                                const float p = keep ? ex2(fmaf(acc_s[m][n][hf * 2 + e], sl2, nl2)) : 0.0f;
                                acc_s[m][n][hf * 2 + e] = p;
                                acc_p[m][n][hf * 2 + e] = p * (acc_p[m][n][hf * 2 + e] - dl);
                            }
                    }
#pragma unroll
                for (int m = 0; m < MA; m++)
#pragma unroll
                    for (int n = 0; n < NA; n++)
#pragma unroll
                        for (int hf = 0; hf < 2; hf++) {
                            const int key = (kw * MA + m) * 16 + g + hf * 8, q = qw * QA + n * 8 + 2 * t;
                            const uint32_t off = swz<PP>(key, q / 8) + (q % 8) * 2;
                            const uint32_t pv = pack2<T>(acc_s[m][n][hf * 2], acc_s[m][n][hf * 2 + 1]);
                            const uint32_t dsv = pack2<T>(acc_p[m][n][hf * 2], acc_p[m][n][hf * 2 + 1]);
                            asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sP + off), "r"(pv));
                            asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sS + off), "r"(dsv));
                        }
            }
            __syncthreads();

            /* Phase B: dV += P^T dO and dK += dS^T Q for keys kb*MB*16.. x dims dw*DB.. */
#pragma unroll
            for (int kq = 0; kq < BR / 16; kq++) {
                uint32_t pa[MB][4], sa[MB][4];
#pragma unroll
                for (int m = 0; m < MB; m++) {
                    ldsm_x4(pa[m], sP + swz<PP>((kb * MB + m) * 16 + a_row, kq * 2 + a_col));
                    ldsm_x4(sa[m], sS + swz<PP>((kb * MB + m) * 16 + a_row, kq * 2 + a_col));
                }
#pragma unroll
                for (int dp = 0; dp < NB / 2; dp++) {
                    uint32_t ob[4], qb[4];
                    ldsm_x4_t(ob, sO + swz<DP>(kq * 16 + v_row, dw * (DB / 8) + dp * 2 + v_col));
                    ldsm_x4_t(qb, sQ + swz<DP>(kq * 16 + v_row, dw * (DB / 8) + dp * 2 + v_col));
#pragma unroll
                    for (int m = 0; m < MB; m++) {
                        mma16816<T>(acc_dv[m][2 * dp], pa[m], ob[0], ob[1]);
                        mma16816<T>(acc_dv[m][2 * dp + 1], pa[m], ob[2], ob[3]);
                        mma16816<T>(acc_dk[m][2 * dp], sa[m], qb[0], qb[1]);
                        mma16816<T>(acc_dk[m][2 * dp + 1], sa[m], qb[2], qb[3]);
                    }
                }
            }

            /* Phase C: dQ += dS K for queries cq*16.. x dims cd*DC.., added to the fp32 workspace. */
            if (!a.deterministic) {
                float acc_q[NC][4];
#pragma unroll
                for (int n = 0; n < NC; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) acc_q[n][e] = 0.0f;
#pragma unroll
                for (int kk = 0; kk < BC / 16; kk++) {
                    uint32_t da[4];
                    ldsm_x4_t(da, sS + swz<PP>(kk * 16 + b_row, cq * 2 + b_col));
#pragma unroll
                    for (int dp = 0; dp < NC / 2; dp++) {
                        uint32_t kv[4];
                        ldsm_x4_t(kv, sK + swz<DP>(kk * 16 + v_row, cd * (DC / 8) + dp * 2 + v_col));
                        mma16816<T>(acc_q[2 * dp], da, kv[0], kv[1]);
                        mma16816<T>(acc_q[2 * dp + 1], da, kv[2], kv[3]);
                    }
                }
                if (K::STAGE_DQ) {
                    /* stage the tile, then one coalesced 16-byte reduction per 4 dims */
#pragma unroll
                    for (int hf = 0; hf < 2; hf++)
#pragma unroll
                        for (int n = 0; n < NC; n++)
                            *(float2 *)(sQacc + (cq * 16 + g + hf * 8) * K::QP + cd * DC + n * 8 + 2 * t) =
                                make_float2(acc_q[n][hf * 2], acc_q[n][hf * 2 + 1]);
                    __syncthreads();
                    const int64_t tok0 = a.varlen ? s.q0 + i0 : b * a.seqlen_q + i0;
                    for (int x = threadIdx.x; x < BR * (D / 4); x += THREADS) {
                        const int r = x / (D / 4), c = x % (D / 4);
                        if (r < n_rows && c * 4 < dqk)
                            red_add4(a.dq_accum + ((tok0 + r) * a.heads_q + h) * a.dq_pitch + c * 4,
                                     *(const float4 *)(sQacc + r * K::QP + c * 4));
                    }
                } else {
#pragma unroll
                    for (int hf = 0; hf < 2; hf++) {
                        const int r = cq * 16 + g + hf * 8;
                        if (r >= n_rows) continue;
                        const int64_t token = a.varlen ? s.q0 + i0 + r : b * a.seqlen_q + i0 + r;
                        float *dst = a.dq_accum + (token * a.heads_q + h) * a.dq_pitch;
#pragma unroll
                        for (int n = 0; n < NC; n++)
#pragma unroll
                            for (int e = 0; e < 2; e++) {
                                const int d = cd * DC + n * 8 + 2 * t + e;
                                if (d < dqk) atomicAdd(dst + d, acc_q[n][hf * 2 + e]);
                            }
                    }
                }
            }
        }
        h = h_next, i0 = i_next;
    }
    cp_async_wait<0>();

    /* dV, and dK times the softmax scale, in the caller's dtype and layout. */
#pragma unroll
    for (int m = 0; m < MB; m++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            const int key = (kb * MB + m) * 16 + g + hf * 8;
            if (key >= nk) continue;
            const int64_t at_k = mfa_at(a.dk, s.tb, s.k0 + j0 + key, hk, 0);
            const int64_t at_v = mfa_at(a.dv, s.tb, s.k0 + j0 + key, hk, 0);
#pragma unroll
            for (int n = 0; n < NB; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int d = dw * DB + n * 8 + 2 * t + e;
                    if (d < dqk)
                        mfa_st(a.dk.data, a.dk.dtype, at_k + d * a.dk.stride[3], acc_dk[m][n][hf * 2 + e] * a.scale);
                    if (d < dv) mfa_st(a.dv.data, a.dv.dtype, at_v + d * a.dv.stride[3], acc_dv[m][n][hf * 2 + e]);
                }
        }
}

/* dq = scale * dq_accum, into the caller's dtype and layout; one thread an element. (static: this
 * header is compiled into every instantiation file.) */
static __global__ void __launch_bounds__(256) dq_convert(const __grid_constant__ Args a) {
    const int64_t tokens = a.varlen ? a.seqlen_q : a.batch * a.seqlen_q;
    const int64_t per_token = a.heads_q * a.head_dim_qk;
    for (int64_t x = (int64_t)blockIdx.x * 256 + threadIdx.x; x < tokens * per_token; x += (int64_t)gridDim.x * 256) {
        const int64_t token = x / per_token, h = x % per_token / a.head_dim_qk, d = x % a.head_dim_qk;
        const int64_t tb = a.varlen ? 0 : token / a.seqlen_q, tok = a.varlen ? token : token % a.seqlen_q;
        mfa_st(a.dq.data, a.dq.dtype, mfa_at(a.dq, tb, tok, h, d),
               a.dq_accum[(token * a.heads_q + h) * a.dq_pitch + d] * a.scale);
    }
}

template <typename T, int D> cudaError_t launch(const Args &a, cudaStream_t stream) {
    using K = Bwd<T, D>;
    const int64_t tokens = a.varlen ? a.seqlen_q : a.batch * a.seqlen_q;
    cudaError_t e = cudaSuccess;
    if (!a.deterministic)
        e = cudaMemsetAsync(a.dq_accum, 0, sizeof(float) * (size_t)(tokens * a.heads_q * a.dq_pitch), stream);
    const int64_t blocks = a.batch * a.heads_kv * ((a.max_sk + K::BC - 1) / K::BC);
    if (e == cudaSuccess && blocks > 0) {
        const void *fn = (const void *)bwd_kernel<T, D>;
        e = cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)K::SMEM);
        void *args[] = {(void *)&a};
        if (e == cudaSuccess) e = cudaLaunchKernel(fn, dim3((unsigned)blocks), dim3(K::THREADS), args, K::SMEM, stream);
    }
    if (e == cudaSuccess && !a.deterministic && tokens > 0) {
        const int64_t n = tokens * a.heads_q * a.head_dim_qk;
        const unsigned grid = (unsigned)min((n + 255) / 256, (int64_t)65535 * 16);
        void *args[] = {(void *)&a};
        e = cudaLaunchKernel((const void *)dq_convert, dim3(grid), dim3(256), args, 0, stream);
    }
    return e;
}

} // namespace mfa_bwd

#define MFA_BWD_INSTANTIATE(T, D) template cudaError_t mfa_bwd::launch<T, D>(const Args &, cudaStream_t);

#endif
