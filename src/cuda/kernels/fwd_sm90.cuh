/* fwd_sm90.cuh — the Hopper forward: fwd.cuh's algorithm with the products on wgmma (sm_90a).
 *
 * A block of two warpgroups computes BR = 128 query rows of one (batch, q head); warpgroup w owns
 * rows 64w..64w+63 and, per key tile j:
 *     S = Q K_j^T      wgmma, Q and K_j straight from shared memory (no ldmatrix, no registers)
 *     mask, online softmax (softmax.cuh: the accumulators have mma.sync's C layout)
 *     O += P V_j       wgmma, P from registers (C fragments are A fragments), V_j from shared
 *                      memory read transposed by the descriptor
 * Tiles sit in shared memory in the 128-byte swizzle layout (ptx.cuh pnl: 64-column panels);
 * K_{j+1}, V_{j+1} load by cp.async into the second stage while tile j computes: at d128 / d256
 * (PRODUCER) by a third warpgroup, with mbarriers between it and the two that compute (see the
 * kernel), else by all threads around one block-wide barrier a tile. Everything else
 * (masks, softcap, dense bias, GQA, varlen, LSE, outputs) is fwd.cuh's, through the same helpers.
 * Compiled for sm_90a only (MFA_HAS_WGMMA); the dispatcher calls it on compute capability 9.0. */
#ifndef MFA_CUDA_FWD_SM90_CUH
#define MFA_CUDA_FWD_SM90_CUH

#include <cuda_runtime.h>

#include "../ptx.cuh"
#include "../tile-sizes.h"
#include "../wgmma.cuh"
#include "common.cuh"
#include "softmax.cuh"
#include "tile.cuh"

namespace mfa_fwd90 {

template <typename T, int D> struct Fwd90 {
    /* THREADS: the two warpgroups that compute; with PRODUCER a third loads Q, K and V */
    static constexpr int BR = Fwd90Tile<D>::BR, BC = Fwd90Tile<D>::BC, THREADS = BR / 16 * 32;
    static constexpr bool PRODUCER = Fwd90Tile<D>::PRODUCER;
    static constexpr int LOADERS = PRODUCER ? 128 : THREADS, BLOCK_THREADS = THREADS + (PRODUCER ? 128 : 0);
    /* setmaxnreg: the launch gives each thread 65536 / (BLOCK_THREADS MINB) registers (a multiple
     * of 8: 168 at 384 threads, one block an SM); the producer keeps few, the others share the rest */
    static constexpr int LAUNCH_REGS = 65536 / (BLOCK_THREADS * Fwd90Tile<D>::MINB) / 8 * 8;
    static constexpr int LOAD_REGS = 24, MMA_REGS = (3 * LAUNCH_REGS - LOAD_REGS) / 2 / 8 * 8;
    static constexpr int NT = BC / 8, DT = D / 8, KQ = D / 16, KV = BC / 16;
    static constexpr uint32_t Q_BYTES = BR * D * 2, T_BYTES = BC * D * 2; /* Q; one K or V tile */
    /* producer: mbarriers Q full, [K | V] stage full (x2), stage empty (x2) */
    static constexpr uint32_t BAR_BYTES = PRODUCER ? 40 : 0;
    /* Q, then two stages of [K | V]; 1 KiB of slack to align the swizzle's 8-row groups */
    static constexpr size_t SMEM = Q_BYTES + 4 * T_BYTES + BAR_BYTES + 1024;
    static_assert(D % 64 == 0 && BR == 128 && BC % 16 == 0 && 2 * BC >= BR, "tile shapes");
};

template <typename T, int D>
__global__ void __launch_bounds__(Fwd90<T, D>::BLOCK_THREADS, Fwd90Tile<D>::MINB) fwd90_kernel(const __grid_constant__ Args a) {
#if MFA_HAS_WGMMA
    using K = Fwd90<T, D>;
    constexpr int BR = K::BR, BC = K::BC, THREADS = K::THREADS, NT = K::NT, DT = K::DT, KQ = K::KQ, KV = K::KV;
    extern __shared__ __align__(1024) char smem[];
    const uint32_t sQ = (smem_u32(smem) + 1023) & ~1023u, sKV = sQ + K::Q_BYTES; /* stage st: sKV + st * 2 T_BYTES */

    const FwdBlock blk = mfa_fwd_block(a, BR, Fwd90Tile<D>::MINB);
    const int64_t b = blk.b, h = blk.h, hk = h / a.group, i0 = blk.i0;
    const Seq s = mfa_seq(a, b);
    if (i0 >= s.sq) return;
    const int n_rows = (int)min((int64_t)BR, s.sq - i0);
    const FwdKeys keys(a, s, i0, n_rows);

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3, wg = warp >> 2;
    const int row0 = warp * 16; /* this warp's rows in the tile (warpgroup wg: 64wg..) */
    const T *q = (const T *)a.q.data + s.tb * a.q.stride[0] + (s.q0 + i0) * a.q.stride[1] + h * a.q.stride[2];
    const T *kg = (const T *)a.k.data + s.tb * a.k.stride[0] + s.k0 * a.k.stride[1] + hk * a.k.stride[2];
    const T *vg = (const T *)a.v.data + s.tb * a.v.stride[0] + s.k0 * a.v.stride[1] + hk * a.v.stride[2];
    const int dqk = (int)a.head_dim_qk, dv = (int)a.head_dim_v;
    constexpr int LOADERS = K::LOADERS;
    const int tid = K::PRODUCER ? (int)threadIdx.x - THREADS : (int)threadIdx.x; /* among the loaders */
    auto load_kv = [&](int64_t jt, uint32_t stage) {
        const int64_t j0 = jt * BC;
        const int nk = (int)min((int64_t)BC, s.sk - j0);
        load_tile<T, D, BC, LOADERS, true>(stage, kg + j0 * a.k.stride[1], a.k.stride[1], nk, dqk, (const T *)a.k.data, tid);
        load_tile<T, D, BC, LOADERS, true>(stage + K::T_BYTES, vg + j0 * a.v.stride[1], a.v.stride[1], nk, dv,
                                           (const T *)a.v.data, tid);
    };

    const int64_t j_end = (keys.hi + BC - 1) / BC;
    int64_t j = keys.lo < keys.hi ? keys.lo / BC : j_end;
    /* producer: Q full, stage st full at bars + 8 + 8 st, empty at bars + 24 + 8 st */
    const uint32_t bars = sKV + 4 * K::T_BYTES;
    if constexpr (K::PRODUCER) {
        /* The producer warpgroup loads Q once and then K, V tile by tile into the stage the
         * computing warpgroups last released, and each tile's arrival is an mbarrier phase: the
         * two computing warpgroups meet neither the producer nor each other, so one's softmax
         * can run under the other's products. */
        if (threadIdx.x == 0) {
            mbar_init(bars, LOADERS);
            for (int st = 0; st < 2; st++) mbar_init(bars + 8 + 8 * st, LOADERS), mbar_init(bars + 24 + 8 * st, THREADS);
        }
        __syncthreads();
        if (wg == 2) {
            regs_dec<K::LOAD_REGS>();
            load_tile<T, D, BR, LOADERS, true>(sQ, q, a.q.stride[1], n_rows, dqk, (const T *)a.q.data, tid);
            cp_async_mbar_arrive(bars);
            for (int n = 0; j < j_end; n++, j++) {
                const int st = n & 1;
                mbar_wait(bars + 24 + 8 * st, ((n >> 1) & 1) ^ 1); /* both warpgroups are done with it */
                load_kv(j, sKV + st * 2 * K::T_BYTES);
                cp_async_mbar_arrive(bars + 8 + 8 * st);
            }
            cp_async_commit(); /* with the wait: cp.async.wait_all, so no copy is in flight when it exits */
            cp_async_wait<0>();
            return;
        }
        regs_inc<K::MMA_REGS>();
        mbar_wait(bars, 0); /* Q landed */
    } else {
        load_tile<T, D, BR, THREADS, true>(sQ, q, a.q.stride[1], n_rows, dqk, (const T *)a.q.data);
        if (j < j_end) load_kv(j, sKV);
        cp_async_commit();
    }

    float acc_o[DT][4];
#pragma unroll
    for (int dt = 0; dt < DT; dt++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc_o[dt][e] = 0.0f;
    float row_m[2] = {-INFINITY, -INFINITY}, row_l[2] = {0.0f, 0.0f};
    const bool xform = a.softcap > 0.0f || a.mask.data != nullptr;
    const float sl2 = xform ? 1.0f : a.scale_log2;

    uint32_t st = 0; /* the stage holding tile j */
    for (int n = 0; j < j_end; n++) {
        const int64_t j0 = j * BC;
        if constexpr (K::PRODUCER) {
            mbar_wait(bars + 8 + 8 * st, (n >> 1) & 1); /* tile j landed */
            fence_proxy_async(); /* cp.async wrote through the generic proxy; wgmma reads through the async one */
        } else {
            cp_async_wait<0>();
            fence_proxy_async(); /* cp.async wrote through the generic proxy; wgmma reads through the async one */
            __syncthreads();     /* tile j landed; every warpgroup is done with tile j - 1 (the other stage) */
            if (j + 1 < j_end) load_kv(j + 1, sKV + (st ^ 1) * 2 * K::T_BYTES);
            cp_async_commit();
        }
        const uint32_t sK = sKV + st * 2 * K::T_BYTES, sV = sK + K::T_BYTES;

        /* S = Q K^T: k16 step ks reads 32 bytes into each 128-byte row of panel ks / 4 */
        float acc_s[NT][4];
        wgmma_fence();
#pragma unroll
        for (int ks = 0; ks < KQ; ks++) {
            const uint32_t col = (ks & 3) * 32;
            const uint64_t da = wgmma_desc(sQ + (ks >> 2) * BR * 128 + wg * 64 * 128 + col, 16, 1024);
            const uint64_t db = wgmma_desc(sK + (ks >> 2) * BC * 128 + col, 16, 1024);
            Wgmma<T, BC>::ss(acc_s, da, db, ks > 0);
        }
        wgmma_commit();
        wgmma_wait<0>();
        wgmma_fence_regs(acc_s);

        const bool need_mask = keys.needs_mask(s, j0, BC);
        if (xform || need_mask) fwd_mask_scores<NT>(a, acc_s, s, b, h, i0 + row0 + g, j0, t, xform);
        uint32_t pa[KV][4];
        fwd_softmax_step<T, NT, DT>(acc_s, row_m, row_l, pa, acc_o, sl2);

        /* O += P V: k16 step kk is keys 16kk.. (two 8-row groups); the D columns span D / 64 panels */
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < KV; kk++)
            Wgmma<T, D>::rs(acc_o, pa[kk], wgmma_desc(sV + kk * 16 * 128, BC * 128, 1024), true);
        wgmma_commit();
        wgmma_wait<0>();
        wgmma_fence_regs(acc_o);
        if constexpr (K::PRODUCER) mbar_arrive(bars + 24 + 8 * st); /* this warpgroup is done with the stage */
        st ^= 1;
        j++;
    }
    cp_async_wait<0>();

    /* Epilogue: as fwd.cuh's, staged in the stage no warpgroup reads any more (stage st: its last
     * reader finished before the last iteration's barrier; nothing loads into it); with the
     * producer, in the warpgroup's own rows of Q, which only its own products read. */
    const uint32_t sO = K::PRODUCER ? sQ : sKV + st * 2 * K::T_BYTES;
    const bool vec_o = rows16_ok(a.o, mfa_dtype_of<T>(), a.varlen);
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        const int r = row0 + g + hf * 8;
        const float inv = fwd_finish_row(a, s, b, h, i0 + r, r < n_rows, row_m[hf], row_l[hf], sl2, t);
        if (vec_o) {
#pragma unroll
            for (int dt = 0; dt < DT; dt++) {
                const uint32_t v = pack2<T>(acc_o[dt][hf * 2] * inv, acc_o[dt][hf * 2 + 1] * inv);
                asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sO + pnl<BR>(r, dt) + t * 4), "r"(v));
            }
        } else if (r < n_rows) {
            const int64_t at = mfa_at(a.o, s.tb, s.q0 + i0 + r, h, 0);
#pragma unroll
            for (int dt = 0; dt < DT; dt++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int d = dt * 8 + 2 * t + e;
                    if (d < dv) mfa_st(a.o.data, a.o.dtype, at + d * a.o.stride[3], acc_o[dt][hf * 2 + e] * inv);
                }
        }
    }
    if (vec_o) fwd_store_rows<T, D, 16, BR>(a, s, h, i0, n_rows, row0, sO, lane);
#else
    (void)a;
#endif
}

template <typename T, int D> cudaError_t launch(const Args &a, cudaStream_t stream) {
    using K = Fwd90<T, D>;
    return mfa_launch((const void *)fwd90_kernel<T, D>, a.batch * a.heads_q * ((a.max_sq + K::BR - 1) / K::BR),
                      K::BLOCK_THREADS, K::SMEM, a, stream);
}

} // namespace mfa_fwd90

#define MFA_FWD90_INSTANTIATE(T, D) template cudaError_t mfa_fwd90::launch<T, D>(const Args &, cudaStream_t);

#endif
