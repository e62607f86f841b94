/* bwd_walk.cuh — what the tensor-core backwards (bwd.cuh, bwd_sm90.cuh) share: the query tiles a
 * block of keys visits, the loads of one query tile, and the stores of dK and dV.
 *
 * A block owns the keys [j0, j0 + nk) of one (batch, kv head) and walks the query tiles (BR rows,
 * of every q head of its GQA group) that can see them. Row i sees keys [lo(i), hi(i)), both
 * non-decreasing in i, so the tiles that meet the block's keys are one run, and so are those
 * entirely inside the mask (no per-element test): found once, by bisection. */
#ifndef MFA_CUDA_BWD_WALK_CUH
#define MFA_CUDA_BWD_WALK_CUH

#include "common.cuh"
#include "tile.cuh"

struct BwdWalk {
    int t_first, t_end; /* visited tiles [t_first, t_end) of each q head */
    int t_in, t_out;    /* tiles [t_in, t_out) see all BC keys of the block: no mask to apply */
    int t_start;        /* the walk goes t_start .. t_end - 1, t_first .. t_start - 1 */
    bool keys_short;    /* the block's last keys are padding */

    __device__ __forceinline__ BwdWalk(const Args &a, const Seq &s, int64_t j0, int nk, int br, int bc) {
        const int n_tiles = (int)((s.sq + br - 1) / br);
        auto first_tile = [&](auto pred) { /* the first tile where a monotone predicate turns true */
            int lo = 0, hi = n_tiles;
            while (lo < hi) {
                const int mid = (lo + hi) / 2;
                if (pred(mid)) hi = mid; else lo = mid + 1;
            }
            return lo;
        };
        auto first_row = [&](int tq) { return (int64_t)tq * br; };
        auto last_row = [&](int tq) { return min((int64_t)tq * br + br, s.sq) - 1; };
        auto lo_of = [&](int64_t i) { int64_t l, r; mfa_key_range(a, i, s.sq, s.sk, l, r); return l; };
        auto hi_of = [&](int64_t i) { int64_t l, r; mfa_key_range(a, i, s.sq, s.sk, l, r); return r; };
        t_first = first_tile([&](int tq) { return hi_of(last_row(tq)) > j0; });
        t_end = first_tile([&](int tq) { return lo_of(first_row(tq)) >= j0 + nk; });
        t_in = first_tile([&](int tq) { return hi_of(first_row(tq)) >= j0 + bc; });
        t_out = first_tile([&](int tq) { return lo_of(last_row(tq)) > j0; });
        keys_short = j0 + bc > s.sk;
        t_start = t_first;
    }
    /* Start the walk `seed` tiles in: blocks of one head that run together then add into
     * different dQ rows at any moment instead of queueing on the same addresses. */
    __device__ __forceinline__ void rotate(int64_t seed) {
        const int n = t_end - t_first;
        if (n > 0) t_start = t_first + (int)(seed % n);
    }
    __device__ __forceinline__ int next(int tq) const { return tq + 1 == t_end ? t_first : tq + 1; }
    __device__ __forceinline__ bool needs_mask(int tq) const { return keys_short || tq < t_in || tq >= t_out; }
};

/* The block's keys [klo, khi) (of BC, from j0) that query row i sees: all of them on a tile off
 * the mask's edge; empty for a row that sees no key (whose lse is -inf). */
__device__ __forceinline__ void bwd_row_keys(const Args &a, const Seq &s, int64_t i, int64_t j0, int bc, bool need_mask,
                                             int &klo, int &khi) {
    klo = 0, khi = bc;
    if (!need_mask) return;
    int64_t rlo, rhi;
    mfa_key_range(a, i, s.sq, s.sk, rlo, rhi);
    klo = (int)min(max(rlo - j0, (int64_t)0), (int64_t)bc);
    khi = (int)min(max(rhi - j0, (int64_t)0), (int64_t)bc);
}

/* The same for every row q of a query tile at i0, found once a tile: under causal and window masks
 * both bounds move one key a row (clamped to the sequence), so row q's keys are
 * [clamp(x0 + q, 0, kmax), clamp(z0 + q, 0, kmax)) with three 32-bit values, where bwd_row_keys
 * costs a 64-bit mfa_key_range a row (ncu, H200, d64 S = 1k causal: the integer pipe was the
 * busiest, ahead of the tensor cores). An unbounded side sits far outside [0, kmax]. */
struct BwdTileKeys {
    int x0, z0, kmax;
    __device__ __forceinline__ BwdTileKeys(const Args &a, const Seq &s, int64_t i0, int64_t j0, int bc, bool need_mask) {
        constexpr int64_t FAR = 1 << 30;
        auto clip = [](int64_t v) { return (int)min(max(v, -FAR), FAR); };
        x0 = (int)-FAR, z0 = (int)FAR, kmax = bc;
        if (!need_mask) return;
        kmax = (int)min((int64_t)bc, s.sk - j0);
        const int64_t diag = mfa_key_diag(a, i0, s.sq, s.sk) - j0; /* mfa_key_range's bounds, less j0 */
        if (a.mask_kind == MFA_MASK_CAUSAL) {
            z0 = clip(diag + 1);
        } else if (a.mask_kind == MFA_MASK_WINDOW) {
            if (a.window_left >= 0) x0 = clip(diag - min(a.window_left, FAR));
            if (a.window_right >= 0) z0 = clip(diag + min(a.window_right, FAR) + 1);
        }
    }
    __device__ __forceinline__ void row(int q, int &klo, int &khi) const {
        klo = min(max(x0 + q, 0), kmax);
        khi = min(max(z0 + q, 0), kmax);
    }
};

/* BwdTileKeys in one register, for the d128 kernel, where its three spill through phase A (84
 * bytes): only the tile's diagonal less j0 is kept; the window sides and the sequence's end come
 * from the params each row, a few more integer operations a row than BwdTileKeys but no 64-bit
 * mfa_key_range. The diagonal less j0 lies in (-max(sq, sk), max(sq, sk)), so it is exact in 32
 * bits while `fits` holds (the dispatcher's condition for the kernels that use it); window sides
 * are clipped to 2^30, which keeps every sum in 32 bits and every clipped side outside [0, bc]. */
struct BwdTileDiag {
    static constexpr int64_t NEAR = 1 << 29, FAR = 1 << 30;
    int d0;
    static bool fits(const Args &a) { return a.max_sq <= NEAR && a.max_sk <= NEAR; }
    __device__ __forceinline__ BwdTileDiag(const Args &a, const Seq &s, int64_t i0, int64_t j0)
        : d0((int)mfa_key_diag(a, i0, s.sq, s.sk) - (int)j0) {}
    /* row q's keys of the tile, [klo, khi) of kmax = min(bc, sk - j0) */
    __device__ __forceinline__ void row(const Args &a, int kmax, int q, int &klo, int &khi) const {
        const int d = d0 + q;
        int x = (int)-FAR, z = (int)FAR;
        if (a.mask_kind == MFA_MASK_CAUSAL) {
            z = d + 1;
        } else if (a.mask_kind == MFA_MASK_WINDOW) {
            if (a.window_left >= 0) x = d - (int)min(a.window_left, FAR);
            if (a.window_right >= 0) z = d + (int)min(a.window_right, FAR) + 1;
        }
        klo = min(max(x, 0), kmax);
        khi = min(max(z, 0), kmax);
    }
};

/* The first row of q head h of a sequence: Q and dO pointers and the LSE / delta index. */
template <typename T> struct BwdHead {
    const T *q, *dout;
    int64_t stat;
    __device__ __forceinline__ BwdHead(const Args &a, const Seq &s, int64_t b, int64_t h)
        : q((const T *)a.q.data + s.tb * a.q.stride[0] + s.q0 * a.q.stride[1] + h * a.q.stride[2]),
          dout((const T *)a.dout.data + s.tb * a.dout.stride[0] + s.q0 * a.dout.stride[1] + h * a.dout.stride[2]),
          stat(mfa_lse_at(a, b, s, h, 0)) {}
};

/* The lse and delta of query tile tq (its part of bwd_load_rows, alone where the TMA unit copies
 * the tile's Q and dO rows) */
template <typename T, int BR, int THREADS, bool ONLY_COPIES = false>
__device__ __forceinline__ void bwd_load_stats(const Args &a, const Seq &s, const BwdHead<T> &hd, int tq, float *st,
                                               int tid = (int)threadIdx.x) {
    const int64_t i0 = (int64_t)tq * BR;
    const int n = (int)min((int64_t)BR, s.sq - i0);
    for (int r = tid; r < BR; r += THREADS) {
        if constexpr (ONLY_COPIES) {
            const int64_t at = hd.stat + i0 + (r < n ? r : 0);
            cp_async4z(smem_u32(st + r), a.lse + at, r < n ? 4 : 0);
            cp_async4z(smem_u32(st + BR + r), a.delta + at, r < n ? 4 : 0);
        } else if (r < n) {
            cp_async4(smem_u32(st + r), a.lse + hd.stat + i0 + r);
            cp_async4(smem_u32(st + BR + r), a.delta + hd.stat + i0 + r);
        } else {
            st[r] = INFINITY, st[BR + r] = 0.0f;
        }
    }
}

/* cp.async of query tile tq of a head: Q and dO (BR rows, zero-filled past the sequence) into sQ
 * and sO in the tile layout PANEL (tile.cuh), the LSE and delta into st[0..BR) and st[BR..2BR), by
 * THREADS threads (tid: 0..THREADS-1). Padding rows get lse = +inf, so their P = 2^-inf = 0; with
 * ONLY_COPIES (loads that cp.async.mbarrier.arrive announces, which a plain store would escape)
 * they get lse = delta = 0 by the copies' zero fill instead: their Q and dO rows are zero, so
 * P = 1 there meets only zeros (dV gains P^T dO = 0, and dS = P (dP - delta) = 0). */
template <typename T, int D, int BR, int THREADS, bool PANEL, bool ONLY_COPIES = false>
__device__ __forceinline__ void bwd_load_rows(const Args &a, const Seq &s, const BwdHead<T> &hd, int tq, uint32_t sQ,
                                              uint32_t sO, float *st, int tid = (int)threadIdx.x) {
    const int64_t i0 = (int64_t)tq * BR;
    const int n = (int)min((int64_t)BR, s.sq - i0);
    load_tile<T, D, BR, THREADS, PANEL>(sQ, hd.q + i0 * a.q.stride[1], a.q.stride[1], n, (int)a.head_dim_qk,
                                        (const T *)a.q.data, tid);
    load_tile<T, D, BR, THREADS, PANEL>(sO, hd.dout + i0 * a.dout.stride[1], a.dout.stride[1], n, (int)a.head_dim_v,
                                        (const T *)a.dout.data, tid);
    bwd_load_stats<T, BR, THREADS, ONLY_COPIES>(a, s, hd, tq, st, tid);
}

/* dK and dV of the block's nk keys, staged in shared memory in the input type (sdK, sdV: BC rows of
 * D in the PANEL layout or swz rows), out as whole 16-byte chunks (dk / dv: 16-byte rows). */
template <typename T, int D, int BC, int THREADS, bool PANEL>
__device__ __forceinline__ void bwd_store_dkdv(const Args &a, const Seq &s, int64_t j0, int64_t hk, int nk, uint32_t sdK,
                                               uint32_t sdV) {
    constexpr int DP = (D + 63) / 64 * 64, CH = D / 8;
    T *dkg = (T *)a.dk.data + mfa_at(a.dk, s.tb, s.k0 + j0, hk, 0);
    T *dvg = (T *)a.dv.data + mfa_at(a.dv, s.tb, s.k0 + j0, hk, 0);
    for (int x = threadIdx.x; x < BC * CH; x += THREADS) {
        const int r = x / CH, c = x % CH;
        if (r >= nk) continue;
        const uint32_t at = PANEL ? pnl<BC>(r, c) : swz<DP>(r, c);
        uint4 u;
        if (c * 8 < a.head_dim_qk) {
            asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n"
                         : "=r"(u.x), "=r"(u.y), "=r"(u.z), "=r"(u.w) : "r"(sdK + at));
            *(uint4 *)(dkg + r * a.dk.stride[1] + c * 8) = u;
        }
        if (c * 8 < a.head_dim_v) {
            asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n"
                         : "=r"(u.x), "=r"(u.y), "=r"(u.z), "=r"(u.w) : "r"(sdV + at));
            *(uint4 *)(dvg + r * a.dv.stride[1] + c * 8) = u;
        }
    }
}

/* Key `key` of the block (half hf of a thread's dK and dV fragments, dims from d0; dK scaled)
 * stored element by element, in any dtype and stride: the backwards' path for gradients that are
 * not 16-byte rows. */
template <int NT>
__device__ __forceinline__ void bwd_store_dkdv_row(const Args &a, const Seq &s, int64_t j0, int64_t hk, int key, int d0,
                                                   const float (&acc_dk)[NT][4], const float (&acc_dv)[NT][4], int hf,
                                                   int t) {
    const int dqk = (int)a.head_dim_qk, dv = (int)a.head_dim_v;
    const int64_t at_k = mfa_at(a.dk, s.tb, s.k0 + j0 + key, hk, 0);
    const int64_t at_v = mfa_at(a.dv, s.tb, s.k0 + j0 + key, hk, 0);
#pragma unroll
    for (int n = 0; n < NT; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int d = d0 + n * 8 + 2 * t + e;
            if (d < dqk) mfa_st(a.dk.data, a.dk.dtype, at_k + d * a.dk.stride[3], acc_dk[n][hf * 2 + e] * a.scale);
            if (d < dv) mfa_st(a.dv.data, a.dv.dtype, at_v + d * a.dv.stride[3], acc_dv[n][hf * 2 + e]);
        }
}

#endif
