/* fwd32_sm90.cuh — the fp32-accurate forward on Hopper: fp32-accurate products on fp16 wgmma, by
 * splitting every operand in two fp16 halves after a power-of-two scaling. It runs fp32 inputs,
 * and any mix of fp32 / fp16 / bf16 inputs the 16-bit kernels do not take (mixed types, or a
 * 16-bit problem that asks for an fp32 output, which they cannot give to fp32 accuracy).
 *
 * Why fp16 and not TF32: both keep 11 significant bits, so x = hi + lo with hi = fp16(x), lo =
 * fp16(x - hi) holds x to about 2^-22, like the 3xTF32 split of fwd32.cuh; and a product
 *     a b ~ a_hi b_hi + a_hi b_lo + a_lo b_hi        (a_lo b_lo ~ 2^-22 |a b| dropped)
 * is three fp16 MMAs. But fp16 wgmma runs at twice TF32's rate, takes its B operand transposed
 * from shared memory (TF32 wgmma does not: V would have to be transposed), its A operand from
 * registers (P), and its tiles are half the bytes. What fp16 lacks is range (2^-24..65504), which
 * a power-of-two scale per row supplies (of Q, K and V alike): the row's largest |x| goes to
 * [2^14, 2^15), and its elements down to about 1e-6 of that keep all their bits (lo is still a
 * normal fp16). The scales are undone in fp32: S by q_inv(row) * k_inv(column) before the
 * softmax; V's go into P (see the loop), which enters the product as P' <= 2^14. A scale per row,
 * not per tile: with one per 64-key tile a row 1e8 times smaller than the tile's largest, which
 * the softmax may still weight fully, came out with 3.2e-4 relative error (docs/cuda.md).
 *
 * Two kernels per call:
 *  1. split_kernel: k and v (any strides with 16-byte rows) -> hi/lo fp16 arrays and each row's
 *     inverse scale, in the forward's workspace (backend.c sizes it with workspace_bytes()):
 *     [kv head][token][D] halves, tokens packed over the batch (varlen or not), rows of D (zeros
 *     past the head dim): about the size of k and v in fp32. A read and a write of k and v.
 *  2. fwd32_90_kernel: fwd_sm90.cuh's loop (two warpgroups of 64 query rows, K/V tiles in two
 *     stages by cp.async in the 128-byte swizzle layout) with three products per GEMM. Each block
 *     splits its own Q rows first (split_q: Q is read once, so a pass through memory would only
 *     add traffic and workspace).
 *
 * The tensor cores add with truncation, so each chain starts from zero where it is small: S takes
 * the two cross products first and Q_hi K_hi last (D/16 big steps, as fwd32.cuh's big
 * accumulator), and each key tile's P V goes into fresh accumulators that join O in fp32 (a
 * running O would take every tile's truncations: ~1e-5 at 4k keys).
 * Compiled for sm_90a only (MFA_HAS_WGMMA); the dispatcher calls it on compute capability 9.0. */
#ifndef MFA_CUDA_FWD32_SM90_CUH
#define MFA_CUDA_FWD32_SM90_CUH

#include <cuda_runtime.h>

#include "../ptx.cuh"
#include "../tile-sizes.h"
#include "../wgmma.cuh"
#include "common.cuh"
#include "softmax.cuh"
#include "tile.cuh"

namespace mfa_fwd32_90 {

constexpr int BR = Fwd32_90Tile::BR, BC = Fwd32_90Tile::BC, THREADS = 256; /* two warpgroups */
constexpr int P_SHIFT = 14; /* P' = p vc 2^(14 - G) <= 2^14: the top of fp16's range */

/* Where the split K and V live in the workspace (all offsets 256-byte aligned): hi/lo halves
 * [kv head][token][D] and each row's inverse scale [kv head][token]. */
struct Layout {
    int64_t tk; /* packed key tokens: batch * seqlen_kv, or the varlen total */
    size_t kh, kl, vh, vl, k_inv, v_inv, bytes;
};
__host__ __device__ inline size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }
__host__ __device__ inline Layout layout(const Args &a, int d) {
    Layout l;
    l.tk = a.varlen ? a.seqlen_kv : a.batch * a.seqlen_kv;
    const size_t k16 = align256((size_t)(a.heads_kv * l.tk * d) * 2), inv = align256((size_t)(a.heads_kv * l.tk) * 4);
    l.kh = 0, l.kl = k16, l.vh = 2 * k16, l.vl = 3 * k16;
    l.k_inv = 4 * k16, l.v_inv = l.k_inv + inv, l.bytes = l.v_inv + inv;
    return l;
}

/* First packed key token of sequence b. */
__device__ __forceinline__ int64_t first_key(const Args &a, int64_t b) { return a.varlen ? a.cu_k[b] : b * a.seqlen_kv; }

/* 8 elements of `dtype` (f32: u then w; f16 / bf16: u alone) as floats. */
__device__ __forceinline__ void widen8(int32_t dtype, const uint4 &u, const uint4 &w, float (&x)[8]) {
    if (dtype == MFA_DTYPE_F32) {
        x[0] = __uint_as_float(u.x), x[1] = __uint_as_float(u.y), x[2] = __uint_as_float(u.z), x[3] = __uint_as_float(u.w);
        x[4] = __uint_as_float(w.x), x[5] = __uint_as_float(w.y), x[6] = __uint_as_float(w.z), x[7] = __uint_as_float(w.w);
        return;
    }
    const uint32_t r[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float2 f = dtype == MFA_DTYPE_F16 ? unpack2<__half>(r[i]) : unpack2<__nv_bfloat16>(r[i]);
        x[2 * i] = f.x, x[2 * i + 1] = f.y;
    }
}
/* Elements 8c..8c+7 of a row of t (zeros from dvalid on, a multiple of 4) as floats. */
__device__ __forceinline__ void load8(const mfa_cuda_tensor_t &t, const char *row, int c, int dvalid, float (&x)[8]) {
    uint4 u = make_uint4(0, 0, 0, 0), w = u;
    if (t.dtype == MFA_DTYPE_F32) {
        const uint4 *p = (const uint4 *)(row + c * 32);
        if (c * 8 < dvalid) u = p[0];
        if (c * 8 + 4 < dvalid) w = p[1];
    } else {
        const uint2 *p = (const uint2 *)(row + c * 16);
        if (c * 8 < dvalid) {
            const uint2 v = p[0];
            u.x = v.x, u.y = v.y;
        }
        if (c * 8 + 4 < dvalid) {
            const uint2 v = p[1];
            u.z = v.x, u.w = v.y;
        }
    }
    widen8(t.dtype, u, w, x);
}
__device__ __forceinline__ int elem_bytes(int32_t dtype) { return dtype == MFA_DTYPE_F32 ? 4 : 2; }

/* 2^e as a float (e in [-126, 127]). */
__device__ __forceinline__ float pow2(int e) { return __uint_as_float((uint32_t)(e + 127) << 23); }
/* The exponent that takes max |x| = m to [2^14, 2^15): 14 - floor(log2 m), within fp32's normal
 * range; 0 for m = 0 or not finite (NaN and inf then reach the output as they would in fp32). */
__device__ __forceinline__ int scale_exp(float m) {
    const uint32_t bits = __float_as_uint(m);
    const int e = (int)(bits >> 23) - 127;
    if (m == 0.0f || e == 128) return 0;
    const int s = 14 - (e < -126 ? -126 : e);
    return s > 126 ? 126 : s;
}

/* (x0, x1), already scaled, as fp16 pairs: hi = fp16(x), lo = fp16(x - hi) (x0 in the low half). */
__device__ __forceinline__ void split2(float x0, float x1, uint32_t &hi, uint32_t &lo) {
    const __half2 hv = __floats2half2_rn(x0, x1);
    const float2 back = __half22float2(hv);
    const __half2 lv = __floats2half2_rn(x0 - back.x, x1 - back.y);
    hi = *reinterpret_cast<const uint32_t *>(&hv);
    lo = *reinterpret_cast<const uint32_t *>(&lv);
}
/* 8 floats times sc as 8 fp16 hi and 8 fp16 lo (one 16-byte chunk each). */
__device__ __forceinline__ void split8(const float (&x)[8], float sc, uint4 &hi, uint4 &lo) {
    split2(x[0] * sc, x[1] * sc, hi.x, lo.x);
    split2(x[2] * sc, x[3] * sc, hi.y, lo.y);
    split2(x[4] * sc, x[5] * sc, hi.z, lo.z);
    split2(x[6] * sc, x[7] * sc, hi.w, lo.w);
}

/* This thread's 8 elements of a row that CH adjacent lanes hold (every lane calls): scaled by the
 * row's power of two and split into hi and lo; returns the inverse scale. */
template <int CH> __device__ __forceinline__ float split_row8(const float (&x)[8], uint4 &hi, uint4 &lo) {
    float m = 0.0f;
#pragma unroll
    for (int e = 0; e < 8; e++) m = fmaxf(m, fabsf(x[e]));
#pragma unroll
    for (int o = 1; o < CH; o <<= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    const int se = scale_exp(m);
    split8(x, pow2(se), hi, lo);
    return pow2(-se);
}

/* One block: key rows [BC t, BC t + BC) of one (sequence, kv head) of k (blockIdx.y = 0) or v
 * (1), each row with its own scale (its CH threads are adjacent lanes); each thread 8 consecutive
 * elements of a row (CH = D / 8 threads a row) in BC / (THREADS / CH) rounds. */
template <int D> __global__ void __launch_bounds__(THREADS) split_kernel(const __grid_constant__ Args a) {
    constexpr int CH = D / 8, RSTEP = THREADS / CH, ROUNDS = BC / RSTEP;
    static_assert(32 % CH == 0 && BC % RSTEP == 0, "whole rounds of rows");
    const bool is_v = blockIdx.y == 1;
    const Layout L = layout(a, D);
    const int64_t n_tiles = (a.max_sk + BC - 1) / BC;
    const int64_t pair = blockIdx.x / n_tiles, tile = blockIdx.x % n_tiles, b = pair / a.heads_kv, h = pair % a.heads_kv;
    const Seq s = mfa_seq(a, b);
    const int64_t i0 = tile * BC;
    if (i0 >= s.sk) return;
    const mfa_cuda_tensor_t &src = is_v ? a.v : a.k;
    const int dvalid = (int)(is_v ? a.head_dim_v : a.head_dim_qk), esz = elem_bytes(src.dtype);
    const int64_t tok0 = first_key(a, b) + i0;
    const int c = threadIdx.x % CH, r0 = threadIdx.x / CH;
    uint16_t *hi = (uint16_t *)(a.fwd_ws + (is_v ? L.vh : L.kh)), *lo = (uint16_t *)(a.fwd_ws + (is_v ? L.vl : L.kl));
    float *inv = (float *)(a.fwd_ws + (is_v ? L.v_inv : L.k_inv)) + h * L.tk + tok0;
#pragma unroll
    for (int k = 0; k < ROUNDS; k++) {
        const int r = r0 + k * RSTEP;
        const int64_t i = i0 + r;
        const char *row = (const char *)src.data + (s.tb * src.stride[0] + (s.k0 + i) * src.stride[1] + h * src.stride[2]) * esz;
        float x[8];
        load8(src, row, c, i < s.sk ? dvalid : 0, x);
        uint4 vh, vl;
        const float row_inv = split_row8<CH>(x, vh, vl);
        if (i >= s.sk) continue;
        const int64_t at = (h * L.tk + tok0 + r) * D + c * 8;
        *(uint4 *)(hi + at) = vh;
        *(uint4 *)(lo + at) = vl;
        if (c == 0) inv[r] = row_inv;
    }
}

/* The block's Q rows, split in shared memory, in two steps. load_q: cp.async of the rows as they
 * are (any input dtype; rows of D elements, zeros past the head dim and n_rows) into `stage`.
 * split_q, once they landed and a barrier published them: each thread 8 elements of a row at a
 * time, the row's max over its CH threads (adjacent lanes), its scale, hi and lo into the panel
 * tiles sQh / sQl, 2^-scale into q_inv[row] (rows past n_rows: zeros, scale 1). */
template <int D>
__device__ __forceinline__ void load_q(const Args &a, const Seq &s, int64_t h, int64_t i0, int n_rows, uint32_t stage) {
    const int esz = elem_bytes(a.q.dtype), row_bytes = D * esz, dbytes = (int)a.head_dim_qk * esz;
    const char *q = (const char *)a.q.data + (s.tb * a.q.stride[0] + (s.q0 + i0) * a.q.stride[1] + h * a.q.stride[2]) * esz;
    const int chunks = row_bytes / 16;
    for (int x = threadIdx.x; x < BR * chunks; x += THREADS) {
        const int r = x / chunks, cb = (x % chunks) * 16;
        const int n = r < n_rows ? min(16, max(0, dbytes - cb)) : 0;
        cp_async16(stage + r * row_bytes + cb, n ? (const void *)(q + r * a.q.stride[1] * esz + cb) : a.q.data, n);
    }
}
template <int D>
__device__ __forceinline__ void split_q(const Args &a, uint32_t stage, uint32_t sQh, uint32_t sQl, float *q_inv) {
    constexpr int CH = D / 8, RSTEP = THREADS / CH;
    const int esz = elem_bytes(a.q.dtype), row_bytes = D * esz;
    const int c = threadIdx.x % CH;
    for (int r = threadIdx.x / CH; r < BR; r += RSTEP) {
        uint4 u, w = make_uint4(0, 0, 0, 0);
        const uint32_t at = stage + r * row_bytes + c * 8 * esz;
        asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n" : "=r"(u.x), "=r"(u.y), "=r"(u.z), "=r"(u.w) : "r"(at));
        if (esz == 4)
            asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n" : "=r"(w.x), "=r"(w.y), "=r"(w.z), "=r"(w.w) : "r"(at + 16));
        float xs[8];
        widen8(a.q.dtype, u, w, xs);
        uint4 vh, vl;
        const float row_inv = split_row8<CH>(xs, vh, vl);
        asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(sQh + pnl<BR>(r, c)), "r"(vh.x), "r"(vh.y), "r"(vh.z), "r"(vh.w));
        asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(sQl + pnl<BR>(r, c)), "r"(vl.x), "r"(vl.y), "r"(vl.z), "r"(vl.w));
        if (c == 0) q_inv[r] = row_inv;
    }
}

template <int D> struct Fwd32_90 {
    static constexpr int NT = BC / 8, DT = D / 8, KQ = D / 16, KV = BC / 16;
    static constexpr uint32_t Q_BYTES = BR * D * 2, T_BYTES = BC * D * 2;
    /* Q hi, Q lo; two stages of [K hi | K lo | V hi | V lo] (stage 1 first holds Q's raw rows:
     * BR x D x 4 bytes = 4 T_BYTES); Q's row scales; two stages of the tile's K and V row scales;
     * 1 KiB to align */
    static constexpr size_t SMEM = 2 * Q_BYTES + 8 * T_BYTES + BR * 4 + 2 * 2 * BC * 4 + 1024;
    static_assert(D % 64 == 0, "64-column panels");
};

template <int D> __global__ void __launch_bounds__(THREADS, 1) fwd32_90_kernel(const __grid_constant__ Args a) {
#if MFA_HAS_WGMMA
    char *ws = a.fwd_ws;
    using K = Fwd32_90<D>;
    constexpr int NT = K::NT, DT = K::DT, KQ = K::KQ, KV = K::KV;
    constexpr uint32_t TB = K::T_BYTES;
    extern __shared__ __align__(1024) char smem[];
    const uint32_t sQh = (smem_u32(smem) + 1023) & ~1023u, sQl = sQh + K::Q_BYTES, sKV = sQl + K::Q_BYTES;

    const FwdBlock blk = mfa_fwd_block(a, BR, 1);
    const int64_t b = blk.b, h = blk.h, hk = h / a.group, i0 = blk.i0;
    const Seq s = mfa_seq(a, b);
    if (i0 >= s.sq) return;
    const int n_rows = (int)min((int64_t)BR, s.sq - i0);
    const FwdKeys keys(a, s, i0, n_rows);
    const Layout L = layout(a, D);

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3, wg = warp >> 2;
    const int row0 = warp * 16;
    const int64_t k_tok = first_key(a, b);
    const __half *any = (const __half *)ws;
    const int64_t k_at = (hk * L.tk + k_tok) * D; /* this sequence's first key row, kv head hk */
    const __half *kh = (const __half *)(ws + L.kh) + k_at, *kl = (const __half *)(ws + L.kl) + k_at;
    const __half *vh = (const __half *)(ws + L.vh) + k_at, *vl = (const __half *)(ws + L.vl) + k_at;
    const float *k_inv = (const float *)(ws + L.k_inv) + hk * L.tk + k_tok; /* this sequence's row scales */
    const float *v_inv = (const float *)(ws + L.v_inv) + hk * L.tk + k_tok;
    /* the tiles' K and V row scales: stage st at sScale + st * 2 BC floats, K's then V's */
    const uint32_t sScale = sKV + 8 * TB + BR * 4;
    auto load_kv = [&](int64_t jt, uint32_t st) {
        const int64_t j0 = jt * BC;
        const int nk = (int)min((int64_t)BC, s.sk - j0);
        const uint32_t stage = sKV + st * 4 * TB;
        load_tile<__half, D, BC, THREADS, true>(stage, kh + j0 * D, D, nk, D, any);
        load_tile<__half, D, BC, THREADS, true>(stage + TB, kl + j0 * D, D, nk, D, any);
        load_tile<__half, D, BC, THREADS, true>(stage + 2 * TB, vh + j0 * D, D, nk, D, any);
        load_tile<__half, D, BC, THREADS, true>(stage + 3 * TB, vl + j0 * D, D, nk, D, any);
        if (threadIdx.x < 2 * BC) { /* rows past the sequence get 0 (their scores are masked) */
            const int r = threadIdx.x % BC;
            const float *src = (threadIdx.x < BC ? k_inv : v_inv) + j0 + r;
            cp_async4z(sScale + (st * 2 * BC + threadIdx.x) * 4, r < nk ? (const void *)src : (const void *)k_inv,
                       r < nk ? 4 : 0);
        }
    };

    int64_t j, j_end;
    keys.tiles(BC, j, j_end);
    /* Q's rows land in stage 1 (free until the loop's first barrier) while tile j loads into
     * stage 0; Q is split once they are in */
    const uint32_t sQraw = sKV + 4 * TB;
    float *sQinv = (float *)(smem + (sKV + 8 * TB - smem_u32(smem)));
    load_q<D>(a, s, h, i0, n_rows, sQraw);
    cp_async_commit();
    if (j < j_end) load_kv(j, 0);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();
    split_q<D>(a, sQraw, sQh, sQl, sQinv);
    __syncthreads();
    float q_inv[2];
#pragma unroll
    for (int hf = 0; hf < 2; hf++) q_inv[hf] = sQinv[row0 + g + hf * 8];

    float acc_o[DT][4], row_m[2], row_l[2];
    fwd_rows_start<DT>(acc_o, row_m, row_l);
    const bool xform = a.softcap > 0.0f || a.mask.data != nullptr;
    const float sl2 = xform ? 1.0f : a.scale_log2;

    uint32_t st = 0;
    while (j < j_end) {
        const int64_t j0 = j * BC;
        cp_async_wait<0>();
        fence_proxy_async();
        __syncthreads(); /* tile j landed; every warpgroup is done with tile j - 1 (the other stage) */
        if (j + 1 < j_end) load_kv(j + 1, st ^ 1);
        cp_async_commit();
        const uint32_t sKh = sKV + st * 4 * TB, sKl = sKh + TB, sVh = sKh + 2 * TB, sVl = sKh + 3 * TB;

        /* S = Q_hi K_lo^T + Q_lo K_hi^T + Q_hi K_hi^T, small terms first (see the top) */
        float acc_s[NT][4];
        wgmma_fence();
#pragma unroll
        for (int part = 0; part < 3; part++) {
            const uint32_t qa = part == 1 ? sQl : sQh, kb = part == 0 ? sKl : sKh;
#pragma unroll
            for (int ks = 0; ks < KQ; ks++) {
                const uint32_t col = (ks & 3) * 32;
                const uint64_t da = wgmma_desc(qa + (ks >> 2) * BR * 128 + wg * 64 * 128 + col, 16, 1024);
                const uint64_t db = wgmma_desc(kb + (ks >> 2) * BC * 128 + col, 16, 1024);
                Wgmma<__half, BC>::ss(acc_s, da, db, part > 0 || ks > 0);
            }
        }
        wgmma_commit();
        wgmma_wait<0>();
        wgmma_fence_regs(acc_s);

        /* this thread's key columns 8n + 2t, + 1: their K and V row scales */
        float kc[NT][2], vc[NT][2];
        const uint32_t sc = sScale + st * 2 * BC * 4;
#pragma unroll
        for (int n = 0; n < NT; n++) {
            asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];\n" : "=f"(kc[n][0]), "=f"(kc[n][1]) : "r"(sc + (n * 8 + 2 * t) * 4));
            asm volatile("ld.shared.v2.f32 {%0, %1}, [%2];\n"
                         : "=f"(vc[n][0]), "=f"(vc[n][1])
                         : "r"(sc + (BC + n * 8 + 2 * t) * 4));
        }
        /* undo Q's and K's scales: rows by q_inv, columns by their key's k_inv */
#pragma unroll
        for (int hf = 0; hf < 2; hf++)
#pragma unroll
            for (int n = 0; n < NT; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) acc_s[n][hf * 2 + e] *= q_inv[hf] * kc[n][e];
        const bool need_mask = keys.needs_mask(s, j0, BC);
        if (xform || need_mask) fwd_mask_scores<NT>(a, acc_s, s, b, h, i0 + row0 + g, j0, t, xform);

        /* Online softmax, with V's row scales taken into P: p_ij V_j = P'_ij V'_j 2^(G_i - 14),
         * V'_j = V_j / vc_j its scaled rows and P'_ij = p_ij vc_j 2^(14 - G_i), where G_i is the
         * tile's largest log2(p_ij vc_j) of row i rounded up: P' <= 2^14 fits fp16, and the terms
         * that matter keep their bits however far apart V's rows are. */
        uint32_t ph[KV][4], pl[KV][4];
        float corr[2], o_scale[2];
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            const float base = fwd_row_max<NT>(acc_s, row_m, hf, sl2, corr[hf]);
            float top = -INFINITY;
#pragma unroll
            for (int n = 0; n < NT; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float y = fmaf(acc_s[n][hf * 2 + e], sl2, -base); /* log2 p */
                    acc_s[n][hf * 2 + e] = y;
                    top = fmaxf(top, y + (float)((int)((__float_as_uint(vc[n][e]) >> 23) & 0xff) - 127));
                }
            top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, 1));
            top = fmaxf(top, __shfl_xor_sync(0xffffffffu, top, 2));
            /* G in [-100, 114] (V's exponents are clamped by scale_exp): both factors normal */
            const int G = top == -INFINITY ? -100 : max((int)ceilf(top), -100);
            const float up = pow2(P_SHIFT - G);
            o_scale[hf] = pow2(G - P_SHIFT);
            float sum = 0.0f;
#pragma unroll
            for (int kk = 0; kk < KV; kk++) {
                float pp[4];
#pragma unroll
                for (int e4 = 0; e4 < 4; e4++) {
                    const int n = 2 * kk + e4 / 2, e = e4 % 2;
                    const float p = ex2(acc_s[n][hf * 2 + e]);
                    sum += p;
                    pp[e4] = p * vc[n][e] * up;
                }
                split2(pp[0], pp[1], ph[kk][hf], pl[kk][hf]);         /* n-tile 2kk */
                split2(pp[2], pp[3], ph[kk][2 + hf], pl[kk][2 + hf]); /* n-tile 2kk + 1 */
            }
            row_l[hf] = row_l[hf] * corr[hf] + sum;
        }

        /* this tile's P V, fresh: P_hi V_lo + P_lo V_hi + P_hi V_hi */
        float acc_t[DT][4];
        wgmma_fence();
#pragma unroll
        for (int part = 0; part < 3; part++) {
            const uint32_t vb = part == 0 ? sVl : sVh;
#pragma unroll
            for (int kk = 0; kk < KV; kk++)
                Wgmma<__half, D>::rs(acc_t, part == 1 ? pl[kk] : ph[kk], wgmma_desc(vb + kk * 16 * 128, BC * 128, 1024),
                                     part > 0 || kk > 0);
        }
        wgmma_commit();
        wgmma_wait<0>();
        wgmma_fence_regs(acc_t);
#pragma unroll
        for (int dt = 0; dt < DT; dt++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc_o[dt][e] = fmaf(acc_o[dt][e], corr[e >> 1], acc_t[dt][e] * o_scale[e >> 1]);
        st ^= 1;
        j++;
    }
    cp_async_wait<0>();

    /* Epilogue: O / l in the output's dtype (float pairs where o is fp32 with unit stride), LSE. */
    const bool vec_o = a.o.dtype == MFA_DTYPE_F32 && a.o.stride[3] == 1 && (uintptr_t)a.o.data % 8 == 0 &&
                       ((a.o.stride[1] | a.o.stride[2] | (a.varlen ? 0 : a.o.stride[0])) & 1) == 0;
    const int dv = (int)a.head_dim_v;
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        const int r = row0 + g + hf * 8;
        const float inv = fwd_finish_row(a, s, b, h, i0 + r, r < n_rows, row_m[hf], row_l[hf], sl2, t);
        if (r >= n_rows) continue;
        const int64_t at = mfa_at(a.o, s.tb, s.q0 + i0 + r, h, 0);
#pragma unroll
        for (int dt = 0; dt < DT; dt++) {
            const int d = dt * 8 + 2 * t; /* dv is a multiple of 4: d < dv covers d + 1 */
            if (d >= dv) continue;
            const float x0 = acc_o[dt][hf * 2] * inv, x1 = acc_o[dt][hf * 2 + 1] * inv;
            if (vec_o) {
                *(float2 *)((float *)a.o.data + at + d) = make_float2(x0, x1);
            } else {
                mfa_st(a.o.data, a.o.dtype, at + d * a.o.stride[3], x0);
                mfa_st(a.o.data, a.o.dtype, at + (d + 1) * a.o.stride[3], x1);
            }
        }
    }
#else
    (void)a;
#endif
}

/* Workspace bytes this path needs for head dim D. */
template <int D> size_t workspace_bytes(const Args &a) { return layout(a, D).bytes; }

/* Host side: the split of K and V, then the attention, on one stream; a.fwd_ws holds
 * workspace_bytes(). */
template <int D> cudaError_t launch(const Args &a, cudaStream_t stream) {
    using K = Fwd32_90<D>;
    const int64_t tiles = a.batch * a.heads_kv * ((a.max_sk + BC - 1) / BC);
    if (tiles > 0) {
        split_kernel<D><<<dim3((unsigned)tiles, 2), THREADS, 0, stream>>>(a);
        const cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) return e;
    }
    return mfa_launch((const void *)fwd32_90_kernel<D>, a.batch * a.heads_q * ((a.max_sq + BR - 1) / BR), THREADS,
                      K::SMEM, a, stream);
}

} // namespace mfa_fwd32_90

#define MFA_FWD32_90_INSTANTIATE(D)                                                    \
    template cudaError_t mfa_fwd32_90::launch<D>(const Args &, cudaStream_t);         \
    template size_t mfa_fwd32_90::workspace_bytes<D>(const Args &);

#endif
