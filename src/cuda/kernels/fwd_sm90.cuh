/* fwd_sm90.cuh — the Hopper forward: fwd.cuh's algorithm with the products on wgmma (sm_90a).
 *
 * A block of two warpgroups computes BR = 128 query rows of one (batch, q head); warpgroup w owns
 * rows 64w..64w+63 and, per key tile j:
 *     S = Q K_j^T      wgmma, Q and K_j straight from shared memory (no ldmatrix, no registers)
 *     mask, online softmax (softmax.cuh: the accumulators have mma.sync's C layout)
 *     O += P V_j       wgmma, P from registers (C fragments are A fragments), V_j from shared
 *                      memory read transposed by the descriptor
 * Tiles sit in shared memory in the 128-byte swizzle layout (ptx.cuh pnl: 64-column panels).
 * Both warpgroups software-pipeline the tiles (FlashAttention-3's order): S_j is issued with
 * P_{j-1} V_{j-1}, and S_j's softmax runs while that product is in flight. Two forms
 * (tile-sizes.h), one loop:
 *   PRODUCER: a third warpgroup loads Q, then K_j and V_j into two slots each, with mbarriers
 *     between it and the two that compute, which take turns to issue, so one's products run
 *     under the other's softmax. One of its threads has the TMA unit copy each tile (tensor
 *     maps, `Maps`) where the layout allows; otherwise all 128 issue cp.async copies.
 *   plain: all threads load tile j + 1 into the third of three stages while tile j computes,
 *     one block-wide barrier a tile, and two blocks share an SM instead (d64 on short walks
 *     under a window mask or in varlen batches).
 * A block computes one work item (query tile), or with PERSIST (the producer form at d128 and
 * d64, on short walks without a mask or under a causal one) a block an SM walks the items
 * FwdSchedule gives it: the producer loads the next item's Q into a second buffer and its first
 * K and V into the slots as they free, so that only the compute of an item's start and end
 * stays exposed.
 * Everything else (masks, softcap, dense bias, GQA, varlen, LSE, outputs) is fwd.cuh's, through
 * the same helpers. Compiled for sm_90a only (MFA_HAS_WGMMA); the dispatcher calls it on compute
 * capability 9.0. */
#ifndef MFA_CUDA_FWD_SM90_CUH
#define MFA_CUDA_FWD_SM90_CUH

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "../ptx.cuh"
#include "../tile-sizes.h"
#include "../wgmma.cuh"
#include "common.cuh"
#include "softmax.cuh"
#include "tile.cuh"
#include "tma.cuh"

namespace mfa_fwd90 {

/* Tensor maps of Q, K and V for the producer form's loads by the TMA unit (tma = 1): one thread
 * issues a tile's copies, where 128 threads issued 16-byte cp.async copies (tma.cuh) */
struct Maps {
    CUtensorMap q, k, v;
    int tma;
    MapOrder order;
};

template <typename T, int D, bool SHORT, bool PERSIST> struct Fwd90 {
    using Tile = Fwd90Tile<D, SHORT>;
    /* THREADS: the two warpgroups that compute; with PRODUCER a third loads Q, K and V */
    /* persistent blocks take short walks only, where d64's long-walk tile would waste keys */
    static constexpr int BR = Tile::BR, BC = PERSIST ? Tile::PERSIST_BC : Tile::BC, MINB = Tile::MINB;
    static constexpr int THREADS = BR / 16 * 32;
    static constexpr bool PRODUCER = Tile::PRODUCER;
    static constexpr int LOADERS = PRODUCER ? 128 : THREADS, BLOCK_THREADS = THREADS + (PRODUCER ? 128 : 0);
    /* setmaxnreg: the launch gives each thread 65536 / (BLOCK_THREADS MINB) registers (a multiple
     * of 8: 168 at 384 threads, one block an SM); the producer keeps few, the others share the rest */
    static constexpr int LAUNCH_REGS = 65536 / (BLOCK_THREADS * MINB) / 8 * 8;
    static constexpr int LOAD_REGS = 24, MMA_REGS = (3 * LAUNCH_REGS - LOAD_REGS) / 2 / 8 * 8;
    static constexpr int NT = BC / 8, DT = D / 8, KQ = D / 16, KV = BC / 16;
    static constexpr uint32_t Q_BYTES = BR * D * 2, T_BYTES = BC * D * 2; /* Q; one K or V tile */
    /* [K | V] stages: two with the producer (K and V released separately), three in the plain form */
    static constexpr int STAGES = PRODUCER ? 2 : 3;
    static constexpr uint32_t STAGE_BYTES = STAGES * 2 * T_BYTES;
    /* producer: mbarriers Q full, Q empty (x2 each), K / V full (x2 each), K / V empty (x2 each) */
    static constexpr uint32_t BAR_BYTES = PRODUCER ? 96 : 0;
    /* PERSIST (the producer form where Tile::PERSIST, for problems whose work items all cost the
     * same): a block an SM walks items blockIdx.x, + gridDim.x, ..., and the producer loads the
     * next item's Q into a second buffer while this item computes */
    static constexpr int QBUF = PERSIST ? 2 : 1;
    /* Q, then the stages; 1 KiB of slack to align the swizzle's 8-row groups */
    static constexpr size_t SMEM = QBUF * Q_BYTES + STAGE_BYTES + BAR_BYTES + 1024;
    static_assert(D % 64 == 0 && BR == 128 && BC % 16 == 0 && 2 * BC >= BR, "tile shapes");
    static_assert(!PERSIST || (PRODUCER && SMEM <= 227 * 1024), "a persistent block is the producer form's");
};

/* What forward work item `item` walks: query rows [i0, i0 + n_rows) of head h of sequence b, and
 * key tiles [j, j + n_tiles) of `bc` keys. The producer and the warpgroups that compute each find
 * it, so that neither tells the other. */
struct FwdWalk {
    FwdBlock blk;
    Seq s;
    int n_rows;
    FwdKeys keys;
    int64_t j;
    int n_tiles;
    __device__ __forceinline__ FwdWalk(const Args &a, int br, int bc, const FwdBlock &item)
        : blk(item), s(mfa_seq(a, blk.b)), n_rows((int)min((int64_t)br, s.sq - blk.i0)), keys(a, s, blk.i0, n_rows) {
        int64_t j_end;
        keys.tiles(bc, j, j_end);
        n_tiles = (int)(j_end - j);
    }
    /* a tile of a varlen batch's shorter sequence past its end: nothing to do */
    __device__ __forceinline__ bool empty() const { return blk.i0 >= s.sq; }
};

/* A block's work items, round by round (k = 0, 1, ...). Without PERSIST, its one item
 * (blockIdx.x of the grid order). Persistent, where items cost the same (no mask): item
 * blockIdx.x + k gridDim.x. Persistent under a causal mask (`mirror`): a head's query tile t (0:
 * the last, which walks the most keys) pairs with tile n - 1 - t into a unit of constant cost
 * (the two walk about n + 1 key tiles whatever t), the block takes units blockIdx.x + u gridDim.x,
 * the longer item first, and a unit's two tiles share the head's K and V in L2. `at` says 0 when
 * the block is done, 2 for a round with nothing to do (the middle tile's mirror), 1 and the item
 * otherwise. The producer and the warpgroups that compute each walk it. */
template <bool PERSIST> struct FwdSchedule {
    int64_t n_q, items, units;
    uint32_t half;
    bool mirror;
    /* Without PERSIST a block has its one item, and nothing is computed or kept */
    __device__ __forceinline__ FwdSchedule(const Args &a, int br) {
        if constexpr (!PERSIST) return;
        n_q = (a.max_sq + br - 1) / br;
        items = a.batch * a.heads_q * n_q;
        mirror = a.mask_kind == MFA_MASK_CAUSAL;
        half = (uint32_t)((n_q + 1) / 2);
        units = a.batch * a.heads_q * half;
    }
    __device__ __forceinline__ int at(const Args &a, int br, int minb, int64_t k, FwdBlock &blk) const {
        if constexpr (!PERSIST) {
            if (k > 0) return 0;
            blk = mfa_fwd_block(a, br, minb);
            return 1;
        }
        if (!mirror) {
            const int64_t lin = blockIdx.x + k * gridDim.x;
            if (lin >= items) return 0;
            blk = mfa_fwd_item(a, br, minb, lin);
            return 1;
        }
        const int64_t unit = blockIdx.x + (k >> 1) * gridDim.x;
        if (unit >= units) return 0;
        const uint32_t p = (uint32_t)unit / half, r = (uint32_t)unit % half, hq = (uint32_t)a.heads_q;
        const int64_t tile = (k & 1) ? n_q - 1 - r : r;
        if ((k & 1) && tile == r) return 2;
        blk = {p / hq, p % hq, (n_q - 1 - tile) * br};
        return 1;
    }
    /* f(w, k) for each of the block's items in turn that has rows (w: its walk, k: its round);
     * the producer and the warpgroups that compute walk them alike */
    template <typename F> __device__ __forceinline__ void walk(const Args &a, int br, int bc, int minb, F &&f) const {
        for (int64_t k = 0;; k++) {
            FwdBlock item;
            const int st = at(a, br, minb, k, item);
            if (st == 0) break;
            if (st == 2) continue;
            const FwdWalk w(a, br, bc, item);
            if (!w.empty()) f(w, k);
        }
    }
    /* whether round k's item is the block's last */
    __device__ __forceinline__ bool last(const Args &a, int br, int minb, int64_t k) const {
        FwdBlock next;
        int st = at(a, br, minb, k + 1, next);
        if (st == 2) st = at(a, br, minb, k + 2, next);
        return st == 0;
    }
};

template <typename T, int D, bool SHORT, bool PERSIST>
__global__ void __launch_bounds__(Fwd90<T, D, SHORT, PERSIST>::BLOCK_THREADS, Fwd90<T, D, SHORT, PERSIST>::MINB)
    fwd90_kernel(const __grid_constant__ Args a, const __grid_constant__ Maps maps) {
#if MFA_HAS_WGMMA
    using K = Fwd90<T, D, SHORT, PERSIST>;
    constexpr int BR = K::BR, BC = K::BC, THREADS = K::THREADS, NT = K::NT, DT = K::DT, KQ = K::KQ, KV = K::KV;
    extern __shared__ __align__(1024) char smem[];
    /* Q buffer qb at sQ0 + qb Q_BYTES; stage st at sKV + st 2 T_BYTES; then the mbarriers */
    const uint32_t sQ0 = (smem_u32(smem) + 1023) & ~1023u, sKV = sQ0 + K::QBUF * K::Q_BYTES;
    const uint32_t bars = sKV + K::STAGE_BYTES;
    auto q_full = [&](int qb) { return bars + 8 * qb; };
    auto q_empty = [&](int qb) { return bars + 16 + 8 * qb; };
    auto k_full = [&](int sl) { return bars + 32 + 8 * sl; };
    auto v_full = [&](int sl) { return bars + 48 + 8 * sl; };
    auto k_empty = [&](int sl) { return bars + 64 + 8 * sl; };
    auto v_empty = [&](int sl) { return bars + 80 + 8 * sl; };
    auto stage = [&](int n) { return sKV + (n % K::STAGES) * 2 * K::T_BYTES; };

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    /* a warp-uniform value the compiler can see as one (uniform registers for the descriptors) */
    const int wg = __shfl_sync(0xffffffffu, warp >> 2, 0);
    const int row0 = warp * 16; /* this warp's rows in the tile (warpgroup wg: 64wg..) */
    const int dqk = (int)a.head_dim_qk, dv = (int)a.head_dim_v;
    constexpr int LOADERS = K::LOADERS;
    const int tid = K::PRODUCER ? (int)threadIdx.x - THREADS : (int)threadIdx.x; /* among the loaders */
    const bool xform = a.softcap > 0.0f || a.mask.data != nullptr;
    const float sl2 = xform ? 1.0f : a.scale_log2;
    const FwdSchedule<PERSIST> sched(a, BR);

    auto q_src = [&](const FwdWalk &w) {
        return (const T *)a.q.data + w.s.tb * a.q.stride[0] + (w.s.q0 + w.blk.i0) * a.q.stride[1] +
               w.blk.h * a.q.stride[2];
    };
    auto k_src = [&](const FwdWalk &w) {
        return (const T *)a.k.data + w.s.tb * a.k.stride[0] + w.s.k0 * a.k.stride[1] + w.blk.h / a.group * a.k.stride[2];
    };
    auto v_src = [&](const FwdWalk &w) {
        return (const T *)a.v.data + w.s.tb * a.v.stride[0] + w.s.k0 * a.v.stride[1] + w.blk.h / a.group * a.v.stride[2];
    };
    auto load_q = [&](const FwdWalk &w, uint32_t at) {
        load_tile<T, D, BR, LOADERS, true>(at, q_src(w), a.q.stride[1], w.n_rows, dqk, (const T *)a.q.data, tid);
    };
    auto load_k = [&](const T *kg, int64_t sk, int64_t jt, uint32_t at) {
        const int64_t j0 = jt * BC;
        load_tile<T, D, BC, LOADERS, true>(at, kg + j0 * a.k.stride[1], a.k.stride[1], (int)min((int64_t)BC, sk - j0),
                                           dqk, (const T *)a.k.data, tid);
    };
    auto load_v = [&](const T *vg, int64_t sk, int64_t jt, uint32_t at) {
        const int64_t j0 = jt * BC;
        load_tile<T, D, BC, LOADERS, true>(at, vg + j0 * a.v.stride[1], a.v.stride[1], (int)min((int64_t)BC, sk - j0),
                                           dv, (const T *)a.v.data, tid);
    };

    if constexpr (K::PRODUCER) {
        /* The producer warpgroup walks the block's items (blockIdx.x, and with PERSIST + gridDim.x,
         * ...) as the others do: each item's Q into Q buffer (item count) % QBUF once the item
         * before last there is stored, then K and V tile by tile, each into the slot the computing warpgroups
         * last released (slots and phases count tiles over all the block's items); a tile's
         * arrival is an mbarrier phase, K and V separately (K_j is read a step before V_j). */
        const uint32_t arrivals = maps.tma ? 1 : LOADERS; /* TMA: one expect_tx, the bytes do the rest */
        if (threadIdx.x == 0) {
            for (int x = 0; x < 2; x++) {
                mbar_init(q_full(x), arrivals), mbar_init(q_empty(x), THREADS);
                mbar_init(k_full(x), arrivals), mbar_init(v_full(x), arrivals);
                mbar_init(k_empty(x), THREADS), mbar_init(v_empty(x), THREADS);
            }
        }
        __syncthreads();
        if (wg == 2) {
            regs_dec<K::LOAD_REGS>();
            if (maps.tma && tid != 0) return;
            /* a tile of `rows` rows from map m: D / 64 panels of rows x 128 bytes */
            auto tma_tile = [&](const CUtensorMap &m, uint32_t at, int rows, int64_t row, int64_t head, int64_t tb,
                                uint32_t bar) {
                mbar_expect_tx(bar, (uint32_t)(rows * D * 2));
                tma_load_tile<D>(m, maps.order, at, rows, row, head, tb, bar);
            };
            int nt = 0, cnt = 0; /* tiles and items loaded so far */
            auto produce = [&](const FwdWalk &w) {
                const int qb = cnt % K::QBUF;
                const uint32_t sQ = sQ0 + qb * K::Q_BYTES;
                mbar_wait(q_empty(qb), ((cnt / K::QBUF) & 1) ^ 1); /* the item before last here is stored */
                if (maps.tma) {
                    tma_tile(maps.q, sQ, BR, w.s.q0 + w.blk.i0, w.blk.h, w.s.tb, q_full(qb));
                } else {
                    load_q(w, sQ);
                    cp_async_mbar_arrive(q_full(qb));
                }
                const T *kg = k_src(w), *vg = v_src(w);
                const int64_t hk = w.blk.h / a.group;
                for (int n = 0; n < w.n_tiles; n++) {
                    const int m = nt + n, sl = m & 1, ph = ((m >> 1) & 1) ^ 1; /* slot sl's previous tile released */
                    mbar_wait(k_empty(sl), ph);
                    if (maps.tma)
                        tma_tile(maps.k, stage(m), BC, w.s.k0 + (w.j + n) * BC, hk, w.s.tb, k_full(sl));
                    else
                        load_k(kg, w.s.sk, w.j + n, stage(m)), cp_async_mbar_arrive(k_full(sl));
                    mbar_wait(v_empty(sl), ph);
                    if (maps.tma)
                        tma_tile(maps.v, stage(m) + K::T_BYTES, BC, w.s.k0 + (w.j + n) * BC, hk, w.s.tb, v_full(sl));
                    else
                        load_v(vg, w.s.sk, w.j + n, stage(m) + K::T_BYTES), cp_async_mbar_arrive(v_full(sl));
                }
                nt += w.n_tiles, cnt++;
            };
            if constexpr (PERSIST || D != 256) {
                sched.walk(a, BR, BC, K::MINB, [&](const FwdWalk &w, int64_t) { produce(w); });
            } else {
                /* the block's one item, written as a walk over the grid's items that ends after one:
                 * in this form ptxas fits the d256 producer's cp.async path in its 24 registers
                 * (straight-line code, or the schedule's walk, spilled 356 bytes there; this 20).
                 * Only at d256: at d64/d128 the same form cost 1-3 % (H200, 2026-11-28) */
                const int64_t items = a.batch * a.heads_q * ((a.max_sq + BR - 1) / BR);
                for (int64_t item = blockIdx.x; item < items; item += items) {
                    const FwdWalk w(a, BR, BC, mfa_fwd_item(a, BR, K::MINB, item));
                    if (!w.empty()) produce(w);
                }
            }
            if (!maps.tma) { /* with the wait: cp.async.wait_all, so no copy is in flight when it exits */
                cp_async_commit();
                cp_async_wait<0>();
            }
            return;
        }
        regs_inc<K::MMA_REGS>();
    }

    /* One work item for the two warpgroups that compute, Q at sQ; nt: tiles the block walked
     * before it (the producer's slots and phases count on over items); final: the block's last */
    auto compute = [&](const FwdWalk &w, uint32_t sQ, int nt, bool final) {
        const int64_t b = w.blk.b, h = w.blk.h, i0 = w.blk.i0;
        const Seq &s = w.s;
        const int n_rows = w.n_rows, n_tiles = w.n_tiles;
        const int64_t j = w.j;
        const T *kg = k_src(w), *vg = v_src(w); /* the plain form's loads */
        float acc_o[DT][4], row_m[2], row_l[2];
        fwd_rows_start<DT>(acc_o, row_m, row_l);

        /* S = Q K^T: k16 step ks reads 32 bytes into each 128-byte row of panel ks / 4 */
        /* (each k16 step's descriptors are the first ones moved on: wgmma_desc_at) */
        const uint64_t desc_q = wgmma_desc(sQ + wg * 64 * 128, 16, 1024);
        auto issue_s = [&](float (&acc_s)[NT][4], uint32_t sK) {
            const uint64_t desc_k = wgmma_desc(sK, 16, 1024);
#pragma unroll
            for (int ks = 0; ks < KQ; ks++) {
                const uint32_t col = (ks & 3) * 32;
                Wgmma<T, BC>::ss(acc_s, wgmma_desc_at(desc_q, (ks >> 2) * BR * 128 + col),
                                 wgmma_desc_at(desc_k, (ks >> 2) * BC * 128 + col), ks > 0);
            }
            wgmma_commit();
        };
        /* O += P V: k16 step kk is keys 16kk.. (two 8-row groups); the D columns span D / 64 panels */
        auto issue_pv = [&](const uint32_t (&pa)[KV][4], uint32_t sV) {
            const uint64_t desc_v = wgmma_desc(sV, BC * 128, 1024);
#pragma unroll
            for (int kk = 0; kk < KV; kk++) Wgmma<T, D>::rs(acc_o, pa[kk], wgmma_desc_at(desc_v, kk * 16 * 128), true);
            wgmma_commit();
        };

        /* Steps count the block's tiles: step m (nt <= m < m_end) takes key tile jb + m, from
         * stage m % STAGES (with the producer, slot m % 2 and phase m / 2 % 2). */
        const int m_end = nt + n_tiles;
        const int64_t jb = j - nt;
        /* Before step m issues: tile m's K (and tile m - 1's V) landed, and are visible to the
         * async proxy (cp.async writes through the generic one). The plain form also starts tile
         * m + 1's load here, behind the barrier that says every warp is done with step m - 1, so
         * with the stage of tile m - 2 (three stages: step m still reads tile m - 1's V). */
        auto tile_ready = [&](int m) {
            if constexpr (K::PRODUCER) {
                mbar_wait(k_full(m & 1), (m >> 1) & 1);
                if (m > nt) mbar_wait(v_full((m - 1) & 1), ((m - 1) >> 1) & 1);
                fence_proxy_async();
            } else {
                cp_async_wait<0>();
                fence_proxy_async();
                __syncthreads();
                if (m + 1 < m_end)
                    load_k(kg, s.sk, jb + m + 1, stage(m + 1)), load_v(vg, s.sk, jb + m + 1, stage(m + 1) + K::T_BYTES);
                cp_async_commit();
            }
        };
        auto k_read = [&](int m) { /* this warpgroup's S_m landed: K_m may be overwritten */
            if constexpr (K::PRODUCER) mbar_arrive(k_empty(m & 1));
        };
        auto v_read = [&](int m) { /* this warpgroup's P_m V_m landed */
            if constexpr (K::PRODUCER) mbar_arrive(v_empty(m & 1));
        };

        /* Software-pipelined (FlashAttention-3's order): step m issues S_m = Q K_m^T and then
         * O += P_{m-1} V_{m-1}, and runs S_m's softmax while the second product is in flight; O is
         * rescaled only after it lands. With the producer the two warpgroups also take turns to
         * issue (named barriers 1 and 2, "warpgroup 0's / 1's turn"), so one's products run under
         * the other's softmax instead of both competing for the tensor cores at once. Both walk
         * the same tiles of the same items, so each turn taken is one given: warpgroup 1 opens
         * warpgroup 0's first turn and gives none after its own last issue of the block's last
         * item. Persistent blocks take no turn for an item's first step (S alone), so that at an
         * item's start warpgroup 0 issues its first two steps while warpgroup 1 is still in the
         * last item's epilogue (warpgroup 1's last issue there gave warpgroup 0 the turn of its
         * second step). Alternated on an H100, d128 S = 1k: 1.05-1.09x a block an item's
         * throughput without that first turn, 1.05x with it. (The plain form has two blocks an SM
         * instead.) */
        auto my_turn = [&]() {
            if constexpr (K::PRODUCER) bar_sync(1 + wg, 2 * 128);
        };
        auto your_turn = [&](bool last) {
            if constexpr (K::PRODUCER)
                if (!(last && final && wg == 1)) bar_arrive(2 - wg, 2 * 128);
        };
        float acc_s[NT][4];
        uint32_t pa[KV][4];
        /* the scores of tile m (landed in acc_s) masked and turned into P, in place; corr: what O
         * must be multiplied by */
        auto softmax = [&](int m, float (&corr)[2]) {
            const int64_t j0 = (jb + m) * BC;
            if (xform || w.keys.needs_mask(s, j0, BC)) fwd_mask_scores<NT>(a, acc_s, s, b, h, i0 + row0 + g, j0, t, xform);
            fwd_softmax_rows<NT>(acc_s, row_m, row_l, corr, sl2, 0, [&](int kk, int hf, const float (&p)[4]) {
                acc_s[2 * kk][hf * 2] = p[0], acc_s[2 * kk][hf * 2 + 1] = p[1];
                acc_s[2 * kk + 1][hf * 2] = p[2], acc_s[2 * kk + 1][hf * 2 + 1] = p[3];
            });
        };
        auto to_pa = [&]() {
#pragma unroll
            for (int kk = 0; kk < KV; kk++)
#pragma unroll
                for (int hf = 0; hf < 2; hf++) {
                    pa[kk][hf] = pack2<T>(acc_s[2 * kk][hf * 2], acc_s[2 * kk][hf * 2 + 1]);
                    pa[kk][2 + hf] = pack2<T>(acc_s[2 * kk + 1][hf * 2], acc_s[2 * kk + 1][hf * 2 + 1]);
                }
        };
        if (n_tiles > 0) { /* the first step: S alone (O is still zero); a turn unless PERSIST */
            tile_ready(nt);
            if constexpr (!PERSIST) my_turn();
            wgmma_fence();
            issue_s(acc_s, stage(nt));
            if constexpr (!PERSIST) your_turn(false);
            wgmma_wait<0>();
            wgmma_fence_regs(acc_s);
            k_read(nt);
            float corr[2];
            softmax(nt, corr);
            to_pa();
        }
        for (int m = nt + 1; m < m_end; m++) {
            tile_ready(m);
            my_turn();
            wgmma_fence();
            issue_s(acc_s, stage(m));
            issue_pv(pa, stage(m - 1) + K::T_BYTES);
            your_turn(false);
            wgmma_wait<1>(); /* S_m landed; P_{m-1} V_{m-1} may still run */
            wgmma_fence_regs(acc_s);
            k_read(m);
            float corr[2];
            softmax(m, corr);
            wgmma_wait<0>();
            wgmma_fence_regs(acc_o);
            v_read(m - 1);
#pragma unroll
            for (int dt = 0; dt < DT; dt++)
#pragma unroll
                for (int e = 0; e < 4; e++) acc_o[dt][e] *= corr[e >> 1];
            to_pa();
        }
        if (n_tiles > 0) { /* the last tile's P V (the plain form's last V landed at its step) */
            const int m = m_end - 1;
            if constexpr (K::PRODUCER) {
                mbar_wait(v_full(m & 1), (m >> 1) & 1);
                fence_proxy_async();
            }
            my_turn();
            wgmma_fence();
            issue_pv(pa, stage(m) + K::T_BYTES);
            your_turn(true);
            wgmma_wait<0>();
            wgmma_fence_regs(acc_o);
            if constexpr (PERSIST) v_read(m); /* the slot's next tile is the next item's */
        }
        if constexpr (!K::PRODUCER) cp_async_wait<0>(); /* nothing in flight at the end */

        /* Epilogue: as fwd.cuh's, staged in shared memory in the warpgroup's own rows of Q, which
         * only its own products read (all landed) */
        const uint32_t sO = sQ;
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
                fwd_store_row_direct<DT>(a, s, h, i0 + r, acc_o, hf, inv, t);
            }
        }
        if (vec_o) fwd_store_rows<T, D, 16, BR>(a, s, h, i0, n_rows, row0, sO, lane);
    };

    if constexpr (PERSIST) {
        if (wg == 1) bar_arrive(1, 2 * 128); /* warpgroup 0's first turn */
        int nt = 0, cnt = 0;
        sched.walk(a, BR, BC, K::MINB, [&](const FwdWalk &w, int64_t k) {
            const int qb = cnt % K::QBUF;
            mbar_wait(q_full(qb), (cnt / K::QBUF) & 1);
            compute(w, sQ0 + qb * K::Q_BYTES, nt, sched.last(a, BR, K::MINB, k));
            /* this warpgroup's rows of the buffer are read (its O stored): the producer may copy
             * the next item's Q over them, through the async proxy */
            fence_proxy_async();
            mbar_arrive(q_empty(qb));
            nt += w.n_tiles, cnt++;
        });
    } else if constexpr (K::PRODUCER) {
        const FwdWalk w(a, BR, BC, mfa_fwd_block(a, BR, K::MINB));
        if (w.empty()) return;
        if (wg == 1 && w.n_tiles > 0) bar_arrive(1, 2 * 128); /* warpgroup 0's first turn */
        mbar_wait(q_full(0), 0);
        compute(w, sQ0, 0, true);
    } else {
        const FwdWalk w(a, BR, BC, mfa_fwd_block(a, BR, K::MINB));
        if (w.empty()) return;
        load_q(w, sQ0);
        if (w.n_tiles > 0) load_k(k_src(w), w.s.sk, w.j, stage(0)), load_v(v_src(w), w.s.sk, w.j, stage(0) + K::T_BYTES);
        cp_async_commit();
        compute(w, sQ0, 0, true);
    }
#else
    (void)a;
#endif
}

/* The maps of a producer-form launch, where TMA can serve every load: fixed-length sequences (a
 * varlen tile would read the next sequence's rows where cp.async zero-fills), head dims that are
 * the instantiated D, and Q, K, V alike in their order of strides. */
template <typename T, int D> static void tma_maps(const Args &a, int br, int bc, Maps &m) {
    if (!tma_wanted() || a.varlen || a.head_dim_qk != D || a.head_dim_v != D) return;
    int oq[3], ok[3], ov[3];
    if (!encode_map<T>(&m.q, a.q, a.seqlen_q, a.heads_q, a.batch, D, br, oq) ||
        !encode_map<T>(&m.k, a.k, a.seqlen_kv, a.heads_kv, a.batch, D, bc, ok) ||
        !encode_map<T>(&m.v, a.v, a.seqlen_kv, a.heads_kv, a.batch, D, bc, ov))
        return;
    for (int i = 0; i < 3; i++)
        if (oq[i] != ok[i] || ok[i] != ov[i]) return;
    m.order = {oq[0], oq[1], oq[2]}, m.tma = 1;
}

/* Whether a producer-form launch takes the persistent kernel (Fwd90Tile<D>::PERSIST): a block an
 * SM, each taking work items blockIdx.x, + gridDim.x, ... in the grid order, so that an item's Q,
 * first K and V load while the item before computes, and its epilogue runs under the other
 * warpgroup's products. Its static schedule (FwdSchedule) needs units of one cost: no mask, or a
 * causal one (mirror pairs); no window mask, no varlen batch. It pays only where an item's start
 * and end weigh, on walks shorter than Fwd90Tile<D>::PERSIST_SPAN keys (H100, d128: S = 1k
 * 1.07-1.08x, S = 4k 1.01x, S = 16k 0.98-0.99x; causal S = 1k 1.09-1.10x, S = 4k 1.01-1.02x).
 * MFA_CUDA_PERSIST=0 turns it off (for comparisons); MFA_CUDA_FWD_BLOCKS=N takes it whatever the
 * problem, on a grid of at most N blocks (the tests: many items a block). */
static inline int persistent_grid_forced() {
    static const int forced = [] {
        const char *e = getenv("MFA_CUDA_FWD_BLOCKS");
        return e ? atoi(e) : 0;
    }();
    return forced;
}
template <int D> static inline bool persistent_wanted(const Args &a) {
    static const bool off = [] {
        const char *e = getenv("MFA_CUDA_PERSIST");
        return e && e[0] == '0';
    }();
    const bool even = a.mask_kind == MFA_MASK_NONE || a.mask_kind == MFA_MASK_CAUSAL; /* see FwdSchedule */
    return persistent_grid_forced() > 0 ||
           (!off && even && !a.varlen && a.max_sk < Fwd90Tile<D>::PERSIST_SPAN);
}

template <typename T, int D, bool SHORT, bool PERSIST>
cudaError_t launch_kernel(const Args &a, int64_t items, cudaStream_t stream) {
    using K = Fwd90<T, D, SHORT, PERSIST>;
    const void *fn = (const void *)fwd90_kernel<T, D, SHORT, PERSIST>;
    int64_t blocks = items;
    if constexpr (PERSIST) {
        const int forced = persistent_grid_forced();
        blocks = std::min(items, forced > 0 ? (int64_t)forced : (int64_t)a.sm_count * K::MINB);
    }
    Maps maps;
    memset(&maps, 0, sizeof maps);
    if constexpr (K::PRODUCER) tma_maps<T, D>(a, K::BR, K::BC, maps);
    cudaError_t e = cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)K::SMEM);
    if (e != cudaSuccess) return e;
    void *args[] = {(void *)&a, (void *)&maps};
    return cudaLaunchKernel(fn, dim3((unsigned)blocks), dim3(K::BLOCK_THREADS), args, K::SMEM, stream);
}

template <typename T, int D, bool SHORT> cudaError_t launch_form(const Args &a, cudaStream_t stream) {
    const int64_t items = a.batch * a.heads_q * ((a.max_sq + Fwd90Tile<D, SHORT>::BR - 1) / Fwd90Tile<D, SHORT>::BR);
    if (items == 0) return cudaSuccess;
    if (items > INT32_MAX) return cudaErrorInvalidConfiguration; /* a grid's limit; mfa_grid_order's 32 bits */
    if constexpr (!SHORT && Fwd90Tile<D>::PERSIST)
        if (persistent_wanted<D>(a)) return launch_kernel<T, D, SHORT, true>(a, items, stream);
    return launch_kernel<T, D, SHORT, false>(a, items, stream);
}

/* The keys a query tile walks at most: the whole sequence, or a two-sided window's width */
static inline int64_t walk_span(const Args &a, int br) {
    int64_t span = a.max_sk;
    if (a.mask_kind == MFA_MASK_WINDOW && a.window_left >= 0 && a.window_right >= 0)
        span = std::min(span, (int64_t)a.window_left + a.window_right + br);
    return span;
}

/* MFA_CUDA_SHORT_WALK=0 / 1 forces the form where there are two (the tests run the table with
 * each, since its sequences are short); unset: by walk_span */
static inline int short_walk_forced() {
    static const int forced = [] {
        const char *e = getenv("MFA_CUDA_SHORT_WALK");
        return e && (e[0] == '0' || e[0] == '1') ? e[0] - '0' : -1;
    }();
    return forced;
}

template <typename T, int D> cudaError_t launch(const Args &a, cudaStream_t stream) {
    using Tile = Fwd90Tile<D>;
    if constexpr (Tile::HAS_SHORT) {
        const int forced = short_walk_forced();
        const bool short_walk = forced == 1 || (forced < 0 && walk_span(a, Tile::BR) < Tile::SHORT_SPAN);
        /* where the producer form is persistent, it replaces the plain form on short walks */
        if (short_walk && !(forced < 0 && Tile::PERSIST && persistent_wanted<D>(a))) return launch_form<T, D, true>(a, stream);
    }
    return launch_form<T, D, false>(a, stream);
}

} // namespace mfa_fwd90

#define MFA_FWD90_INSTANTIATE(T, D) template cudaError_t mfa_fwd90::launch<T, D>(const Args &, cudaStream_t);

#endif
