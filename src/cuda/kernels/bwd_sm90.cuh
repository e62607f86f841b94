/* bwd_sm90.cuh — the Hopper backward: bwd.cuh's algorithm with the products on wgmma (sm_90a).
 *
 * A block owns BC keys of one (batch, kv head) and walks the query tiles (BR rows, every q head of
 * the GQA group; bwd_walk.cuh) that see them, keeping the keys' dK, dV in registers. Two ways to
 * share that among the warpgroups (tile-sizes.h):
 *
 * Key split (d64, d128): warpgroup w owns keys 64w..64w+63. Per tile:
 *   A  S^T = K_w Q^T, dP^T = V_w dO^T      wgmma, all operands in shared memory; two commit
 *                                           groups, so P^T and dV's product start before dP^T ends
 *      P^T = 2^(S^T scale log2e - lse log2e), dS^T = P^T (dP^T - delta)      (registers)
 *   B  dV_w += P^T dO, dK_w += dS^T Q      wgmma, P^T / dS^T from registers (their C layout is
 *                                           the A layout), dO / Q read transposed by descriptor
 *      dS^T -> shared memory as dS (stmatrix .trans), while B runs
 *   C  dQ = dS K                            wgmma from shared memory into the fp32 workspace,
 *                                           by a third warpgroup (below)
 * Dim split (d256: dK and dV of 64 keys would take 256 registers a thread): BC = BR = 64;
 * warpgroup w computes S^T, dP^T for queries 32w.. of all 64 keys, writes P^T, dS^T and dS to
 * shared memory, and after a barrier takes dims 128w.. of dV, dK and dQ, all three products with
 * both operands in shared memory.
 *
 * Dim split: two barriers a tile, the tile landed (and the last tile is done with the buffers),
 * and P^T, dS^T, dS are complete. Key split: the first only at d64, none at d128 (below).
 *
 * The dQ warpgroup: phase C is a fifth of the tile's products plus the reductions, and with
 * both key warpgroups waiting for it the tensor cores idled through every softmax. A third
 * warpgroup takes it: the key warpgroups write dS into one of two buffers and arrive on its
 * `full` mbarrier; the dQ warpgroup computes dQ = dS K, arrives on `empty`, and adds the rows into
 * the workspace by bulk reductions while the key warpgroups are already on the next tile. At d128
 * it also loads their query tiles (Q, dO, lse, delta), two tiles ahead of its own dQ, through
 * mbarriers (full: the copies landed; free: both key warpgroups are done with the buffers), so
 * the key warpgroups issue no copies after K and V and never meet each other in the loop; at d64
 * they load each tile's halves themselves and meet at a named barrier every tile (DQ_LOADS).
 * setmaxnreg moves registers to the key warpgroups (d64 216, d128 224; the dQ warpgroup keeps
 * 64 for a 64 x 64 accumulator, or 56 for 64 x 32 and the loads). At d128 the key warpgroups
 * fit 224 only with phase A's P^T and dS^T made in one pass (ONE_PASS). (Before it, the two key warpgroups queued phase C
 * behind B themselves and met at a second barrier once dS was complete: docs/cuda.md.)
 *
 * Tiles use the 128-byte swizzle panel layout (ptx.cuh pnl). The passes around the kernel
 * (delta, dQ conversion) are bwd.cuh's. Compiled for sm_90a only (MFA_HAS_WGMMA). */
#ifndef MFA_CUDA_BWD_SM90_CUH
#define MFA_CUDA_BWD_SM90_CUH

#include <cuda_runtime.h>

#include "../ptx.cuh"
#include "../tile-sizes.h"
#include "../wgmma.cuh"
#include "bwd.cuh"
#include "bwd_walk.cuh"
#include "common.cuh"
#include "tile.cuh"

namespace mfa_bwd90 {

template <typename T, int D> struct Bwd90 {
    static constexpr int BC = Bwd90Tile<D>::BC, BR = Bwd90Tile<D>::BR;
    static constexpr bool DIM_SPLIT = Bwd90Tile<D>::DIM_SPLIT;
    /* key split: a third warpgroup takes phase C (dQ = dS K and its reductions) off the two that
     * own the keys, through a double-buffered dS and mbarriers */
    static constexpr bool DQ_WG = !DIM_SPLIT;
    /* two warpgroups: key split, 64 keys each (BC = 128); dim split, D / 2 dims of all BC = 64 keys;
     * THREADS of them load K and V (and the query tiles, but where DQ_LOADS); BLOCK_THREADS with
     * the dQ warpgroup */
    static constexpr int THREADS = 256, BLOCK_THREADS = DQ_WG ? 384 : 256;
    /* registers a thread after setmaxnreg (the launch gives 168 to each of 384 threads, the pool
     * the three share): the dQ warpgroup holds one 64 x DQ_N fp32 accumulator (ptxas needs more
     * than 56 registers for it at DQ_N = 64), and at d128 the loads' place in the walk (56, what
     * the pool leaves once the key warpgroups have the 224 they need) */
    /* the dQ warpgroup also loads the key warpgroups' query tiles at d128 (+1-5 % fwd+bwd, window
     * +4 %, H100); at d64 that measured 1-3 % slower, so there the key warpgroups load them */
    static constexpr bool DQ_LOADS = DQ_WG && D >= 128;
    static constexpr int DQ_N = D >= 128 ? 32 : 64, DQ_REGS = DQ_N == 32 ? 56 : 64;
    static constexpr int MAIN_REGS = (3 * 168 - DQ_REGS) / 2 / 8 * 8;
    /* d128 with the dQ warpgroup: P^T and dS^T in one pass after both products (see phase A),
     * which fits the 224 registers; d64 keeps the two-pass order, 3-7 % faster there (H100) */
    static constexpr bool ONE_PASS = DQ_WG && D >= 128;
    /* each tile's key ranges from three values found once (BwdTileKeys); d128 keeps one (BwdTileDiag) */
    static constexpr bool TILE_KEYS = !ONE_PASS;
    static_assert(!DQ_WG || 2 * MAIN_REGS + DQ_REGS <= 3 * 168, "register pool");
    static constexpr int DW = DIM_SPLIT ? D / 2 : D; /* dK / dV dims a warpgroup holds */
    static constexpr int NQ = BR / 8, DT = DW / 8, KQ = D / 16, KB = BR / 16;
    /* phase C, dQ = dS K over all BC keys: the dQ warpgroup takes all D dims; the dim split's
     * warpgroups a half each */
    static constexpr int NC = DQ_WG ? D : D / 2;
    static constexpr uint32_t K_BYTES = BC * D * 2, Q_BYTES = BR * D * 2, S_BYTES = BR * BC * 2;
    /* K, V; Q, dO twice; dS (dim split: also P^T and dS^T); lse and delta twice; 1 KiB of slack
     * to align the 8-row groups */
    static constexpr int S_TILES = DIM_SPLIT ? 3 : 2;
    /* key split: the dQ warpgroup's BR rows of D floats staged for the bulk reductions, rows
     * padded by 16 bytes (the C fragments' stores then meet at most two to a bank) */
    static constexpr int DQP = NC + 4;
    static constexpr uint32_t DQ_BYTES = DQ_WG ? BR * DQP * 4 : 0;
    /* dQ warpgroup: mbarriers (8 bytes each, two of a kind, [buf]) dS full (256 arrivals: the key
     * warpgroups) and empty (128: the dQ warpgroup), and with DQ_LOADS Q / dO full (128: the dQ
     * warpgroup's copies) and free (256); their offsets from the first */
    static constexpr uint32_t DS_FULL = 0, DS_EMPTY = 16, QO_FULL = 32, QO_FREE = 48;
    static constexpr uint32_t BAR_BYTES = DQ_LOADS ? 64 : DQ_WG ? 32 : 0;
    static constexpr size_t SMEM =
        2 * K_BYTES + 4 * Q_BYTES + S_TILES * S_BYTES + 4 * BR * sizeof(float) + DQ_BYTES + BAR_BYTES + 1024;
    static_assert(D % 64 == 0 && NC % 64 == 0 && 2 * K_BYTES <= 4 * Q_BYTES &&
                      (DIM_SPLIT ? BC == 64 && BR == 64 : BC == 128 && BR == 64),
                  "tile shapes");
};

/* The dQ warpgroup (key split): per query tile of the walk, waits for dS[buf], computes dQ = dS K
 * in 64 x DQ_N blocks, frees dS[buf], stages the rows in shared memory and adds them into the
 * workspace with one bulk reduction a row, a tile behind the key warpgroups. With DQ_LOADS it
 * also loads their query tiles, walking the tiles a second time two tiles ahead of its own dQ
 * (Q, dO, lse, delta of tile n + 2 go into tile n's buffers once both key warpgroups are done with
 * it, QO_FREE; their arrival is QO_FULL), so the key warpgroups issue no copies and never meet
 * each other in the loop. */
template <typename T, int D>
__device__ __forceinline__ void bwd90_dq_warpgroup(const Args &a, const Seq &s, int64_t b, int64_t hk, int64_t j0, int nk,
                                                   uint32_t sK, uint32_t sQ0, float *sStat, uint32_t sS, uint32_t sDQ,
                                                   uint32_t bars) {
#if MFA_HAS_WGMMA
    using K = Bwd90<T, D>;
    constexpr int BC = K::BC, BR = K::BR;
    regs_dec<K::DQ_REGS>();
    if (!K::DQ_LOADS && a.deterministic) return; /* nothing to load, and the generic dQ pass does dQ */
    const int lane = threadIdx.x & 31, wi = (threadIdx.x >> 5) & 3, g = lane >> 2, t = lane & 3;
    const int tid = (int)threadIdx.x - K::THREADS; /* among the loaders */
    const int dqk = (int)a.head_dim_qk;
    const BwdWalk walk(a, s, j0, nk, BR, BC);
    const int64_t h_end = (hk + 1) * a.group;
    int64_t h = walk.t_first < walk.t_end ? hk * a.group : h_end;
    /* the loads' place in the walk: the next tile to load, its head, and how many were loaded */
    int ld_tile = walk.t_start, ld_n = 0;
    int64_t ld_h = h;
    BwdHead<T> ld_head(a, s, b, ld_h < h_end ? ld_h : 0);
    auto load_next = [&]() {
        if (!K::DQ_LOADS || ld_h >= h_end) return;
        const int buf = ld_n & 1;
        const uint32_t q_s = sQ0 + buf * 2 * K::Q_BYTES;
        bwd_load_rows<T, D, BR, 128, true, true>(a, s, ld_head, ld_tile, q_s, q_s + K::Q_BYTES, sStat + buf * 2 * BR,
                                                 tid);
        cp_async_mbar_arrive(bars + K::QO_FULL + buf * 8); /* when this thread's copies land */
        ld_n++;
        ld_tile = walk.next(ld_tile);
        if (ld_tile == walk.t_start && ++ld_h < h_end) ld_head = BwdHead<T>(a, s, b, ld_h);
    };
    load_next();
    load_next();
    const uint32_t rows = sDQ + wi * 16 * K::DQP * 4; /* this warp's 16 rows of each 64 */
    for (int n = 0, tile = walk.t_start; h < h_end; n++) {
        const int buf = n & 1;
        const uint32_t dS = sS + buf * K::S_BYTES;
        const int64_t i0 = (int64_t)tile * BR;
        const int n_rows = (int)min((int64_t)BR, s.sq - i0);
        if (!a.deterministic) { /* (deterministic: the generic dQ pass does it) */
            mbar_wait(bars + K::DS_FULL + buf * 8, (n >> 1) & 1);
            bulk_wait_read(); /* this lane's reductions of the last tile are done reading its rows */
            __syncwarp();
#pragma unroll
            for (int m = 0; m < BR / 64; m++)
#pragma unroll
                for (int p = 0; p < D / K::DQ_N; p++) {
                    constexpr int NT = K::DQ_N / 8;
                    const int d0 = p * K::DQ_N; /* this product's first dim */
                    float acc[NT][4];
                    wgmma_fence();
                    /* each k16 step's descriptors the first ones moved on (built here, not held
                     * across the tile: this warpgroup has 48 registers) */
                    const uint64_t desc_ds = wgmma_desc(dS + m * 64 * 128, 16, 1024);
                    /* K read transposed from dim d0 of its panel: at DQ_N = 32 the second half starts
                     * 64 bytes into the swizzled rows, which the swizzle (on address bits) allows */
                    const uint64_t desc_kt = wgmma_desc(sK + (d0 >> 6) * BC * 128 + (d0 & 63) * 2, BC * 128, 1024);
#pragma unroll
                    for (int kk = 0; kk < BC / 16; kk++) {
                        const int key0 = kk * 16;
                        const uint64_t da = wgmma_desc_at(desc_ds, (key0 >> 6) * BR * 128 + ((key0 & 63) >> 4) * 32);
                        const uint64_t db = wgmma_desc_at(desc_kt, key0 * 128);
                        Wgmma<T, K::DQ_N>::ss_tb(acc, da, db, kk > 0);
                    }
                    wgmma_commit();
                    wgmma_wait<0>();
                    wgmma_fence_regs(acc);
                    if (m == BR / 64 - 1 && p == D / K::DQ_N - 1) mbar_arrive(bars + K::DS_EMPTY + buf * 8); /* dS[buf] read */
#pragma unroll
                    for (int hf = 0; hf < 2; hf++)
#pragma unroll
                        for (int c = 0; c < NT; c++)
                            asm volatile("st.shared.v2.f32 [%0], {%1, %2};\n" ::"r"(
                                             rows + ((m * 64 + g + hf * 8) * K::DQP + d0 + c * 8 + 2 * t) * 4),
                                         "f"(acc[c][hf * 2]), "f"(acc[c][hf * 2 + 1]));
                }
        }
        if constexpr (K::DQ_LOADS) { /* the key warpgroups are done with tile n's buffers: tile n + 2 */
            mbar_wait(bars + K::QO_FREE + buf * 8, (n >> 1) & 1);
            load_next();
        }
        if (!a.deterministic) {
            /* one bulk reduction a row by the TMA unit (lane r < 16: row r of the warp's 16), where 16
             * register reductions a thread cost 11 % of the kernel (H100, d64 S = 1k, measured by
             * leaving them out); each lane waits until its last reduction read its rows (above) */
            fence_proxy_async(); /* the generic proxy wrote what the async proxy reads */
            __syncwarp();
#pragma unroll
            for (int m = 0; m < BR / 64; m++) {
                const int r = m * 64 + wi * 16 + lane;
                if (lane < 16 && r < n_rows) {
                    const int64_t token = a.varlen ? s.q0 + i0 + r : b * a.seqlen_q + i0 + r;
                    bulk_red_add(a.dq_accum + (token * a.heads_q + h) * a.dq_pitch, rows + (m * 64 + lane) * K::DQP * 4,
                                 (uint32_t)min(D, dqk) * 4);
                }
            }
            bulk_commit();
        }
        const int tile_next = walk.next(tile);
        if (tile_next == walk.t_start) h++;
        tile = tile_next;
    }
    bulk_wait();
    cp_async_commit(); /* with the wait: cp.async.wait_all, so no copy is in flight when it exits */
    cp_async_wait<0>();
#else
    (void)a, (void)s, (void)b, (void)hk, (void)j0, (void)nk, (void)sK, (void)sQ0, (void)sStat, (void)sS, (void)sDQ,
        (void)bars;
#endif
}

template <typename T, int D>
__global__ void __launch_bounds__(Bwd90<T, D>::BLOCK_THREADS, Bwd90Tile<D>::MINB) bwd90_kernel(const __grid_constant__ Args a) {
#if MFA_HAS_WGMMA
    using K = Bwd90<T, D>;
    constexpr int BC = K::BC, BR = K::BR, THREADS = K::THREADS, NQ = K::NQ, DT = K::DT, KQ = K::KQ, KB = K::KB;
    constexpr int NC = K::NC;
    extern __shared__ __align__(1024) char smem[];
    const uint32_t sK = (smem_u32(smem) + 1023) & ~1023u, sV = sK + K::K_BYTES, sQ0 = sV + K::K_BYTES;
    const uint32_t sS = sQ0 + 4 * K::Q_BYTES; /* dS: [BR queries][BC keys], panels of 64 keys */
    const uint32_t sPt = sS + K::S_BYTES, sSt = sPt + K::S_BYTES; /* dim split: P^T, dS^T [keys][queries] */
    float *sStat = (float *)(smem + (sS + K::S_TILES * K::S_BYTES - smem_u32(smem))); /* [buf][lse BR | delta BR] */
    const uint32_t sDQ = sS + K::S_TILES * K::S_BYTES + 4 * BR * sizeof(float); /* key split: staged dQ rows */
    const uint32_t bars = sDQ + K::DQ_BYTES; /* dQ warpgroup: its mbarriers, at K::DS_FULL.. */

    int64_t pair, key_tile;
    /* the dim split's 64-key blocks keep a head's blocks adjacent without a mask, with rotated
     * walks (see mfa_grid_order); both splits take pairs fastest only with 8 key blocks of a head at
     * a time (fewer let the dQ adds of every head at once fall out of L2: d256 S = 4k causal 0.84x
     * -> 1.14x FA2, d64 S = 16k +6 %, causal +2.5 %, 32 heads each) */
    mfa_grid_order(a, blockIdx.x, (a.max_sk + BC - 1) / BC, a.batch * a.heads_kv, Bwd90Tile<D>::MINB, K::DIM_SPLIT, pair, key_tile,
                   8);
    const int64_t b = pair / a.heads_kv, hk = pair % a.heads_kv, j0 = key_tile * BC;
    const Seq s = mfa_seq(a, b);
    if (j0 >= s.sk) return;
    const int nk = (int)min((int64_t)BC, s.sk - j0);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    /* wg: warp-uniform, and the compiler sees it (uniform registers for the descriptors) */
    const int wg = __shfl_sync(0xffffffffu, warp >> 2, 0), wi = warp & 3;
    const int dqk = (int)a.head_dim_qk, dv = (int)a.head_dim_v;
    /* the key warpgroups meet among themselves (the dQ warpgroup runs on its own) */
    auto sync_main = [] {
        if constexpr (K::DQ_WG) bar_sync(1, K::THREADS); else __syncthreads();
    };
    if constexpr (K::DQ_WG) {
        if (threadIdx.x == 0)
            for (int i = 0; i < 2; i++) {
                mbar_init(bars + K::DS_FULL + i * 8, K::THREADS), mbar_init(bars + K::DS_EMPTY + i * 8, 128);
                if (K::DQ_LOADS)
                    mbar_init(bars + K::QO_FULL + i * 8, 128), mbar_init(bars + K::QO_FREE + i * 8, K::THREADS);
            }
        __syncthreads();
        if (wg == 2) return bwd90_dq_warpgroup<T, D>(a, s, b, hk, j0, nk, sK, sQ0, sStat, sS, sDQ, bars);
        regs_inc<K::MAIN_REGS>();
    }

    const T *kg = (const T *)a.k.data + s.tb * a.k.stride[0] + (s.k0 + j0) * a.k.stride[1] + hk * a.k.stride[2];
    const T *vg = (const T *)a.v.data + s.tb * a.v.stride[0] + (s.k0 + j0) * a.v.stride[1] + hk * a.v.stride[2];
    load_tile<T, D, BC, THREADS, true>(sK, kg, a.k.stride[1], nk, dqk, (const T *)a.k.data);
    load_tile<T, D, BC, THREADS, true>(sV, vg, a.v.stride[1], nk, dv, (const T *)a.v.data);
    cp_async_commit();

    float acc_dv[DT][4], acc_dk[DT][4];
#pragma unroll
    for (int n = 0; n < DT; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc_dv[n][e] = acc_dk[n][e] = 0.0f;

    const float sl2 = a.scale_log2;
    BwdWalk walk(a, s, j0, nk, BR, BC);
    if (K::DIM_SPLIT && a.mask_kind == MFA_MASK_NONE) walk.rotate(key_tile); /* only where the grid is adjacent */
    BwdHead<T> head(a, s, b, 0);
    auto load_q = [&](int tq, int buf) {
        const uint32_t q_s = sQ0 + buf * 2 * K::Q_BYTES;
        bwd_load_rows<T, D, BR, THREADS, true>(a, s, head, tq, q_s, q_s + K::Q_BYTES, sStat + buf * 2 * BR);
    };
    const int64_t h_end = (hk + 1) * a.group;
    int64_t h = walk.t_first < walk.t_end ? hk * a.group : h_end; /* no tile sees these keys: dK = dV = 0 */
    int tile = walk.t_start;
    if (!K::DQ_LOADS && h < h_end) head = BwdHead<T>(a, s, b, h), load_q(tile, 0); /* else the dQ warpgroup's */
    cp_async_commit();
    /* this warp's first key row (of the block) and its warpgroup's first dK / dV dim */
    const int key_w = (K::DIM_SPLIT ? 0 : wg * 64) + wi * 16, dim_w = K::DIM_SPLIT ? wg * K::DW : 0;
    for (int it = 0, buf = 0; h < h_end; it++, buf ^= 1) {
        int64_t h_next = h;
        const int tile_next = walk.next(tile);
        if (tile_next == walk.t_start) h_next++;
        const int64_t i0 = (int64_t)tile * BR;
        const int n_rows = (int)min((int64_t)BR, s.sq - i0);
        const bool need_mask = walk.needs_mask(tile);
        /* each row's keys of the block: found once a tile, but at d128 the three registers that
         * keeps live through phase A spill (84 bytes), so there from the tile's diagonal alone */
        const BwdTileKeys tkeys(a, s, i0, j0, BC, need_mask && K::TILE_KEYS);
        const BwdTileDiag tdiag(a, s, i0, j0);
        auto row_keys = [&](int q, int &klo, int &khi) {
            if constexpr (K::TILE_KEYS) {
                tkeys.row(q, klo, khi);
            } else if (need_mask) {
                tdiag.row(a, (int)min((int64_t)BC, s.sk - j0), q, klo, khi);
            } else {
                klo = 0, khi = BC;
            }
        };
        const uint32_t sQ = sQ0 + buf * 2 * K::Q_BYTES, sO = sQ + K::Q_BYTES;
        /* Q and dO read transposed (phase B): each k16 step's descriptor the first one moved on */
        auto desc_qt = [&]() { return wgmma_desc(sQ, BR * 128, 1024); };
        auto desc_ot = [&]() { return wgmma_desc(sO, BR * 128, 1024); };

        if constexpr (K::DQ_LOADS) {
            if (it == 0) { /* K and V landed (the key warpgroups' own copies) */
                cp_async_wait<0>();
                fence_proxy_async();
                sync_main();
            }
            mbar_wait(bars + K::QO_FULL + buf * 8, (it >> 1) & 1); /* this tile landed (the dQ warpgroup's copies) */
            fence_proxy_async(); /* cp.async wrote through the generic proxy; wgmma reads through the async one */
        } else {
            cp_async_wait<0>();
            fence_proxy_async();
            sync_main(); /* this tile (and K, V) landed; every warp is done with the last tile */
            if (h_next < h_end) {
                if (h_next != h) head = BwdHead<T>(a, s, b, h_next);
                load_q(tile_next, buf ^ 1);
            }
            cp_async_commit();
        }
        const float *sL = sStat + buf * 2 * BR, *sDl = sL + BR;

        if constexpr (K::DIM_SPLIT) {
            /* Phase A: S^T and dP^T for all BC keys x this warpgroup's 32 queries (32wg..) */
            constexpr int NA = BR / 2 / 8; /* n8 tiles of queries a warpgroup */
            float acc_s[NA][4], acc_p[NA][4];
            wgmma_fence();
#pragma unroll
            for (int ks = 0; ks < KQ; ks++) {
                const uint32_t col = (ks & 3) * 32, kp = (ks >> 2) * BC * 128, qp = (ks >> 2) * BR * 128 + wg * (BR / 2) * 128;
                Wgmma<T, BR / 2>::ss(acc_s, wgmma_desc(sK + kp + col, 16, 1024), wgmma_desc(sQ + qp + col, 16, 1024), ks > 0);
                Wgmma<T, BR / 2>::ss(acc_p, wgmma_desc(sV + kp + col, 16, 1024), wgmma_desc(sO + qp + col, 16, 1024), ks > 0);
            }
            wgmma_commit();
            wgmma_wait<0>();
            wgmma_fence_regs(acc_s);
            wgmma_fence_regs(acc_p);
#pragma unroll
            for (int n = 0; n < NA; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int q = wg * (BR / 2) + n * 8 + 2 * t + e;
                    int klo, khi; /* the block's keys this row sees (BwdTileKeys) */
                    row_keys(q, klo, khi);
                    const float nl2 = -sL[q] * MFA_LOG2E, dl = sDl[q];
#pragma unroll
                    for (int hf = 0; hf < 2; hf++) {
                        const int kl = key_w + g + hf * 8;
                        const float x = kl >= klo && kl < khi ? fmaf(acc_s[n][hf * 2 + e], sl2, nl2) : -INFINITY;
                        const float p = ex2(x);
                        acc_s[n][hf * 2 + e] = p;
                        acc_p[n][hf * 2 + e] = p * (acc_p[n][hf * 2 + e] - dl);
                    }
                }
            /* P^T, dS^T -> [key][query] and dS -> [query][key]: per pair of n-tiles, matrices
             * (hf, n) = (0, n), (1, n), (0, n + 1), (1, n + 1); lane gives row lane % 8 of matrix lane / 8 */
            const int mi = lane >> 3, hf_m = mi & 1;
#pragma unroll
            for (int np = 0; np < NA / 2; np++) {
                uint32_t pv[4], dv4[4];
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    const int n = 2 * np + (i >> 1), hf = i & 1;
                    pv[i] = pack2<T>(acc_s[n][hf * 2], acc_s[n][hf * 2 + 1]);
                    dv4[i] = pack2<T>(acc_p[n][hf * 2], acc_p[n][hf * 2 + 1]);
                }
                const int qn = wg * (BR / 2) + (2 * np + (mi >> 1)) * 8; /* this matrix's first query */
                const uint32_t at_t = pnl<BC>(key_w + hf_m * 8 + (lane & 7), qn >> 3);
                stsm_x4(sPt + at_t, pv[0], pv[1], pv[2], pv[3]);
                stsm_x4(sSt + at_t, dv4[0], dv4[1], dv4[2], dv4[3]);
                if (!a.deterministic)
                    stsm_x4_t(sS + pnl<BR>(qn + (lane & 7), (key_w >> 3) + hf_m), dv4[0], dv4[1], dv4[2], dv4[3]);
            }
            fence_proxy_async();
            __syncthreads(); /* P^T, dS^T, dS complete */

            /* Phase B: dV_w += P^T dO, dK_w += dS^T Q over this warpgroup's dims (panels 2wg..);
             * phase C: dQ (BR x D / 2 dims) = dS K; one commit group */
            wgmma_fence();
#pragma unroll
            for (int kq = 0; kq < KB; kq++) {
                const uint64_t bo = wgmma_desc_at(desc_ot(), (dim_w >> 6) * BR * 128 + kq * 16 * 128);
                const uint64_t bq = wgmma_desc_at(desc_qt(), (dim_w >> 6) * BR * 128 + kq * 16 * 128);
                Wgmma<T, K::DW>::ss_tb(acc_dv, wgmma_desc(sPt + kq * 32, 16, 1024), bo, true);
                Wgmma<T, K::DW>::ss_tb(acc_dk, wgmma_desc(sSt + kq * 32, 16, 1024), bq, true);
            }
            if (a.deterministic) {
                wgmma_commit();
                wgmma_wait<0>();
                h = h_next, tile = tile_next;
                continue;
            }
            float acc_q[NC / 8][4];
            wgmma_fence();
#pragma unroll
            for (int kk = 0; kk < BC / 16; kk++)
                Wgmma<T, NC>::ss_tb(acc_q, wgmma_desc(sS + kk * 32, 16, 1024),
                                    wgmma_desc(sK + (dim_w >> 6) * BC * 128 + kk * 16 * 128, BC * 128, 1024), kk > 0);
            wgmma_commit();
            wgmma_wait<0>();
            wgmma_fence_regs(acc_q);
#pragma unroll
            for (int hf = 0; hf < 2; hf++) {
                const int r = wi * 16 + g + hf * 8;
                if (r >= n_rows) continue;
                const int64_t token = a.varlen ? s.q0 + i0 + r : b * a.seqlen_q + i0 + r;
                float *dst = a.dq_accum + (token * a.heads_q + h) * a.dq_pitch;
#pragma unroll
                for (int n = 0; n < NC / 8; n++) {
                    const int d = dim_w + n * 8 + 2 * t;
                    if (d < dqk) red_add2(dst + d, acc_q[n][hf * 2], acc_q[n][hf * 2 + 1]);
                }
            }
        } else {
        /* Phase A: S^T and dP^T, keys 64wg.. x the tile's BR queries; k16 step ks reads 32 bytes
         * into each 128-byte row of panel ks / 4 */
        float acc_s[NQ][4], acc_p[NQ][4];
        uint32_t pp[KB][4], ds[KB][4]; /* P^T and dS^T as A fragments (ptx.cuh c_to_a) */
        auto issue_a = [&](float (&acc)[NQ][4], uint32_t sKV, uint32_t sQO) {
            const uint64_t dkv = wgmma_desc(sKV + wg * 64 * 128, 16, 1024), dqo = wgmma_desc(sQO, 16, 1024);
#pragma unroll
            for (int ks = 0; ks < KQ; ks++) {
                const uint32_t col = (ks & 3) * 32, kp = (ks >> 2) * BC * 128, qp = (ks >> 2) * BR * 128;
                Wgmma<T, BR>::ss(acc, wgmma_desc_at(dkv, kp + col), wgmma_desc_at(dqo, qp + col), ks > 0);
            }
            wgmma_commit();
        };
        /* P^T = 2^(S^T scale log2e - lse log2e) in place, masked */
        auto softmax_p = [&](int n, int e, float nl2) { /* nl2: -lse log2e of the element's query */
            const int q = n * 8 + 2 * t + e; /* query column of this element */
            int klo, khi; /* the block's keys this row sees (BwdTileKeys) */
            row_keys(q, klo, khi);
#pragma unroll
            for (int hf = 0; hf < 2; hf++) {
                const int kl = key_w + g + hf * 8;
                const float x = kl >= klo && kl < khi ? fmaf(acc_s[n][hf * 2 + e], sl2, nl2) : -INFINITY;
                acc_s[n][hf * 2 + e] = ex2(x);
            }
        };
        if constexpr (K::ONE_PASS) {
            /* dP^T first, then S^T: P^T and dS^T come out of one pass, element by element, so
             * the fp32 S^T and dP^T die as their 16-bit fragments appear (at d128 the two-pass
             * order below needs 240 registers); the other warpgroups fill the tensor cores
             * meanwhile */
            wgmma_fence();
            issue_a(acc_p, sV, sO);
            issue_a(acc_s, sK, sQ);
            /* each column's delta and lse read from shared memory while the products run (read
             * after the waits, their latency stood in the way each tile) */
            float dl[NQ][2], nl2[NQ][2];
#pragma unroll
            for (int n = 0; n < NQ; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) dl[n][e] = sDl[n * 8 + 2 * t + e];
            wgmma_wait<1>(); /* dP^T */
            wgmma_fence_regs(acc_p);
#pragma unroll
            for (int n = 0; n < NQ; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) nl2[n][e] = -sL[n * 8 + 2 * t + e] * MFA_LOG2E;
#pragma unroll
            for (int n = 0; n < NQ; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
#pragma unroll
                    for (int hf = 0; hf < 2; hf++) acc_p[n][hf * 2 + e] -= dl[n][e];
                }
            wgmma_wait<0>(); /* S^T */
            wgmma_fence_regs(acc_s);
#pragma unroll
            for (int n = 0; n < NQ; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    softmax_p(n, e, nl2[n][e]);
#pragma unroll
                    for (int hf = 0; hf < 2; hf++) acc_p[n][hf * 2 + e] *= acc_s[n][hf * 2 + e];
                }
            c_to_a<T>(acc_s, pp);
            c_to_a<T>(acc_p, ds);
            /* Phase B: dV += P^T dO, dK += dS^T Q (k16 step kq: queries 16kq.., both 8-row groups) */
            wgmma_fence();
#pragma unroll
            for (int kq = 0; kq < KB; kq++) {
                Wgmma<T, D>::rs(acc_dv, pp[kq], wgmma_desc_at(desc_ot(), kq * 16 * 128), true);
                Wgmma<T, D>::rs(acc_dk, ds[kq], wgmma_desc_at(desc_qt(), kq * 16 * 128), true);
            }
            wgmma_commit();
        } else {
            /* S^T and dP^T as two commit groups, so that P is computed, and dV += P^T dO issued,
             * while dP^T still runs */
            wgmma_fence();
            issue_a(acc_s, sK, sQ);
            issue_a(acc_p, sV, sO);
            float nl2[NQ][2], dl[NQ][2]; /* read while the products run, as above */
#pragma unroll
            for (int n = 0; n < NQ; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) nl2[n][e] = -sL[n * 8 + 2 * t + e] * MFA_LOG2E;
            wgmma_wait<1>(); /* S^T */
            wgmma_fence_regs(acc_s);
#pragma unroll
            for (int n = 0; n < NQ; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) dl[n][e] = sDl[n * 8 + 2 * t + e];
#pragma unroll
            for (int n = 0; n < NQ; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) softmax_p(n, e, nl2[n][e]);
            c_to_a<T>(acc_s, pp);
            /* Phase B, first half: dV += P^T dO (k16 step kq: queries 16kq.., both 8-row groups) */
            wgmma_fence();
#pragma unroll
            for (int kq = 0; kq < KB; kq++) Wgmma<T, D>::rs(acc_dv, pp[kq], wgmma_desc_at(desc_ot(), kq * 16 * 128), true);
            wgmma_commit();
            wgmma_wait<1>(); /* dP^T (dV may run on) */
            wgmma_fence_regs(acc_p);
#pragma unroll
            for (int n = 0; n < NQ; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
#pragma unroll
                    for (int hf = 0; hf < 2; hf++)
                        acc_p[n][hf * 2 + e] = acc_s[n][hf * 2 + e] * (acc_p[n][hf * 2 + e] - dl[n][e]);
                }
            c_to_a<T>(acc_p, ds);
            /* Phase B, second half: dK += dS^T Q */
            wgmma_fence();
#pragma unroll
            for (int kq = 0; kq < KB; kq++) Wgmma<T, D>::rs(acc_dk, ds[kq], wgmma_desc_at(desc_qt(), kq * 16 * 128), true);
            wgmma_commit();
        }
        if (!a.deterministic) {
            /* dS^T -> dS[query][key] while B runs: matrix i of step kq is (hf = i & 1, n = 2kq + i / 2),
             * stored transposed, so its rows are queries 8n.. and a row's 8 keys one 16-byte chunk */
            const uint32_t dS = sS + buf * K::S_BYTES;
            mbar_wait(bars + K::DS_EMPTY + buf * 8, ((it >> 1) & 1) ^ 1); /* dS[buf] read */
            const int mi = lane >> 3;
#pragma unroll
            for (int kq = 0; kq < KB; kq++) {
                const int q = (2 * kq + (mi >> 1)) * 8 + (lane & 7), chunk = (key_w >> 3) + (mi & 1);
                stsm_x4_t(dS + pnl<BR>(q, chunk), ds[kq][0], ds[kq][1], ds[kq][2], ds[kq][3]);
            }
            fence_proxy_async();
            mbar_arrive(bars + K::DS_FULL + buf * 8); /* dS[buf] complete */
        }
        wgmma_wait<0>(); /* B: P^T's and dS^T's registers are free again */
        if constexpr (K::DQ_LOADS) mbar_arrive(bars + K::QO_FREE + buf * 8); /* and this tile's Q and dO may be overwritten */
        }
        h = h_next, tile = tile_next;
    }
    cp_async_wait<0>();
    wgmma_fence_regs(acc_dv);
    wgmma_fence_regs(acc_dk);

    /* dV, and dK times the softmax scale: staged where Q and dO were, then 16-byte stores (as in
     * bwd.cuh), or element by element through the strides. */
    if (rows16_ok(a.dk, mfa_dtype_of<T>(), a.varlen) && rows16_ok(a.dv, mfa_dtype_of<T>(), a.varlen)) {
        const uint32_t sdK = sQ0, sdV = sQ0 + K::K_BYTES;
        sync_main(); /* every warp is done with the last query tile */
#pragma unroll
        for (int hf = 0; hf < 2; hf++)
#pragma unroll
            for (int n = 0; n < DT; n++) {
                const uint32_t off = pnl<BC>(key_w + g + hf * 8, (dim_w >> 3) + n) + t * 4;
                const uint32_t kv = pack2<T>(acc_dk[n][hf * 2] * a.scale, acc_dk[n][hf * 2 + 1] * a.scale);
                const uint32_t vv = pack2<T>(acc_dv[n][hf * 2], acc_dv[n][hf * 2 + 1]);
                asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sdK + off), "r"(kv));
                asm volatile("st.shared.b32 [%0], %1;\n" ::"r"(sdV + off), "r"(vv));
            }
        sync_main();
        bwd_store_dkdv<T, D, BC, THREADS, true>(a, s, j0, hk, nk, sdK, sdV);
        return;
    }
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        const int key = key_w + g + hf * 8;
        if (key < nk) bwd_store_dkdv_row<DT>(a, s, j0, hk, key, dim_w, acc_dk, acc_dv, hf, t);
    }
#else
    (void)a;
#endif
}

/* Whether this kernel takes the problem: BwdTileDiag's 32-bit diagonal needs sequences of at most
 * 2^29 rows (the sm80 kernel takes longer ones) */
inline bool takes(const Args &a) { return BwdTileDiag::fits(a); }

template <typename T, int D> cudaError_t launch(const Args &a, cudaStream_t stream) {
    using K = Bwd90<T, D>;
    return mfa_bwd::launch_passes<T, D>(a, stream, (const void *)bwd90_kernel<T, D>, K::BC, K::BLOCK_THREADS, K::SMEM);
}

} // namespace mfa_bwd90

#define MFA_BWD90_INSTANTIATE(T, D) template cudaError_t mfa_bwd90::launch<T, D>(const Args &, cudaStream_t);

#endif
