/* tile-sizes.h — every tile-size choice of the tensor-core kernels, with its reason.
 *
 * Read with the register arithmetic of one thread in mind (4 bytes a register, 255 at most):
 * a warp owns RW = BR / WARPS query rows, so each thread holds RW * D / 32 fp32 output
 * accumulators and RW * BC / 32 scores. A warp's K/V fragments loaded from shared memory feed
 * RW / 16 mma instructions each; at RW = 16 shared-memory bandwidth, not the tensor cores, sets
 * the pace on sm_80/sm_90 (a B fragment is 256 bytes per 2048 FMAs), so rows per warp are kept at
 * 32 wherever the accumulators fit. Shared memory: Q (BR x D) + K (BC x D) + V (BC x D), 2 bytes
 * each, rows padded to 64 elements; a second block per SM needs <= 113 KiB.
 * Change a row here, rebuild, run `mfa check --backend cuda` and bench/gpu/run.sh. */
#ifndef MFA_CUDA_TILE_SIZES_H
#define MFA_CUDA_TILE_SIZES_H

/* Forward: BR query rows x BC keys per iteration, WARPS warps, MINB blocks per SM wanted. */
template <int D> struct FwdTile;
/* d32: 128 x 128, 4 warps: 32 rows a warp; 32 output + 128 score accumulators; long key tiles
 * halve the loop overhead at small D. d64: 128 x 64 — at 128 x 128 the 64 + 128 accumulators
 * spill (measured: 80 bytes of spills in the loop with ptxas, sm_90a). 32-48 KiB smem, two
 * blocks per SM. */
template <> struct FwdTile<32> { static constexpr int BR = 128, BC = 128, WARPS = 4, MINB = 2; };
template <> struct FwdTile<64> { static constexpr int BR = 128, BC = 64, WARPS = 4, MINB = 2; };
/* d96/128: 128 x 64, 4 warps: 128 output + 64 score accumulators a thread (FlashAttention-2's
 * choice on sm_80); 64 KiB smem, two blocks (8 warps) per SM. */
template <> struct FwdTile<96> { static constexpr int BR = 128, BC = 64, WARPS = 4, MINB = 2; };
template <> struct FwdTile<128> { static constexpr int BR = 128, BC = 64, WARPS = 4, MINB = 2; };
/* d160..256: 128 x 64, 8 warps of 16 rows: 32 rows a warp would need D accumulators a thread
 * (> 255 registers at d256). 96-128 KiB smem, one block of 8 warps per SM. */
template <> struct FwdTile<160> { static constexpr int BR = 128, BC = 64, WARPS = 8, MINB = 1; };
template <> struct FwdTile<192> { static constexpr int BR = 128, BC = 64, WARPS = 8, MINB = 1; };
template <> struct FwdTile<224> { static constexpr int BR = 128, BC = 64, WARPS = 8, MINB = 1; };
template <> struct FwdTile<256> { static constexpr int BR = 128, BC = 64, WARPS = 8, MINB = 1; };

/* Forward on Hopper (fwd_sm90.cuh, wgmma): two warpgroups of 64 query rows (BR = 128, 8 warps).
 * Operands come from shared memory through descriptors, so registers hold only accumulators:
 * S (BC / 2 a thread), O (D / 2) and P (BC / 4 packed, in flight during the next tile's S).
 * PRODUCER form: a third warpgroup loads K, V into two slots (mbarriers; setmaxnreg 240 / 240 /
 * 24), the two that compute never meet at a barrier and issue in turns, each tile's softmax
 * under the last tile's P V (FlashAttention-3's order). BC = 192 at d64 (112 KiB; 128 until the
 * thirteenth session: 192 took long walks 1.05-1.07x the throughput, ptxas 24 bytes of spill),
 * 128 at d128 (160 KiB), 80 at d256 (40 + 128 accumulators, 224 KiB; ptxas: 16 bytes of spill); one block an
 * SM. d256 had 64 (192 KiB) until the thirteenth session: 80 took it 1.04-1.07x the throughput at
 * S = 16k, 1.05x at 4k, 1.04x at 1k (causal 1.00-1.04x; H100, alternated). H100, same run: the
 * producer took d128 fwd from 1.14-1.40x to 1.27-1.60x FA2, d256 1.29-1.68x -> 1.43-1.94x; the
 * turns and overlap d128 a further 6-9 % (1.31-1.62x -> 1.43-1.73x), d256 within 2 %.
 * SHORT: the form used where a query tile walks few keys (HAS_SHORT, below SHORT_SPAN keys):
 * there one block an SM leaves each block's start and end exposed, and at d64 two blocks an SM
 * of the plain form (BC = 64, all threads load, three stages: 64 KiB; 128 registers, no spills)
 * win. d64 causal fwd, plain vs producer form: S = 1k 247 vs 226 TFLOP/s, S = 4k 340 vs 366,
 * S = 16k 370 vs 408.
 * PERSIST: the producer form also has a persistent kernel (fwd_sm90.cuh), taken without a mask or
 * under a causal one (FwdSchedule pairs a head's query tiles into units of equal cost); its
 * second Q buffer (32 KiB) fits at d128. Fourteenth session, H100, one process, alternated: d128
 * S = 1k 1.05-1.09x the throughput, S = 4k 1.01x, S = 16k within 1 %; fifteenth, causal too:
 * S = 1k 1.09-1.10x, S = 4k 1.01-1.02x.
 * PERSIST_SPAN: walks shorter than this take it (d128: S = 16k ran 0.98-0.99x). d64 (a first
 * version: 0.97-0.99x at S = 4k and 16k) takes it only where the plain form would otherwise run,
 * with key tiles of PERSIST_BC = 128 (192 would leave 1024 keys in 6 tiles, the last a third
 * full): S = 1k 1.02-1.04x the plain form's throughput on an H100, 1.00-1.01x on an H200, causal
 * 1.00x (fifteenth session; kept for the H100's gain and one form fewer on those problems). */
template <int D, bool SHORT = false> struct Fwd90Tile;
template <> struct Fwd90Tile<64> {
    static constexpr int BR = 128, BC = 192, MINB = 1, SHORT_SPAN = 2048, PERSIST_SPAN = 2048, PERSIST_BC = 128;
    static constexpr bool PRODUCER = true, HAS_SHORT = true, PERSIST = true;
};
template <> struct Fwd90Tile<64, true> {
    static constexpr int BR = 128, BC = 64, MINB = 2, PERSIST_SPAN = 0, PERSIST_BC = 64;
    static constexpr bool PRODUCER = false, PERSIST = false;
};
template <> struct Fwd90Tile<128> {
    static constexpr int BR = 128, BC = 128, MINB = 1, SHORT_SPAN = 0, PERSIST_SPAN = 8192, PERSIST_BC = 128;
    static constexpr bool PRODUCER = true, HAS_SHORT = false, PERSIST = true;
};
template <> struct Fwd90Tile<256> {
    static constexpr int BR = 128, BC = 80, MINB = 1, SHORT_SPAN = 0, PERSIST_SPAN = 0, PERSIST_BC = 80;
    static constexpr bool PRODUCER = true, HAS_SHORT = false, PERSIST = false;
};

/* Forward, fp32 inputs (fwd32.cuh, TF32 mma.sync m16n8k8): tiles hold fp32, so shared memory,
 * not registers, is the limit: (BR + 2 BC) x (D + 4) x 4 bytes. 8 warps of 16 rows each: a thread
 * holds D / 2 output and BC / 2 score accumulators plus the hi/lo halves of its fragments, which
 * at 32 rows a warp would not fit in 255 registers at d128. BR = 128 keeps K/V traffic per query
 * row at the 16-bit kernels' level. d64: 70 KiB, one block (at two, the 128-register cap spilled
 * 80 bytes; uncapped it takes 202). d128: 132 KiB, one block, 255 registers, no spills.
 * d192/256: BC = 32 to fit: 147 / 195 KiB, one block (d256 spills 28 bytes: 128 output
 * accumulators a thread). (ptxas 13.0, sm_90a.) */
template <int D> struct Fwd32Tile;
template <> struct Fwd32Tile<64> { static constexpr int BR = 128, BC = 64, WARPS = 8, MINB = 1; };
template <> struct Fwd32Tile<128> { static constexpr int BR = 128, BC = 64, WARPS = 8, MINB = 1; };
template <> struct Fwd32Tile<192> { static constexpr int BR = 128, BC = 32, WARPS = 8, MINB = 1; };
template <> struct Fwd32Tile<256> { static constexpr int BR = 128, BC = 32, WARPS = 8, MINB = 1; };

/* Forward, fp32 inputs on Hopper (fwd32_sm90.cuh: fp16 hi/lo halves on wgmma), d64 and d128: two
 * warpgroups of 64 query rows (BR = 128) and 64-key tiles. Registers, not shared memory, set BC:
 * a thread holds S (BC / 2), O (D / 2), this tile's P V in fresh accumulators (D / 2) and P's
 * hi/lo fragments (BC / 4): 254 registers at d128 (ptxas 13.0, no spills), so BC = 128 would not
 * fit. Shared memory: Q hi/lo (2 x BR x D x 2 bytes) and two stages of K, V hi/lo (8 x BC x D x
 * 2): 192 KiB at d128, 96 KiB at d64 (211 registers: one block an SM either way). Larger head
 * dims stay on fwd32.cuh (Q hi/lo alone would take 128 KiB at d256). */
struct Fwd32_90Tile { static constexpr int BR = 128, BC = 64; };

/* Backward: one block owns BC keys of one kv head and walks the BR-row query tiles (of every q
 * head of its GQA group) that can see them. Three phases per query tile, each with its own warp
 * grid: (A) S^T = K Q^T and dP^T = V dO^T, WA_K warps along keys (BC / WA_K keys each) x the rest
 * along queries; (B) dV += P^T dO, dK += dS^T Q, WB_K warps along keys x the rest along dims,
 * accumulated in registers over the whole walk; (C) dQ = dS K, 32 queries x D/WC_D dims a warp,
 * added to an fp32 workspace with vector reductions (staged through shared memory where it fits).
 * 32 keys a warp in A and B and 32 queries in C (two m16 tiles) let every fragment read from
 * shared memory feed two MMAs: a third fewer ldmatrix per MMA than 16 (d128 S = 16k
 * forward+backward 221 -> 254 TFLOP/s on the H100, docs/cuda.md). Registers: B's accumulators are
 * 2 * BC * D / (32 * WARPS) a thread (128 at d128 and d256), plus A's or C's transient 64-128. */
template <int D> struct BwdTile;
/* d64: 128 keys x 128 queries, 8 warps: A 32 keys x 64 queries a warp (128 accumulators), B 32
 * keys x 32 dims. 64 queries a tile ran d64 S = 16k 1.17x slower: at d64 a tile's fixed costs
 * (barriers, loads, masks) weigh twice as much per FLOP. 198 KiB smem, 255 registers, no spills. */
template <> struct BwdTile<64> { static constexpr int BC = 128, BR = 128, WARPS = 8, WA_K = 4, WB_K = 4; };
/* d128: 128 x 64, 8 warps: B holds 64 + 64 accumulators (32 keys x 64 dims, dK and dV); 196 KiB
 * smem (K, V, 2x Q, 2x dO, P^T, dS^T, staged dQ), one block per SM. */
template <> struct BwdTile<128> { static constexpr int BC = 128, BR = 64, WARPS = 8, WA_K = 4, WB_K = 4; };
/* d192/256: 64 x 64, 8 warps: A 16 keys x 32 queries, B 32 keys x 64 dims (128 accumulators);
 * 208 KiB smem at d256, so dQ goes to the reductions straight from registers (8-byte pairs: a
 * quad fills a 32-byte sector; scalar atomics here had L2 70 % busy and ran 1.74x slower). */
template <> struct BwdTile<192> { static constexpr int BC = 64, BR = 64, WARPS = 8, WA_K = 4, WB_K = 2; };
template <> struct BwdTile<256> { static constexpr int BC = 64, BR = 64, WARPS = 8, WA_K = 4, WB_K = 2; };

/* Backward on Hopper (bwd_sm90.cuh, wgmma): a block of BC keys walks query tiles of BR rows.
 * Key split (d64, d128): two warpgroups of 64 keys (BC = 128), each holding its keys' dK and dV
 * (D / 2 accumulators a thread each) and computing S^T, dP^T for them (BR / 2 each).
 * Every key split has a third warpgroup for dQ (bwd_sm90.cuh). d64: BC = 128, BR = 64: the key
 * warpgroups fit the 216 registers setmaxnreg leaves them at BR = 64 (32 + 64 accumulators and
 * P^T, dS^T), not at 128.
 * fwd+bwd against FA2, H100, same run: 0.88-0.94x (BR = 128, two warpgroups, dQ in place) ->
 * 0.96-1.15x. Measured worse before the dQ warpgroup: BR = 64 (0.75-0.78x: tiles too small for
 * their two barriers and waits); BC = 64 with one warpgroup a block and two blocks an SM
 * (0.60-0.89x: twice the Q/dO reloads and dQ reductions of 128-key blocks).
 * d128: BC = 128, BR = 64 (128 + 64), the dQ warpgroup too: its key warpgroups make P^T and dS^T
 * in one pass (240 registers in the two-pass order, 224 in this one), the dQ warpgroup works 32
 * dims at a time (48 registers): 0.99-1.14x -> 1.08-1.28x FA2 fwd+bwd.
 * Dim split (d256: a key split would need 256 registers for dK and dV alone): BC = BR = 64, two
 * warpgroups, each holding dK, dV of all 64 keys for half the dims (64 + 64) and computing S^T,
 * dP^T for half the queries (8 + 8); P^T, dS^T and dS meet in shared memory. 218 KiB.
 * One block an SM. Shared memory: K, V (BC x D), Q and dO twice (BR x D), dS (BR x BC; twice
 * with the dQ warpgroup, and its staged dQ rows; dim split also P^T, dS^T): 115 / 194 / 218 KiB. */
template <int D> struct Bwd90Tile;
template <> struct Bwd90Tile<64> {
    static constexpr int BC = 128, BR = 64, MINB = 1;
    static constexpr bool DIM_SPLIT = false;
};
template <> struct Bwd90Tile<128> {
    static constexpr int BC = 128, BR = 64, MINB = 1;
    static constexpr bool DIM_SPLIT = false;
};
template <> struct Bwd90Tile<256> {
    static constexpr int BC = 64, BR = 64, MINB = 1;
    static constexpr bool DIM_SPLIT = true;
};

#endif
