/* tma.cuh — tensor maps for the TMA unit's tile copies (the Hopper forward's producer): the
 * host-side encoder of a [batch][seq][head][dim] 16-bit tensor's map and the device-side copy of
 * a tile from it. A map's dimensions are (head dim, then sequence, head and batch in increasing
 * stride); its box is 64 columns (one 128-byte swizzled panel, ptx.cuh's pnl layout) by a tile's
 * rows. */
#ifndef MFA_CUDA_TMA_CUH
#define MFA_CUDA_TMA_CUH

#include <cuda.h> /* CUtensorMap (the driver's encoder is fetched at run time: no -lcuda) */
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <type_traits>

#include "../ptx.cuh"
#include "common.cuh"

/* Where a map put the sequence, head and batch dims (1..3), as encode_map reports them */
struct MapOrder {
    int seq, head, batch;
};

/* The four coordinates of (column c, row, head, batch) in a map of that order */
__device__ __forceinline__ void map_coords(const MapOrder &m, int c, int row, int head, int batch, int (&x)[4]) {
    x[0] = c;
#pragma unroll
    for (int d = 1; d < 4; d++) x[d] = d == m.seq ? row : d == m.head ? head : batch;
}

/* The driver's cuTensorMapEncodeTiled, fetched once through the runtime (NULL: none) */
typedef CUresult (*EncodeTiled)(CUtensorMap *, CUtensorMapDataType, cuuint32_t, void *, const cuuint64_t *,
                                const cuuint64_t *, const cuuint32_t *, const cuuint32_t *, CUtensorMapInterleave,
                                CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);
static inline EncodeTiled encode_tiled() {
    static const EncodeTiled fn = [] {
        void *f = nullptr;
        cudaDriverEntryPointQueryResult found;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &found) !=
                cudaSuccess ||
            found != cudaDriverEntryPointSuccess)
            f = nullptr;
        return (EncodeTiled)f;
    }();
    return fn;
}

/* MFA_CUDA_TMA=0 keeps the producer's cp.async copies (for comparisons and the tests) */
static inline bool tma_wanted() {
    static const bool on = [] {
        const char *e = getenv("MFA_CUDA_TMA");
        return !(e && e[0] == '0');
    }();
    return on;
}

/* The map of a [batch][seq][head][dim]-indexed 16-bit tensor t (any strides: dims 1..3 are
 * ordered by stride, as the encoder wants them growing), `rows` rows a box. False where TMA cannot
 * take it: a dim not contiguous, a stride or the address not a multiple of 16 bytes, or sizes
 * past its limits; `order` gets where seq, head and batch went. */
template <typename T>
static bool encode_map(CUtensorMap *m, const mfa_cuda_tensor_t &t, int64_t seq, int64_t heads, int64_t batch,
                       int64_t dim, int rows, int (&order)[3]) {
    const EncodeTiled encode = encode_tiled();
    if (!encode || t.stride[3] != 1 || (uintptr_t)t.data % 16 || dim % 64) return false;
    /* (size, stride in bytes) of seq, head, batch; a dim of size 1 gets a stride after the others */
    int64_t size[3] = {seq, heads, batch}, stride[3] = {t.stride[1] * 2, t.stride[2] * 2, t.stride[0] * 2};
    int64_t top = dim * 2;
    for (int i = 0; i < 3; i++)
        if (size[i] > 1) top = std::max(top, stride[i] * size[i]);
    for (int i = 0; i < 3; i++) {
        if (size[i] == 1) stride[i] = top, top *= 2;
        if (stride[i] <= 0 || stride[i] % 16 || stride[i] >= ((int64_t)1 << 40)) return false;
    }
    int idx[3] = {0, 1, 2};
    std::sort(idx, idx + 3, [&](int x, int y) { return stride[x] < stride[y]; });
    cuuint64_t gdim[4] = {(cuuint64_t)dim}, gstride[3];
    cuuint32_t box[4] = {64, 1, 1, 1}, estride[4] = {1, 1, 1, 1};
    for (int d = 0; d < 3; d++) {
        gdim[d + 1] = (cuuint64_t)size[idx[d]], gstride[d] = (cuuint64_t)stride[idx[d]];
        order[idx[d]] = d + 1;
        if (idx[d] == 0) box[d + 1] = (cuuint32_t)rows;
    }
    const CUtensorMapDataType type =
        std::is_same<T, __half>::value ? CU_TENSOR_MAP_DATA_TYPE_FLOAT16 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
    return encode(m, type, 4, t.data, gdim, gstride, box, estride, CU_TENSOR_MAP_INTERLEAVE_NONE,
                  CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                  CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

/* Rows [row, row + rows) of (head, batch) in map m, D / 64 panels of rows x 128 bytes at `at`
 * (1024-byte aligned), completing on mbarrier `bar`; one thread issues it, after telling `bar`
 * to expect the bytes (mbar_expect_tx, one of its arrivals). Rows past the map's end arrive as
 * zeros. */
template <int D>
__device__ __forceinline__ void tma_load_tile(const CUtensorMap &m, const MapOrder &o, uint32_t at, int rows,
                                              int64_t row, int64_t head, int64_t batch, uint32_t bar) {
#pragma unroll
    for (int p = 0; p < D / 64; p++) {
        int x[4];
        map_coords(o, p * 64, (int)row, (int)head, (int)batch, x);
        tma_load_4d(at + p * rows * 128, &m, x[0], x[1], x[2], x[3], bar);
    }
}

#endif
