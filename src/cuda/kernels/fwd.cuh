/* fwd.cuh — the tensor-core forward: FlashAttention-2 (Dao 2023) with mma.sync m16n8k16,
 * ldmatrix and cp.async, for f16/bf16 q/k/v with unit-stride head dims.
 *
 * One block computes BR query rows of one (batch, q head); warp w owns rows [w*RW, (w+1)*RW).
 * For each key tile j (BC keys) that the masks leave, in shared memory:
 *     S = Q K_j^T                        (fp32 accumulators, registers)
 *     S <- softcap / bias / masks        (only on tiles that need it)
 *     m' = max(m, rowmax S);  P = 2^(S log2e scale - m' log2e scale)
 *     O = O 2^(m - m') + P V_j;  l = l 2^(m - m') + rowsum P      (online softmax)
 * and at the end O / l goes out in the output's dtype and m + log l is the LSE. P is rounded to
 * the input type once, for the PV product; every sum stays fp32.
 * Loads overlap compute: V_j is fetched while S = Q K_j^T runs, K_{j+1} while P V_j runs.
 * Tiles outside the causal/window range are never visited. (Block-sparse maps run on the
 * generic path for now.) Rows and head dims past the problem's are zero-filled by cp.async, so they
 * add nothing; a head dim is padded to the instantiated D (any multiple of 8 up to D).
 * Template: T (__half / __nv_bfloat16), D (instantiated head dim), tiles from tile-sizes.h. */
#ifndef MFA_CUDA_FWD_CUH
#define MFA_CUDA_FWD_CUH

#include <cuda_runtime.h>

#include "../ptx.cuh"
#include "../tile-sizes.h"
#include "common.cuh"
#include "softmax.cuh"
#include "tile.cuh"

namespace mfa_fwd {

template <typename T, int D> struct Fwd {
    static constexpr int BR = FwdTile<D>::BR, BC = FwdTile<D>::BC, WARPS = FwdTile<D>::WARPS;
    static constexpr int THREADS = WARPS * 32;
    static constexpr int DP = (D + 63) / 64 * 64; /* smem row pitch in elements */
    static constexpr int RW = BR / WARPS;          /* rows per warp */
    static constexpr int MT = RW / 16;             /* m16 tiles per warp */
    static constexpr int NT = BC / 8;              /* n8 tiles of S */
    static constexpr int DT = D / 8;               /* n8 tiles of O */
    static constexpr int KQ = D / 16;              /* k16 steps of Q K^T */
    static constexpr int KV = BC / 16;             /* k16 steps of P V */
    static constexpr size_t SMEM = (size_t)(BR + 2 * BC) * DP * sizeof(T);
    static_assert(D % 16 == 0 && RW % 16 == 0 && BC % 16 == 0, "tile shapes");
};

template <typename T, int D>
__global__ void __launch_bounds__(Fwd<T, D>::THREADS, FwdTile<D>::MINB) fwd_kernel(const __grid_constant__ Args a) {
    using K = Fwd<T, D>;
    constexpr int BR = K::BR, BC = K::BC, THREADS = K::THREADS, DP = K::DP, RW = K::RW;
    constexpr int MT = K::MT, NT = K::NT, DT = K::DT, KQ = K::KQ, KV = K::KV;
    extern __shared__ __align__(128) char smem[];
    const uint32_t sQ = smem_u32(smem), sK = sQ + BR * DP * 2, sV = sK + BC * DP * 2;

    const FwdBlock blk = mfa_fwd_block(a, BR, FwdTile<D>::MINB);
    const int64_t b = blk.b, h = blk.h, hk = h / a.group, i0 = blk.i0;
    const Seq s = mfa_seq(a, b);
    if (i0 >= s.sq) return;
    const int n_rows = (int)min((int64_t)BR, s.sq - i0);
    const FwdKeys keys(a, s, i0, n_rows);

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const T *q = (const T *)a.q.data + s.tb * a.q.stride[0] + (s.q0 + i0) * a.q.stride[1] + h * a.q.stride[2];
    const T *kg = (const T *)a.k.data + s.tb * a.k.stride[0] + s.k0 * a.k.stride[1] + hk * a.k.stride[2];
    const T *vg = (const T *)a.v.data + s.tb * a.v.stride[0] + s.k0 * a.v.stride[1] + hk * a.v.stride[2];
    const int dqk = (int)a.head_dim_qk, dv = (int)a.head_dim_v;

    /* Key tiles (BC keys each) j in [j, j_end); the block-sparse map takes the generic path. */
    int64_t j, j_end;
    keys.tiles(BC, j, j_end);

    load_tile<T, D, BR, THREADS>(sQ, q, a.q.stride[1], n_rows, dqk, (const T *)a.q.data);
    cp_async_commit();
    if (j < j_end) {
        const int64_t j0 = j * BC;
        load_tile<T, D, BC, THREADS>(sK, kg + j0 * a.k.stride[1], a.k.stride[1], (int)min((int64_t)BC, s.sk - j0), dqk,
                                     (const T *)a.k.data);
    }
    cp_async_commit();

    float acc_o[MT][DT][4];
    float row_m[MT][2], row_l[MT][2]; /* running max (score units) and this thread's partial sum */
#pragma unroll
    for (int mt = 0; mt < MT; mt++) fwd_rows_start<DT>(acc_o[mt], row_m[mt], row_l[mt]);

    /* Scores become base-2 logits: with softcap or a dense bias they are transformed first
     * (then already in log2 units), otherwise scale * log2(e) is folded into the exponent. */
    const bool xform = a.softcap > 0.0f || a.mask.data != nullptr;
    const float sl2 = xform ? 1.0f : a.scale_log2;
    const int row0 = warp * RW; /* first row of this warp in the tile */

    /* Per-lane ldmatrix coordinates (see ptx.cuh for the fragment layouts). */
    const int a_row = (lane & 7) + ((lane >> 3) & 1) * 8, a_col = lane >> 4;     /* Q (A, row-major) */
    const int b_row = (lane & 7) + (lane >> 4) * 8, b_col = (lane >> 3) & 1;     /* K (B, n-major) */
    const int v_row = (lane & 7) + ((lane >> 3) & 1) * 8, v_col = lane >> 4;     /* V (B, transposed) */

    while (j < j_end) {
        const int64_t j0 = j * BC;
        const int nk = (int)min((int64_t)BC, s.sk - j0);
        cp_async_wait<0>();
        __syncthreads(); /* K_j (and Q) landed; every warp is done with V_{j-1} */
        load_tile<T, D, BC, THREADS>(sV, vg + j0 * a.v.stride[1], a.v.stride[1], nk, dv, (const T *)a.v.data);
        cp_async_commit();

        /* S = Q K^T */
        float acc_s[MT][NT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) acc_s[mt][nt][e] = 0.0f;
#pragma unroll
        for (int ks = 0; ks < KQ; ks++) {
            uint32_t qa[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) ldsm_x4(qa[mt], sQ + swz<DP>(row0 + mt * 16 + a_row, ks * 2 + a_col));
#pragma unroll
            for (int np = 0; np < NT / 2; np++) {
                uint32_t kb[4];
                ldsm_x4(kb, sK + swz<DP>(np * 16 + b_row, ks * 2 + b_col));
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816<T>(acc_s[mt][2 * np], qa[mt], kb[0], kb[1]);
                    mma16816<T>(acc_s[mt][2 * np + 1], qa[mt], kb[2], kb[3]);
                }
            }
        }

        /* Transform and mask, only where needed; then the online softmax (softmax.cuh). */
        const bool need_mask = keys.needs_mask(s, j0, BC);
        if (xform || need_mask)
#pragma unroll
            for (int mt = 0; mt < MT; mt++) fwd_mask_scores<NT>(a, acc_s[mt], s, b, h, i0 + row0 + mt * 16 + g, j0, t, xform);
        uint32_t pa[MT][KV][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++) fwd_softmax_step<T, NT, DT>(acc_s[mt], row_m[mt], row_l[mt], pa[mt], acc_o[mt], sl2);

        cp_async_wait<0>();
        __syncthreads(); /* V_j landed; every warp is done with K_j */
        j++;
        if (j < j_end) {
            const int64_t jn = j * BC;
            load_tile<T, D, BC, THREADS>(sK, kg + jn * a.k.stride[1], a.k.stride[1], (int)min((int64_t)BC, s.sk - jn), dqk,
                                         (const T *)a.k.data);
        }
        cp_async_commit();

        /* O += P V */
#pragma unroll
        for (int kk = 0; kk < KV; kk++)
#pragma unroll
            for (int dp = 0; dp < DT / 2; dp++) {
                uint32_t vb[4];
                ldsm_x4_t(vb, sV + swz<DP>(kk * 16 + v_row, dp * 2 + v_col));
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816<T>(acc_o[mt][2 * dp], pa[mt][kk], vb[0], vb[1]);
                    mma16816<T>(acc_o[mt][2 * dp + 1], pa[mt][kk], vb[2], vb[3]);
                }
            }
    }
    cp_async_wait<0>();

    /* Epilogue: O / l in the output dtype, LSE = m + log l (natural log). When o has the input
     * type and 16-byte rows, each warp stages its rows in its own part of the Q tile (only it read
     * them) and writes whole 16-byte chunks; otherwise element by element through the strides. */
    const bool vec_o = rows16_ok(a.o, mfa_dtype_of<T>(), a.varlen);
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            const int r = row0 + mt * 16 + g + hf * 8;
            const float inv = fwd_finish_row(a, s, b, h, i0 + r, r < n_rows, row_m[mt][hf], row_l[mt][hf], sl2, t);
            if (vec_o) {
#pragma unroll
                for (int dt = 0; dt < DT; dt++) {
                    const uint32_t v = pack2<T>(acc_o[mt][dt][hf * 2] * inv, acc_o[mt][dt][hf * 2 + 1] * inv);
                    asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sQ + swz<DP>(r, dt) + t * 4), "r"(v));
                }
            } else if (r < n_rows) {
                fwd_store_row_direct<DT>(a, s, h, i0 + r, acc_o[mt], hf, inv, t);
            }
        }
    if (vec_o) fwd_store_rows<T, D, RW, 0>(a, s, h, i0, n_rows, row0, sQ, lane);
}

/* Host side: launch one instantiation. */
template <typename T, int D> cudaError_t launch(const Args &a, cudaStream_t stream) {
    using K = Fwd<T, D>;
    return mfa_launch((const void *)fwd_kernel<T, D>, a.batch * a.heads_q * ((a.max_sq + K::BR - 1) / K::BR), K::THREADS,
                      K::SMEM, a, stream);
}

} // namespace mfa_fwd

#define MFA_FWD_INSTANTIATE(T, D) template cudaError_t mfa_fwd::launch<T, D>(const Args &, cudaStream_t);

#endif
