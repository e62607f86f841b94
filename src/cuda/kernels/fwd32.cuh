/* fwd32.cuh — the tensor-core forward for fp32 q/k/v: FlashAttention-2 (Dao 2023) with
 * mma.sync m16n8k8 on TF32 operands, fp32-accurate by the 3xTF32 split, or plain TF32 when the
 * caller sets allow_tf32.
 *
 * The split: every fp32 operand x becomes x_hi = x rounded to TF32 (10 explicit mantissa bits)
 * and x_lo = x - x_hi (exact in fp32; the tensor core reads its top 10 mantissa bits). A product
 *     a b = a_hi b_hi + a_hi b_lo + a_lo b_hi + a_lo b_lo
 * is kept but for the last term (about 2^-22 |a b|), each of the three MMAs accumulating in fp32:
 * about the accuracy of an fp32 FMA loop, at three TF32 MMAs a product. Both GEMMs are split:
 * S = Q K^T (scores feed exp(), so their absolute error becomes the probabilities' relative
 * error) and O += P V (P in [0, 1] split like the rest). With allow_tf32 only a_hi b_hi runs
 * (error ~1e-3 relative, torch's TF32 matmul accuracy).
 *
 * The structure is fwd.cuh's (one block: BR query rows of one (batch, q head), key tiles of BC,
 * V_j loading during S = Q K^T and K_{j+1} during P V_j, the same masks, softcap, dense bias,
 * varlen, GQA and LSE), with fp32 tiles in shared memory, rows padded to D + 4 floats: row r
 * starts 4 banks after row r - 1, so the 8 rows of an ldmatrix phase hit 8 different 16-byte bank
 * groups and so do the column reads of V below, without a swizzle.
 *
 * Fragments (PTX ISA, "mma.m16n8k8 .tf32"; lane = 4 g + t):
 *   A 16x8: a0 = (g, t)  a1 = (g+8, t)  a2 = (g, t+4)  a3 = (g+8, t+4)
 *   B 8x8:  b0 = (k t, n g)  b1 = (k t+4, n g)
 *   C 16x8: c0, c1 = (g, 2t..2t+1)   c2, c3 = (g+8, 2t..2t+1)
 * ldmatrix (b16 view: an 8x8 b16 matrix is 8 rows of 4 fp32) gives lane (g, t) word t of row g,
 * which is A and B of this shape straight from row-major Q and K. For O += P V the key order of
 * the contraction is free: taking logical k = t as key 2t and k = t+4 as key 2t+1 makes the C
 * fragment of S the A fragment of P ({c0, c2, c1, c3}), and V's B fragment is then
 * V[2t][g], V[2t+1][g]: two 4-byte shared loads (no 32-bit ldmatrix transpose exists).
 * Where shared memory allows (d64-d192), K and V are split once a tile by the block, each thread
 * its own cp.async chunks right after they land (hi in place, lo in a second tile), instead of by
 * every warp for every fragment it loads: 3xTF32 d128 55.6 -> 59.9 TFLOP/s on the H100.
 * Template: D (instantiated head dim), X3 (3xTF32 or plain TF32). */
#ifndef MFA_CUDA_FWD32_CUH
#define MFA_CUDA_FWD32_CUH

#include <cuda_runtime.h>

#include "../ptx.cuh"
#include "../tile-sizes.h"
#include "common.cuh"
#include "softmax.cuh"

namespace mfa_fwd32 {

template <int D> struct Fwd32 {
    static constexpr int BR = Fwd32Tile<D>::BR, BC = Fwd32Tile<D>::BC, WARPS = Fwd32Tile<D>::WARPS;
    static constexpr int THREADS = WARPS * 32;
    static constexpr int DP = D + 4;      /* smem row pitch in floats (see the top of the file) */
    static constexpr int RW = BR / WARPS; /* rows per warp */
    static constexpr int MT = RW / 16;    /* m16 tiles per warp */
    static constexpr int NT = BC / 8;     /* n8 tiles of S = k8 steps of P V */
    static constexpr int DT = D / 8;      /* n8 tiles of O = k8 steps of Q K^T */
    /* K and V split once a tile, by the block (hi in place, lo in a tile of its own), where the
     * two lo tiles fit: d64-d192. Else (d256) every warp splits the fragments it loads. */
    static constexpr bool PRESPLIT = (size_t)(BR + 4 * BC) * DP * sizeof(float) <= 227 * 1024;
    static constexpr size_t SMEM = (size_t)(BR + (PRESPLIT ? 4 : 2) * BC) * DP * sizeof(float);
    static_assert(D % 8 == 0 && RW % 16 == 0 && BC % 16 == 0, "tile shapes");
};

/* x -> (hi, lo) as TF32 operands: hi = x rounded to nearest (ties away) at 10 mantissa bits, lo =
 * x - hi exactly (the MMA ignores lo's bits below its own 10). Integer rounding: adding half an
 * ulp of TF32 carries into the kept bits exactly when the dropped part is >= half. */
__device__ __forceinline__ uint32_t tf32_hi(float x) { return (__float_as_uint(x) + 0x1000u) & 0xffffe000u; }
__device__ __forceinline__ void split(float x, uint32_t &hi, uint32_t &lo) {
    hi = tf32_hi(x);
    lo = __float_as_uint(x - __uint_as_float(hi));
}

/* D += A B, 16x8x8, TF32 operands, fp32 accumulators. */
__device__ __forceinline__ void mma1688(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* a b with split operands: the large term into big, the two cross terms into small. The tensor
 * cores add with truncation (each MMA may shorten its accumulator by up to an ulp, always toward
 * zero), so the long chains are kept short and apart: the cross terms, 2^-11 the size, lose
 * nothing that matters in their own accumulator, and the big one is summed in fp32 (round to
 * nearest) after at most D / 8 (S) or BC / 8 (O, per key tile) MMAs. */
template <bool X3>
__device__ __forceinline__ void mma3(float (&big)[4], float (&small)[4], const uint32_t (&ah)[4], const uint32_t (&al)[4],
                                     uint32_t bh0, uint32_t bh1, uint32_t bl0, uint32_t bl1) {
    if (X3) {
        mma1688(small, al, bh0, bh1);
        mma1688(small, ah, bl0, bl1);
    }
    mma1688(big, ah, bh0, bh1);
}

/* cp.async of ROWS rows (n_valid real) of d_valid floats (a multiple of 4) into a tile of pitch
 * DP floats; the rest of the tile (rows, and dims up to D) is zero-filled. */
template <int D, int ROWS, int THREADS>
__device__ __forceinline__ void load_tile32(uint32_t s, const float *g, int64_t row_stride, int n_valid, int d_valid,
                                            const float *any_valid) {
    constexpr int DP = D + 4, CH = D / 4; /* 16-byte chunks a row */
    static_assert(ROWS * CH % THREADS == 0, "whole rounds of chunks");
#pragma unroll
    for (int k = 0; k < ROWS * CH / THREADS; k++) {
        const int x = threadIdx.x + k * THREADS, r = x / CH, c = x % CH;
        const bool ok = r < n_valid && c * 4 < d_valid;
        cp_async16(s + (r * DP + c * 4) * 4, ok ? (const void *)(g + r * row_stride + c * 4) : (const void *)any_valid,
                   ok ? 16 : 0);
    }
}

/* Splits, in place, the chunks of a ROWS-row tile that this thread loaded with load_tile32 (its
 * own cp.async copies: visible to it after cp_async_wait, before any barrier): hi overwrites x,
 * lo goes to the same place in the tile at `lo` (X3 only). */
template <int D, int ROWS, int THREADS, bool X3> __device__ __forceinline__ void split_tile32(uint32_t s, uint32_t lo) {
    constexpr int DP = D + 4, CH = D / 4;
#pragma unroll
    for (int k = 0; k < ROWS * CH / THREADS; k++) {
        const int x = threadIdx.x + k * THREADS, r = x / CH, c = x % CH;
        const uint32_t at = (r * DP + c * 4) * 4;
        uint32_t v[4], h[4], l[4];
        asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n" : "=r"(v[0]), "=r"(v[1]), "=r"(v[2]), "=r"(v[3]) : "r"(s + at));
#pragma unroll
        for (int e = 0; e < 4; e++) split(__uint_as_float(v[e]), h[e], l[e]);
        asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(s + at), "r"(h[0]), "r"(h[1]), "r"(h[2]), "r"(h[3]));
        if (X3)
            asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"r"(lo + at), "r"(l[0]), "r"(l[1]), "r"(l[2]),
                         "r"(l[3]));
    }
}

template <int D, bool X3> __device__ __forceinline__ void fwd32_body(const Args &a, char *smem) {
    using K = Fwd32<D>;
    constexpr int BR = K::BR, BC = K::BC, THREADS = K::THREADS, DP = K::DP, RW = K::RW;
    constexpr int MT = K::MT, NT = K::NT, DT = K::DT;
    /* TF32 alone (allow_tf32) keeps rounding each fragment as it loads it: two instructions an
     * element, less than the split pass and its stores (measured: 118.8 vs 110.8 TFLOP/s). */
    constexpr bool PRE = K::PRESPLIT && X3;
    const uint32_t sQ = smem_u32(smem), sK = sQ + BR * DP * 4, sV = sK + BC * DP * 4;
    const uint32_t sKl = sV + BC * DP * 4, sVl = sKl + BC * DP * 4; /* PRE: the lo halves */
    const float *sVf = (const float *)(smem + (size_t)(BR + BC) * DP * 4);
    const float *sVlf = (const float *)(smem + (size_t)(BR + 3 * BC) * DP * 4);

    const FwdBlock blk = mfa_fwd_block(a, BR, Fwd32Tile<D>::MINB);
    const int64_t b = blk.b, h = blk.h, hk = h / a.group, i0 = blk.i0;
    const Seq s = mfa_seq(a, b);
    if (i0 >= s.sq) return;
    const int n_rows = (int)min((int64_t)BR, s.sq - i0);
    const FwdKeys keys(a, s, i0, n_rows);

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const float *q = (const float *)a.q.data + s.tb * a.q.stride[0] + (s.q0 + i0) * a.q.stride[1] + h * a.q.stride[2];
    const float *kg = (const float *)a.k.data + s.tb * a.k.stride[0] + s.k0 * a.k.stride[1] + hk * a.k.stride[2];
    const float *vg = (const float *)a.v.data + s.tb * a.v.stride[0] + s.k0 * a.v.stride[1] + hk * a.v.stride[2];
    const int dqk = (int)a.head_dim_qk, dv = (int)a.head_dim_v;

    int64_t j, j_end;
    keys.tiles(BC, j, j_end);

    load_tile32<D, BR, THREADS>(sQ, q, a.q.stride[1], n_rows, dqk, (const float *)a.q.data);
    cp_async_commit();
    if (j < j_end) {
        const int64_t j0 = j * BC;
        load_tile32<D, BC, THREADS>(sK, kg + j0 * a.k.stride[1], a.k.stride[1], (int)min((int64_t)BC, s.sk - j0), dqk,
                                    (const float *)a.k.data);
    }
    cp_async_commit();

    float acc_o[MT][DT][4];
    float row_m[MT][2], row_l[MT][2]; /* running max (score units) and this thread's partial sum */
#pragma unroll
    for (int mt = 0; mt < MT; mt++) fwd_rows_start<DT>(acc_o[mt], row_m[mt], row_l[mt]);

    const bool xform = a.softcap > 0.0f || a.mask.data != nullptr;
    const float sl2 = xform ? 1.0f : a.scale_log2;
    const int row0 = warp * RW;

    /* Per-lane ldmatrix coordinates: Q rows for A (matrices: rows 0-7 / 8-15 x words 0-3 / 4-7),
     * K rows for B of two n-tiles (keys 0-7 / 8-15 x words 0-3 / 4-7). */
    const int a_row = (lane & 7) + ((lane >> 3) & 1) * 8, a_col = (lane >> 4) * 4;
    const int b_row = (lane & 7) + (lane >> 4) * 8, b_col = ((lane >> 3) & 1) * 4;

    while (j < j_end) {
        const int64_t j0 = j * BC;
        const int nk = (int)min((int64_t)BC, s.sk - j0);
        cp_async_wait<0>();
        if (PRE) split_tile32<D, BC, THREADS, X3>(sK, sKl);
        __syncthreads(); /* K_j (and Q) landed (and split); every warp is done with V_{j-1} */
        load_tile32<D, BC, THREADS>(sV, vg + j0 * a.v.stride[1], a.v.stride[1], nk, dv, (const float *)a.v.data);
        cp_async_commit();

        /* S = Q K^T (the hi*hi terms in acc_s, the cross terms in acc_x) */
        float acc_s[MT][NT][4], acc_x[MT][NT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++) acc_s[mt][nt][e] = acc_x[mt][nt][e] = 0.0f;
#pragma unroll
        for (int ks = 0; ks < DT; ks++) {
            uint32_t qh[MT][4], ql[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                uint32_t r[4];
                ldsm_x4(r, sQ + ((row0 + mt * 16 + a_row) * DP + ks * 8 + a_col) * 4);
#pragma unroll
                for (int e = 0; e < 4; e++) split(__uint_as_float(r[e]), qh[mt][e], ql[mt][e]);
            }
#pragma unroll
            for (int np = 0; np < NT / 2; np++) {
                uint32_t kh[4], kl[4];
                const uint32_t at = ((np * 16 + b_row) * DP + ks * 8 + b_col) * 4;
                if (PRE) {
                    ldsm_x4(kh, sK + at);
                    if (X3) ldsm_x4(kl, sKl + at);
                } else {
                    uint32_t r[4];
                    ldsm_x4(r, sK + at);
#pragma unroll
                    for (int e = 0; e < 4; e++) split(__uint_as_float(r[e]), kh[e], kl[e]);
                }
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma3<X3>(acc_s[mt][2 * np], acc_x[mt][2 * np], qh[mt], ql[mt], kh[0], kh[1], kl[0], kl[1]);
                    mma3<X3>(acc_s[mt][2 * np + 1], acc_x[mt][2 * np + 1], qh[mt], ql[mt], kh[2], kh[3], kl[2], kl[3]);
                }
            }
        }
        if (X3) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
#pragma unroll
                    for (int e = 0; e < 4; e++) acc_s[mt][nt][e] += acc_x[mt][nt][e];
        }

        /* Transform and mask, only where needed (as in fwd.cuh). */
        const bool need_mask = keys.needs_mask(s, j0, BC);
        if (xform || need_mask) {
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int hf = 0; hf < 2; hf++) {
                    const int64_t i = i0 + row0 + mt * 16 + g + hf * 8;
                    int64_t rlo, rhi;
                    mfa_key_range(a, i, s.sq, s.sk, rlo, rhi);
                    const int c0 = (int)(j0 + 2 * t);
                    const int lo_c = (int)rlo - c0, hi_c = (int)rhi - c0;
                    const bool row_ok = i < s.sq;
#pragma unroll
                    for (int nt = 0; nt < NT; nt++)
#pragma unroll
                        for (int e = 0; e < 2; e++) {
                            const int c = nt * 8 + e;
                            float x = acc_s[mt][nt][hf * 2 + e];
                            const bool keep = c >= lo_c && c < hi_c;
                            if (xform) {
                                x *= a.scale;
                                if (a.softcap > 0.0f) x = a.softcap * tanhf(x / a.softcap);
                                if (row_ok && keep) x += mfa_dense_bias(a, b, h, i, c0 + c);
                                x *= MFA_LOG2E;
                            }
                            acc_s[mt][nt][hf * 2 + e] = keep ? x : -INFINITY;
                        }
                }
        }

        /* Online softmax; P is split into TF32 halves for the P V product (A fragments, see the
         * top of the file: {c0, c2, c1, c3} of S's n-tile kk is P's k-step kk). The rescale of O
         * by corr happens when this tile's P V is added. */
        float corr[MT][2];
        uint32_t ph[MT][NT][4], pl[MT][NT][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int hf = 0; hf < 2; hf++) {
                float mx = row_m[mt][hf];
#pragma unroll
                for (int nt = 0; nt < NT; nt++) mx = fmaxf(mx, fmaxf(acc_s[mt][nt][hf * 2], acc_s[mt][nt][hf * 2 + 1]));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const float m_use = mx == -INFINITY ? 0.0f : mx;
                corr[mt][hf] = ex2((row_m[mt][hf] - m_use) * sl2);
                const float base = m_use * sl2;
                row_m[mt][hf] = mx;
                float sum = 0.0f;
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const float p = ex2(fmaf(acc_s[mt][nt][hf * 2 + e], sl2, -base));
                        split(p, ph[mt][nt][hf + 2 * e], pl[mt][nt][hf + 2 * e]); /* c(hf, e) -> a[hf + 2e] */
                        sum += p;
                    }
                row_l[mt][hf] = row_l[mt][hf] * corr[mt][hf] + sum;
            }

        cp_async_wait<0>();
        if (PRE) split_tile32<D, BC, THREADS, X3>(sV, sVl);
        __syncthreads(); /* V_j landed (and split); every warp is done with K_j */
        j++;
        if (j < j_end) {
            const int64_t jn = j * BC;
            load_tile32<D, BC, THREADS>(sK, kg + jn * a.k.stride[1], a.k.stride[1], (int)min((int64_t)BC, s.sk - jn),
                                        dqk, (const float *)a.k.data);
        }
        cp_async_commit();

        /* O = O corr + P V_j: k-step kk covers keys kk*8..+8 in the permuted order (logical t =
         * key 2t, t+4 = key 2t+1). This tile's product goes into fresh accumulators (GD output
         * n-tiles at a time: independent MMA chains) and joins O in fp32. */
        constexpr int GD = 2;
        const float *v0 = sVf + 2 * t * DP + g; /* V[2t][g] of k-step 0, n-tile 0 */
        const float *w0 = sVlf + 2 * t * DP + g; /* PRE: its lo half */
#pragma unroll
        for (int d0 = 0; d0 < DT; d0 += GD) {
            float tb[MT][GD][4], tx[MT][GD][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int u = 0; u < GD; u++)
#pragma unroll
                    for (int e = 0; e < 4; e++) tb[mt][u][e] = tx[mt][u][e] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < NT; kk++)
#pragma unroll
                for (int u = 0; u < GD; u++) {
                    uint32_t vh0, vl0, vh1, vl1;
                    const int at = kk * 8 * DP + (d0 + u) * 8;
                    if (PRE) {
                        vh0 = __float_as_uint(v0[at]), vh1 = __float_as_uint(v0[at + DP]);
                        vl0 = X3 ? __float_as_uint(w0[at]) : 0u, vl1 = X3 ? __float_as_uint(w0[at + DP]) : 0u;
                    } else {
                        split(v0[at], vh0, vl0);
                        split(v0[at + DP], vh1, vl1);
                    }
#pragma unroll
                    for (int mt = 0; mt < MT; mt++) mma3<X3>(tb[mt][u], tx[mt][u], ph[mt][kk], pl[mt][kk], vh0, vh1, vl0, vl1);
                }
#pragma unroll
            for (int mt = 0; mt < MT; mt++)
#pragma unroll
                for (int u = 0; u < GD; u++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        acc_o[mt][d0 + u][e] = fmaf(acc_o[mt][d0 + u][e], corr[mt][e >> 1], tb[mt][u][e] + tx[mt][u][e]);
        }
    }
    cp_async_wait<0>();

    /* Epilogue: O / l in the output's dtype (pairs of floats where o is fp32 with unit stride),
     * LSE = m + log l (natural log). */
    const bool vec_o = a.o.dtype == MFA_DTYPE_F32 && a.o.stride[3] == 1 && (uintptr_t)a.o.data % 8 == 0 &&
                       ((a.o.stride[1] | a.o.stride[2] | (a.varlen ? 0 : a.o.stride[0])) & 1) == 0;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            float l = row_l[mt][hf];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            const int r = row0 + mt * 16 + g + hf * 8;
            const float inv = l > 0.0f ? 1.0f / l : 0.0f;
            if (r < n_rows) {
                const int64_t at = mfa_at(a.o, s.tb, s.q0 + i0 + r, h, 0);
#pragma unroll
                for (int dt = 0; dt < DT; dt++) {
                    const int d = dt * 8 + 2 * t; /* dv is a multiple of 4: d < dv covers d + 1 */
                    if (d >= dv) continue;
                    const float x0 = acc_o[mt][dt][hf * 2] * inv, x1 = acc_o[mt][dt][hf * 2 + 1] * inv;
                    if (vec_o) {
                        *(float2 *)((float *)a.o.data + at + d) = make_float2(x0, x1);
                    } else {
                        mfa_st(a.o.data, a.o.dtype, at + d * a.o.stride[3], x0);
                        mfa_st(a.o.data, a.o.dtype, at + (d + 1) * a.o.stride[3], x1);
                    }
                }
                if (a.lse && t == 0)
                    a.lse[mfa_lse_at(a, b, s, h, i0 + r)] =
                        l > 0.0f ? row_m[mt][hf] * sl2 * MFA_LN2 + logf(l) : -INFINITY;
            }
        }
}

/* One kernel for both precisions: the branch is uniform and taken once. */
template <int D>
__global__ void __launch_bounds__(Fwd32<D>::THREADS, Fwd32Tile<D>::MINB) fwd32_kernel(const __grid_constant__ Args a) {
    extern __shared__ __align__(128) char smem[];
    if (a.allow_tf32)
        fwd32_body<D, false>(a, smem);
    else
        fwd32_body<D, true>(a, smem);
}

/* Host side: launch one instantiation. */
template <int D> cudaError_t launch(const Args &a, cudaStream_t stream) {
    using K = Fwd32<D>;
    return mfa_launch((const void *)fwd32_kernel<D>, a.batch * a.heads_q * ((a.max_sq + K::BR - 1) / K::BR), K::THREADS,
                      K::SMEM, a, stream);
}

} // namespace mfa_fwd32

#define MFA_FWD32_INSTANTIATE(D) template cudaError_t mfa_fwd32::launch<D>(const Args &, cudaStream_t);

#endif
