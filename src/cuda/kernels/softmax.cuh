/* softmax.cuh — the per-row work of the tensor-core forwards (fwd.cuh, mma.sync; fwd_sm90.cuh,
 * wgmma), on one warp's m16 tile of scores in the C-fragment layout both share (ptx.cuh): a thread
 * holds columns 8n + 2t, +1 of rows g (elements 0, 1) and g + 8 (elements 2, 3), lane = 4g + t;
 * and the write of a warp's finished output rows. */
#ifndef MFA_CUDA_SOFTMAX_CUH
#define MFA_CUDA_SOFTMAX_CUH

#include "../ptx.cuh"
#include "common.cuh"

/* Masks and transforms the scores of keys j0.. for rows i_g (elements 0, 1) and i_g + 8: keys the
 * masks drop become -inf; with xform (softcap or a dense bias) the kept scores are scaled,
 * capped, biased and turned into log2 units here. */
template <int NT>
__device__ __forceinline__ void fwd_mask_scores(const Args &a, float (&acc)[NT][4], const Seq &s, int64_t b,
                                                int64_t h, int64_t i_g, int64_t j0, int t, bool xform) {
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        const int64_t i = i_g + hf * 8;
        int64_t rlo, rhi;
        mfa_key_range(a, i, s.sq, s.sk, rlo, rhi);
        /* keys kept: columns c of this thread (n * 8 + e) with lo_c <= c < hi_c */
        const int c0 = (int)(j0 + 2 * t);
        const int lo_c = (int)rlo - c0, hi_c = (int)rhi - c0;
        if (!xform) {
#pragma unroll
            for (int n = 0; n < NT; n++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const int c = n * 8 + e;
                    if (c < lo_c || c >= hi_c) acc[n][hf * 2 + e] = -INFINITY;
                }
            continue;
        }
        const bool row_ok = i < s.sq;
#pragma unroll
        for (int n = 0; n < NT; n++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int c = n * 8 + e;
                const bool keep = c >= lo_c && c < hi_c;
                float x = acc[n][hf * 2 + e] * a.scale;
                if (a.softcap > 0.0f) x = a.softcap * tanhf(x / a.softcap);
                if (row_ok && keep) x += mfa_dense_bias(a, b, h, i, c0 + c);
                acc[n][hf * 2 + e] = keep ? x * MFA_LOG2E : -INFINITY;
            }
    }
}

/* Before the first key tile: a thread's O accumulators zero, its two rows' running max -inf
 * (no score seen) and sum 0 (the Hopper forwards, one m16 tile a warp). */
template <int DT>
__device__ __forceinline__ void fwd_rows_start(float (&acc_o)[DT][4], float (&row_m)[2], float (&row_l)[2]) {
#pragma unroll
    for (int dt = 0; dt < DT; dt++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc_o[dt][e] = 0.0f;
#pragma unroll
    for (int hf = 0; hf < 2; hf++) row_m[hf] = -INFINITY, row_l[hf] = 0.0f;
}

/* One online-softmax step on both rows of a thread: the running max m (score units) and this
 * thread's partial sum l move to the new scores, corr[hf] gets what O must be multiplied by, and
 * the probabilities go to emit(kk, hf, p) four at a time: p[0..1] of n-tile 2kk, p[2..3] of
 * n-tile 2kk + 1 (the k16 step kk of the P V product). They are 2^shift P (the sum counts P):
 * the fp32-accurate forward scales P up for its fp16 halves. A row's scores of an n-tile sit in
 * the 4 lanes of a quad. */
/* The running max of row hf (elements hf * 2, + 1 of each n-tile) moved to the new scores;
 * corr = what O and l must be multiplied by; returns the max in base-2 units (0 for a row that
 * has seen nothing yet), which P's exponents are taken from. */
template <int NT>
__device__ __forceinline__ float fwd_row_max(const float (&acc_s)[NT][4], float (&row_m)[2], int hf, float sl2,
                                             float &corr) {
    float mx = row_m[hf];
#pragma unroll
    for (int n = 0; n < NT; n++) mx = fmaxf(mx, fmaxf(acc_s[n][hf * 2], acc_s[n][hf * 2 + 1]));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
    const float m_use = mx == -INFINITY ? 0.0f : mx;
    corr = ex2((row_m[hf] - m_use) * sl2);
    row_m[hf] = mx;
    return m_use * sl2;
}

template <int NT, typename Emit>
__device__ __forceinline__ void fwd_softmax_rows(const float (&acc_s)[NT][4], float (&row_m)[2], float (&row_l)[2],
                                                 float (&corr)[2], float sl2, int shift, Emit &&emit) {
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        const float base = fwd_row_max<NT>(acc_s, row_m, hf, sl2, corr[hf]) - (float)shift;
        float sum = 0.0f;
#pragma unroll
        for (int kk = 0; kk < NT / 2; kk++) {
            float p[4];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                p[e] = ex2(fmaf(acc_s[2 * kk + e / 2][hf * 2 + e % 2], sl2, -base));
                sum += p[e];
            }
            emit(kk, hf, p);
        }
        row_l[hf] = row_l[hf] * corr[hf] + (shift ? sum * __uint_as_float((uint32_t)(127 - shift) << 23) : sum);
    }
}

/* The step of the 16-bit forwards: P rounded to T into the A fragments pa, O rescaled at once. */
template <typename T, int NT, int DT>
__device__ __forceinline__ void fwd_softmax_step(float (&acc_s)[NT][4], float (&row_m)[2], float (&row_l)[2],
                                                 uint32_t (&pa)[NT / 2][4], float (&acc_o)[DT][4], float sl2) {
    float corr[2];
    fwd_softmax_rows<NT>(acc_s, row_m, row_l, corr, sl2, 0, [&](int kk, int hf, const float (&p)[4]) {
        pa[kk][hf] = pack2<T>(p[0], p[1]);
        pa[kk][2 + hf] = pack2<T>(p[2], p[3]);
    });
#pragma unroll
    for (int dt = 0; dt < DT; dt++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc_o[dt][e] *= corr[e >> 1];
}

/* The end of a row: its sum over the quad, the LSE (natural log) written by lane t == 0 where
 * asked and the row is real, and 1 / l to scale O by (0 for a row that saw no key). */
__device__ __forceinline__ float fwd_finish_row(const Args &a, const Seq &s, int64_t b, int64_t h, int64_t i, bool real,
                                                float m, float l, float sl2, int t) {
    l += __shfl_xor_sync(0xffffffffu, l, 1);
    l += __shfl_xor_sync(0xffffffffu, l, 2);
    if (a.lse && t == 0 && real) a.lse[mfa_lse_at(a, b, s, h, i)] = l > 0.0f ? m * sl2 * MFA_LN2 + logf(l) : -INFINITY;
    return l > 0.0f ? 1.0f / l : 0.0f;
}

/* Output row i (half hf of a thread's O fragment, scaled by inv) stored element by element, in
 * any dtype and stride: the epilogues' path for outputs that are not 16-byte rows. */
template <int DT>
__device__ __forceinline__ void fwd_store_row_direct(const Args &a, const Seq &s, int64_t h, int64_t i,
                                                     const float (&acc_o)[DT][4], int hf, float inv, int t) {
    const int64_t at = mfa_at(a.o, s.tb, s.q0 + i, h, 0);
    const int dv = (int)a.head_dim_v;
#pragma unroll
    for (int dt = 0; dt < DT; dt++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int d = dt * 8 + 2 * t + e;
            if (d < dv) mfa_st(a.o.data, a.o.dtype, at + d * a.o.stride[3], acc_o[dt][hf * 2 + e] * inv);
        }
}

/* A warp's RW output rows from row0, staged in shared memory at `base` (PANEL_ROWS > 0: the panel
 * layout of a PANEL_ROWS-row tile; 0: swz rows), out as whole 16-byte chunks (o: 16-byte rows). */
template <typename T, int D, int RW, int PANEL_ROWS>
__device__ __forceinline__ void fwd_store_rows(const Args &a, const Seq &s, int64_t h, int64_t i0, int n_rows, int row0,
                                               uint32_t base, int lane) {
    constexpr int DP = (D + 63) / 64 * 64, CH = D / 8;
    __syncwarp();
    T *og = (T *)a.o.data + s.tb * a.o.stride[0] + (s.q0 + i0) * a.o.stride[1] + h * a.o.stride[2];
    for (int x = lane; x < RW * CH; x += 32) {
        const int r = row0 + x / CH, c = x % CH;
        if (r < n_rows && c * 8 < a.head_dim_v) {
            uint32_t at;
            if constexpr (PANEL_ROWS > 0) at = pnl<PANEL_ROWS>(r, c);
            else at = swz<DP>(r, c);
            uint4 v;
            asm volatile("ld.shared.v4.b32 {%0, %1, %2, %3}, [%4];\n"
                         : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                         : "r"(base + at));
            /* st.global.v4 spelled out: from the plain C++ store nvcc emits four 4-byte stores in
             * the persistent kernels (four times the store requests, at each item's end) */
            asm volatile("st.global.v4.b32 [%0], {%1, %2, %3, %4};\n" ::"l"(og + r * a.o.stride[1] + c * 8), "r"(v.x),
                         "r"(v.y), "r"(v.z), "r"(v.w)
                         : "memory");
        }
    }
}

#endif
