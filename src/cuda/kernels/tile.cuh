/* tile.cuh — moving tiles of rows between global and shared memory (both tensor-core families).
 *
 * A tile is ROWS rows of a [token, dim] slice with unit dim stride, stored in shared memory with
 * the swizzle of ptx.cuh, in one of two layouts: rows of DP = D rounded up to 64 elements (swz,
 * for ldmatrix), or PANEL: D / 64 column panels of ROWS rows x 128 bytes each (pnl, the 128-byte
 * swizzle layout a wgmma descriptor reads). */
#ifndef MFA_CUDA_TILE_CUH
#define MFA_CUDA_TILE_CUH

#include "../ptx.cuh"

/* cp.async of ROWS rows (n_valid of them real) of `d_valid` elements into a swizzled tile; the
 * rest of the tile (rows, and dims up to D) is zero-filled. Thread x (tid: 0..THREADS-1, the
 * thread index unless a subset of the block loads) copies chunk x % CHP of rows x / CHP + k * RSTEP,
 * so its source pointer and destination advance by constants. */
template <typename T, int D, int ROWS, int THREADS, bool PANEL = false>
__device__ __forceinline__ void load_tile(uint32_t s, const T *g, int64_t row_stride, int n_valid, int d_valid,
                                          const T *any_valid, int tid = (int)threadIdx.x) {
    constexpr int DP = (D + 63) / 64 * 64, CH = D / 8;
    constexpr int CHP = CH <= 4 ? 4 : CH <= 8 ? 8 : CH <= 16 ? 16 : 32; /* chunks a row, power of 2 */
    constexpr int RSTEP = THREADS / CHP;
    if constexpr (PANEL && D > 64 && RSTEP < 8) {
        /* too few threads for a thread's rows to keep their swizzle phase: two halves of whole
         * panels (d256 by one warpgroup) */
        constexpr int H = D / 2;
        load_tile<T, H, ROWS, THREADS, true>(s, g, row_stride, n_valid, d_valid, any_valid, tid);
        load_tile<T, H, ROWS, THREADS, true>(s + H / 64 * ROWS * 128, g + H, row_stride, n_valid, d_valid - H, any_valid,
                                             tid);
        return;
    } else {
        static_assert(RSTEP % 8 == 0 && ROWS % RSTEP == 0, "a thread's rows keep their swizzle phase");
    }
    const int c = tid % CHP, r0 = tid / CHP;
    if (c >= CH) return;
    const bool col_ok = c * 8 < d_valid;
    const T *src = g + r0 * row_stride + c * 8;
    const int64_t step = RSTEP * row_stride;
    static_assert(!PANEL || D % 64 == 0, "panels are whole");
    uint32_t dst = s + (PANEL ? pnl<ROWS>(r0, c) : swz<DP>(r0, c));
#pragma unroll
    for (int k = 0; k < ROWS / RSTEP; k++) {
        const bool ok = col_ok && r0 + k * RSTEP < n_valid;
        cp_async16(dst, ok ? (const void *)src : (const void *)any_valid, ok ? 16 : 0);
        src += step;
        dst += RSTEP * (PANEL ? 64 : DP) * 2;
    }
}

#endif
