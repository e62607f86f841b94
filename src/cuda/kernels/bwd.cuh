/* bwd.cuh — the tensor-core backward: FlashAttention-2's (Dao 2023), for f16/bf16 with
 * unit-stride head dims and causal / window / no masks.
 *
 * One block owns BC keys of one (batch, kv head) and keeps K and V in shared memory. It walks the
 * query tiles (BR rows, of every q head of its GQA group) whose key range meets its keys, and for
 * each recomputes the probabilities from the forward's LSE instead of storing them:
 *     S^T = K Q^T,  P^T = 2^(S^T scale log2e - lse log2e)      (A: keys x queries, registers)
 *     dP^T = V dO^T,  dS^T = P^T (dP^T - delta),  delta = rowsum(dO O)   (delta: a prior kernel)
 *     dV += P^T dO,  dK += dS^T Q                                (B: accumulated in registers)
 *     dQ += dS K                                       (C: fp32 vector reductions to a workspace)
 * P^T and dS^T pass through shared memory (in the input type) between the phases because each
 * phase spreads its warps differently (tile-sizes.h). dK and dQ are multiplied by the softmax
 * scale once, at the end; a last kernel converts the fp32 dQ to the caller's dtype and layout.
 * dK and dV need no atomics: the block loops over the GQA group's q heads itself.
 * Per query tile: one barrier before phase A (the tile landed; the last tile is done with every
 * shared buffer), one between A and B, one more where dQ is staged. Masks are applied with
 * selects on the tiles that need them: per-element branches cost 13 % at d128 (docs/cuda.md). */
#ifndef MFA_CUDA_BWD_CUH
#define MFA_CUDA_BWD_CUH

#include <cuda_runtime.h>

#include "../ptx.cuh"
#include "../tile-sizes.h"
#include "common.cuh"
#include "bwd_walk.cuh"
#include "launch.h"
#include "tile.cuh"

namespace mfa_bwd {

template <typename T, int D> struct Bwd {
    static constexpr int BC = BwdTile<D>::BC, BR = BwdTile<D>::BR, WARPS = BwdTile<D>::WARPS;
    static constexpr int THREADS = WARPS * 32, DP = (D + 63) / 64 * 64, PP = BR;
    static constexpr int WA_K = BwdTile<D>::WA_K, MA = BC / 16 / WA_K;                     /* phase A */
    static constexpr int WA_Q = WARPS / WA_K, QA = BR / WA_Q, NA = QA / 8;
    static constexpr int WB_K = BwdTile<D>::WB_K, MB = BC / 16 / WB_K;                     /* phase B */
    static constexpr int WB_D = WARPS / WB_K, DB = D / WB_D, NB = DB / 8;
    static constexpr int MC = 2, WC_Q = BR / 16 / MC, WC_D = WARPS / WC_Q, DC = D / WC_D, NC = DC / 8; /* phase C */
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
    constexpr int MC = K::MC, WC_Q = K::WC_Q, DC = K::DC, NC = K::NC;
    extern __shared__ __align__(128) char smem[];
    const uint32_t sK = smem_u32(smem), sV = sK + BC * DP * 2, sQ0 = sV + BC * DP * 2; /* Q, dO, Q, dO */
    const uint32_t sP = sQ0 + 4 * BR * DP * 2, sS = sP + BC * PP * 2;
    float *sStat = (float *)(smem + (sS - sK) + BC * PP * 2); /* [buf][lse BR | delta BR] */
    float *sQacc = sStat + 4 * BR;                            /* [BR][QP] when STAGE_DQ */

    /* Which keys: first key tiles (most queries under causal) first; grid order in common.cuh. */
    int64_t pair, key_tile;
    mfa_grid_order(a, blockIdx.x, (a.max_sk + BC - 1) / BC, a.batch * a.heads_kv, 1, false, pair, key_tile);
    const int64_t b = pair / a.heads_kv, hk = pair % a.heads_kv, j0 = key_tile * BC;
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
    const int cq = warp % WC_Q, cd = warp / WC_Q;  /* phase C: MC*16 queries x DC dims */

    float acc_dv[MB][NB][4], acc_dk[MB][NB][4];
#pragma unroll
    for (int m = 0; m < MB; m++)
#pragma unroll
        for (int n = 0; n < NB; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc_dv[m][n][e] = acc_dk[m][n][e] = 0.0f;

    const float sl2 = a.scale_log2;
    /* The query tiles to visit (bwd_walk.cuh), and their loads. */
    const BwdWalk walk(a, s, j0, nk, BR, BC);
    BwdHead<T> head(a, s, b, 0);
    auto load_q = [&](int tq, int buf) {
        const uint32_t q_s = sQ0 + buf * 2 * BR * DP * 2;
        bwd_load_rows<T, D, BR, THREADS, false>(a, s, head, tq, q_s, q_s + BR * DP * 2, sStat + buf * 2 * BR);
    };
    const int t_first = walk.t_first, t_end = walk.t_end;
    const int64_t h_end = (hk + 1) * a.group;
    int64_t h = t_first < t_end ? hk * a.group : h_end; /* no tile sees these keys: dK = dV = 0 */
    int tile = t_first;
    if (h < h_end) head = BwdHead<T>(a, s, b, h), load_q(tile, 0);
    cp_async_commit();
    for (int buf = 0; h < h_end; buf ^= 1) {
        /* the next tile: the next row tile, or the first of the next q head */
        int64_t h_next = h;
        const int tile_next = walk.next(tile);
        if (tile_next == walk.t_start) h_next++;
        {
            const int64_t i0 = (int64_t)tile * BR;
            const int n_rows = (int)min((int64_t)BR, s.sq - i0);
            const bool need_mask = walk.needs_mask(tile);
            const uint32_t sQ = sQ0 + buf * 2 * BR * DP * 2, sO = sQ + BR * DP * 2;

            /* One barrier: this tile (and K, V) landed for every thread, and every warp is done
             * with the previous tile (the other buffer, P^T, dS^T, its stats, the staged dQ). */
            cp_async_wait<0>();
            __syncthreads();
            if (h_next < h_end) { /* lands while this tile computes */
                if (h_next != h) head = BwdHead<T>(a, s, b, h_next);
                load_q(tile_next, buf ^ 1);
            }
            cp_async_commit();
            const float *sL = sStat + buf * 2 * BR, *sDl = sL + BR; /* this tile's lse, delta */

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
                        int klo, khi; /* the block's keys this row sees (bwd_walk.cuh) */
                        bwd_row_keys(a, s, i0 + q, j0, BC, need_mask, klo, khi);
                        const float nl2 = -sL[q] * MFA_LOG2E, dl = sDl[q];
#pragma unroll
                        for (int m = 0; m < MA; m++)
#pragma unroll
                            for (int hf = 0; hf < 2; hf++) {
                                /* selects, not branches: masked scores enter ex2 as -inf, giving 0 */
                                const int kl = (kw * MA + m) * 16 + g + hf * 8;
                                const float x = kl >= klo && kl < khi ? fmaf(acc_s[m][n][hf * 2 + e], sl2, nl2) : -INFINITY;
                                const float p = ex2(x);
                                acc_s[m][n][hf * 2 + e] = p;
                                acc_p[m][n][hf * 2 + e] = p * (acc_p[m][n][hf * 2 + e] - dl);
                            }
                    }
                if constexpr (MFA_HAS_STSM) {
                    /* per (m, pair of n): four 8x8 matrices (hf, n) in one stmatrix each for P^T, dS^T;
                     * this lane gives the address of row lane % 8 of matrix lane / 8 */
                    const int mi = lane >> 3, key_l = (mi & 1) * 8 + (lane & 7);
#pragma unroll
                    for (int m = 0; m < MA; m++)
#pragma unroll
                        for (int np = 0; np < NA / 2; np++) {
                            const uint32_t off = swz<PP>((kw * MA + m) * 16 + key_l, qw * QA / 8 + np * 2 + (mi >> 1));
                            uint32_t pv[4], dsv[4];
#pragma unroll
                            for (int i = 0; i < 4; i++) {
                                const int n = np * 2 + (i >> 1), hf = i & 1;
                                pv[i] = pack2<T>(acc_s[m][n][hf * 2], acc_s[m][n][hf * 2 + 1]);
                                dsv[i] = pack2<T>(acc_p[m][n][hf * 2], acc_p[m][n][hf * 2 + 1]);
                            }
                            stsm_x4(sP + off, pv[0], pv[1], pv[2], pv[3]);
                            stsm_x4(sS + off, dsv[0], dsv[1], dsv[2], dsv[3]);
                        }
                } else {
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

            /* Phase C: dQ += dS K for queries cq*MC*16.. x dims cd*DC.., added to the fp32 workspace.
             * Two m16 tiles a warp: each K fragment feeds two MMAs. */
            if (!a.deterministic) {
                float acc_q[MC][NC][4];
#pragma unroll
                for (int mt = 0; mt < MC; mt++)
#pragma unroll
                    for (int n = 0; n < NC; n++)
#pragma unroll
                        for (int e = 0; e < 4; e++) acc_q[mt][n][e] = 0.0f;
#pragma unroll
                for (int kk = 0; kk < BC / 16; kk++) {
                    uint32_t da[MC][4];
#pragma unroll
                    for (int mt = 0; mt < MC; mt++)
                        ldsm_x4_t(da[mt], sS + swz<PP>(kk * 16 + b_row, (cq * MC + mt) * 2 + b_col));
#pragma unroll
                    for (int dp = 0; dp < NC / 2; dp++) {
                        uint32_t kv[4];
                        ldsm_x4_t(kv, sK + swz<DP>(kk * 16 + v_row, cd * (DC / 8) + dp * 2 + v_col));
#pragma unroll
                        for (int mt = 0; mt < MC; mt++) {
                            mma16816<T>(acc_q[mt][2 * dp], da[mt], kv[0], kv[1]);
                            mma16816<T>(acc_q[mt][2 * dp + 1], da[mt], kv[2], kv[3]);
                        }
                    }
                }
                if (K::STAGE_DQ) {
                    /* stage the tile, then one coalesced 16-byte reduction per 4 dims */
#pragma unroll
                    for (int mt = 0; mt < MC; mt++)
#pragma unroll
                        for (int hf = 0; hf < 2; hf++)
#pragma unroll
                            for (int n = 0; n < NC; n++)
                                *(float2 *)(sQacc + ((cq * MC + mt) * 16 + g + hf * 8) * K::QP + cd * DC + n * 8 + 2 * t) =
                                    make_float2(acc_q[mt][n][hf * 2], acc_q[mt][n][hf * 2 + 1]);
                    __syncthreads();
                    const int64_t tok0 = a.varlen ? s.q0 + i0 : b * a.seqlen_q + i0;
                    constexpr int C4 = D / 4; /* float4 chunks a row */
                    if constexpr (THREADS % C4 == 0) {
                        /* a thread keeps its chunk; its rows and destination advance by constants */
                        constexpr int RSTEP = THREADS / C4;
                        const int c = threadIdx.x % C4, r0 = threadIdx.x / C4;
                        float *dst = a.dq_accum + ((tok0 + r0) * a.heads_q + h) * a.dq_pitch + c * 4;
                        const int64_t step = RSTEP * a.heads_q * a.dq_pitch;
                        if (c * 4 < dqk)
#pragma unroll
                            for (int r = r0; r < BR; r += RSTEP, dst += step)
                                if (r < n_rows) red_add4(dst, *(const float4 *)(sQacc + r * K::QP + c * 4));
                    } else {
                        for (int x = threadIdx.x; x < BR * C4; x += THREADS) {
                            const int r = x / C4, c = x % C4;
                            if (r < n_rows && c * 4 < dqk)
                                red_add4(a.dq_accum + ((tok0 + r) * a.heads_q + h) * a.dq_pitch + c * 4,
                                         *(const float4 *)(sQacc + r * K::QP + c * 4));
                        }
                    }
                } else {
                    /* straight from the accumulators: each pair of dims is one 8-byte reduction,
                     * a quad's four cover one 32-byte sector (head dims are multiples of 8) */
#pragma unroll
                    for (int mt = 0; mt < MC; mt++)
#pragma unroll
                        for (int hf = 0; hf < 2; hf++) {
                            const int r = (cq * MC + mt) * 16 + g + hf * 8;
                            if (r >= n_rows) continue;
                            const int64_t token = a.varlen ? s.q0 + i0 + r : b * a.seqlen_q + i0 + r;
                            float *dst = a.dq_accum + (token * a.heads_q + h) * a.dq_pitch;
#pragma unroll
                            for (int n = 0; n < NC; n++) {
                                const int d = cd * DC + n * 8 + 2 * t;
                                if (d < dqk) red_add2(dst + d, acc_q[mt][n][hf * 2], acc_q[mt][n][hf * 2 + 1]);
                            }
                        }
                }
            }
        }
        h = h_next, tile = tile_next;
    }
    cp_async_wait<0>();

    /* dV, and dK times the softmax scale, in the caller's dtype and layout. Where both have the
     * input type and 16-byte rows, staged in shared memory (the Q / dO buffers are free now) and
     * written as whole 16-byte chunks; otherwise element by element through the strides. */
    if (rows16_ok(a.dk, mfa_dtype_of<T>(), a.varlen) && rows16_ok(a.dv, mfa_dtype_of<T>(), a.varlen)) {
        static_assert(2 * BC <= 4 * BR, "dK and dV fit where Q and dO were");
        const uint32_t sdK = sQ0, sdV = sQ0 + BC * DP * 2;
        __syncthreads(); /* every warp is done with the last query tile */
#pragma unroll
        for (int m = 0; m < MB; m++)
#pragma unroll
            for (int hf = 0; hf < 2; hf++)
#pragma unroll
                for (int n = 0; n < NB; n++) {
                    const int key = (kb * MB + m) * 16 + g + hf * 8, d = dw * DB + n * 8;
                    const uint32_t off = swz<DP>(key, d / 8) + t * 4;
                    const uint32_t kv = pack2<T>(acc_dk[m][n][hf * 2] * a.scale, acc_dk[m][n][hf * 2 + 1] * a.scale);
                    const uint32_t vv = pack2<T>(acc_dv[m][n][hf * 2], acc_dv[m][n][hf * 2 + 1]);
                    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sdK + off), "r"(kv));
                    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sdV + off), "r"(vv));
                }
        __syncthreads();
        bwd_store_dkdv<T, D, BC, THREADS, false>(a, s, j0, hk, nk, sdK, sdV);
        return;
    }
#pragma unroll
    for (int m = 0; m < MB; m++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            const int key = (kb * MB + m) * 16 + g + hf * 8;
            if (key < nk) bwd_store_dkdv_row<NB>(a, s, j0, hk, key, dw * DB, acc_dk[m], acc_dv[m], hf, t);
        }
}

/* Threads that share one (token, head) row in the delta and dQ passes: a power of two <= 32
 * covering the row's 16-byte chunks. */
template <int D> __host__ __device__ constexpr int row_threads() { return D / 8 > 16 ? 32 : (D / 8 > 8 ? 16 : 8); }

/* The (token, head) row r of tokens x heads_q: its LSE/delta index and its element offset in t. */
struct RowAt {
    int64_t stat, elem;
};
__device__ __forceinline__ RowAt row_at(const Args &a, const mfa_cuda_tensor_t &t, int64_t r) {
    const int64_t token = r / a.heads_q, h = r % a.heads_q;
    if (a.varlen) return {h * a.seqlen_q + token, token * t.stride[1] + h * t.stride[2]};
    const int64_t b = token / a.seqlen_q, i = token % a.seqlen_q;
    return {(b * a.heads_q + h) * a.seqlen_q + i, b * t.stride[0] + i * t.stride[1] + h * t.stride[2]};
}

/* delta = rowsum(dO * O): row_threads<D> threads a row, 16 bytes (8 elements) each a step, then a
 * shuffle sum. dO and O: type T, unit-stride head dim, 16-byte rows (checked by the launcher).
 * Unless the backward is deterministic it also zeroes the row's dQ workspace, which the main
 * kernel adds into: one pass over the rows instead of a separate memset (H100, 16k tokens x
 * width 2048: 93 us, against 63 us for delta + 41 us for the memset before). */
template <typename T, int D> __global__ void __launch_bounds__(256) delta_kernel(const __grid_constant__ Args a) {
    constexpr int G = row_threads<D>();
    const int64_t rows = (a.varlen ? a.seqlen_q : a.batch * a.seqlen_q) * a.heads_q;
    const int64_t r = ((int64_t)blockIdx.x * 256 + threadIdx.x) / G;
    const int c0 = threadIdx.x % G;
    float sum = 0.0f;
    RowAt at{0, 0};
    if (r < rows) {
        at = row_at(a, a.o, r);
        const int64_t go = row_at(a, a.dout, r).elem;
        for (int c = c0; c < a.head_dim_v / 8; c += G) {
            const uint4 x = *(const uint4 *)((const T *)a.o.data + at.elem + c * 8);
            const uint4 y = *(const uint4 *)((const T *)a.dout.data + go + c * 8);
            const uint32_t xs[4] = {x.x, x.y, x.z, x.w}, ys[4] = {y.x, y.y, y.z, y.w};
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const float2 u = unpack2<T>(xs[e]), v = unpack2<T>(ys[e]);
                sum = fmaf(u.x, v.x, fmaf(u.y, v.y, sum));
            }
        }
    }
#pragma unroll
    for (int o = G / 2; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    if (r < rows && c0 == 0) a.delta[at.stat] = sum;
    if (r < rows && !a.deterministic) {
        float *z = a.dq_accum + r * a.dq_pitch; /* the workspace starts 256-byte aligned */
        if (a.dq_pitch % 4 == 0)
            for (int c = c0; c < a.dq_pitch / 4; c += G) ((float4 *)z)[c] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        else
            for (int c = c0; c < a.dq_pitch; c += G) z[c] = 0.0f;
    }
}

/* dq = scale * dq_accum into the caller's 16-bit dQ: row_threads<D> threads a row, 8 elements
 * each a step. dQ: unit-stride head dim, 16-byte rows (checked by the launcher). */
template <int D> __global__ void __launch_bounds__(256) dq_convert_rows(const __grid_constant__ Args a) {
    constexpr int G = row_threads<D>();
    const int64_t rows = (a.varlen ? a.seqlen_q : a.batch * a.seqlen_q) * a.heads_q;
    const int64_t r = ((int64_t)blockIdx.x * 256 + threadIdx.x) / G;
    if (r >= rows) return;
    const int64_t to = row_at(a, a.dq, r).elem;
    const float *src = a.dq_accum + r * a.dq_pitch;
    for (int c = threadIdx.x % G; c < a.head_dim_qk / 8; c += G) {
        const float4 x = *(const float4 *)(src + c * 8), y = *(const float4 *)(src + c * 8 + 4);
        const float f[8] = {x.x, x.y, x.z, x.w, y.x, y.y, y.z, y.w};
        uint32_t w[4];
#pragma unroll
        for (int e = 0; e < 4; e++)
            w[e] = a.dq.dtype == MFA_DTYPE_BF16 ? pack2<__nv_bfloat16>(f[2 * e] * a.scale, f[2 * e + 1] * a.scale)
                                                : pack2<__half>(f[2 * e] * a.scale, f[2 * e + 1] * a.scale);
        *(uint4 *)((char *)a.dq.data + (to + c * 8) * 2) = make_uint4(w[0], w[1], w[2], w[3]);
    }
}

/* The same for any dQ layout and dtype: one thread an element. (static: this header is compiled
 * into every instantiation file.) */
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

/* The backward's passes: zero the dQ workspace, delta, the main kernel (main_fn: BC keys a block,
 * `threads` threads, `smem` bytes of dynamic shared memory), dQ into the caller's dtype. */
template <typename T, int D>
cudaError_t launch_passes(const Args &a, cudaStream_t stream, const void *main_fn, int bc, int threads, size_t smem) {
    const int64_t tokens = a.varlen ? a.seqlen_q : a.batch * a.seqlen_q;
    const unsigned row_blocks = (unsigned)((tokens * a.heads_q * row_threads<D>() + 255) / 256);
    void *args_v[] = {(void *)&a};
    cudaError_t e = cudaSuccess;
    /* dO already has the fast layout (dispatch); O is the caller's forward output. The fast delta
     * kernel zeroes the dQ workspace too; the other path needs the memset. */
    const bool vec = tokens > 0 && rows16_ok(a.o, mfa_dtype_of<T>(), a.varlen);
    if (!a.deterministic && !vec)
        e = cudaMemsetAsync(a.dq_accum, 0, sizeof(float) * (size_t)(tokens * a.heads_q * a.dq_pitch), stream);
    if (e == cudaSuccess && tokens > 0)
        e = vec ? cudaLaunchKernel((const void *)delta_kernel<T, D>, dim3(row_blocks), dim3(256), args_v, 0, stream)
                : mfa_cuda_bwd_delta(&a, stream, false);
    if (e == cudaSuccess) e = mfa_launch(main_fn, a.batch * a.heads_kv * ((a.max_sk + bc - 1) / bc), threads, smem, a, stream);
    if (e == cudaSuccess && !a.deterministic && tokens > 0) {
        if (a.dq.dtype != MFA_DTYPE_F32 && rows16_ok(a.dq, a.dq.dtype, a.varlen)) {
            e = cudaLaunchKernel((const void *)dq_convert_rows<D>, dim3(row_blocks), dim3(256), args_v, 0, stream);
        } else {
            const int64_t n = tokens * a.heads_q * a.head_dim_qk;
            const unsigned grid = (unsigned)min((n + 255) / 256, (int64_t)65535 * 16);
            e = cudaLaunchKernel((const void *)dq_convert, dim3(grid), dim3(256), args_v, 0, stream);
        }
    }
    return e;
}

template <typename T, int D> cudaError_t launch(const Args &a, cudaStream_t stream) {
    using K = Bwd<T, D>;
    return launch_passes<T, D>(a, stream, (const void *)bwd_kernel<T, D>, K::BC, K::THREADS, K::SMEM);
}

} // namespace mfa_bwd

#define MFA_BWD_INSTANTIATE(T, D) template cudaError_t mfa_bwd::launch<T, D>(const Args &, cudaStream_t);

#endif
