/* amx.c — the avx512bf16 kernels with gemm_bf16 on AMX tiles (Intel Sapphire Rapids and later:
 * compiled with -mamx-tile -mamx-bf16 too). There VDPBF16PS issues on one port and converting to
 * fp32 was the faster path, while PyTorch's oneDNN ran bf16 attention on AMX at more than the
 * fp32 FMA peak (16-core Xeon, 2026-11-27: our bf16 forward 0.40-0.53x of it; with this table
 * 1.08-1.60x, docs/cpu.md).
 *
 * TDPBF16PS multiplies a 16 x 32 bf16 tile of A by a 32 x 16 tile of B stored as 16 rows of
 * pairs (B[k][j], B[k+1][j]) — the layout gemm_bf16's B already has (kernels.h) — into a 16 x 16
 * fp32 tile of C. C is blocked 32 x 32 (four tiles, two of A and two of B per k step) where it
 * can be, else 16 x 16; rows, columns and k past the last whole tile go to the AVX-512 kernel.
 * A thread must hold the tile configuration: every call loads it and releases the tiles at the
 * end (the calls are microseconds; a configured thread costs every context switch 8 KiB). */
#define MFA_KERNELS_NAME mfa_cpu_kernels_amx
#define MFA_ISA "amx"
#define MFA_BF16_DOT 1
#define MFA_GEMM_BF16 gemm_bf16_amx
#include "simd-avx512.h"
#include <stdbool.h>

static void gemm_bf16_amx(int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda, const uint16_t *Bp,
                          int64_t ldp, float *C, int64_t ldc, bool accumulate);

#include "../kernels.inc"

/* Every tile 16 rows of 64 bytes: A 16 x 32 bf16, B 16 pair rows x 16 columns, C 16 x 16 fp32. */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config_t;

static void tiles_configure(void) {
    tile_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.colsb[t] = 64, cfg.rows[t] = 16;
    _tile_loadconfig(&cfg);
}

/* C[i..i+32][j..j+32] (+)= A B over k < K (a multiple of 32): tiles 0-3 C, 4-5 A, 6-7 B. */
static inline void block_32x32(int64_t K, const uint16_t *A, int64_t lda, const uint16_t *Bp, int64_t ldp, float *C,
                               int64_t ldc, bool accumulate) {
    if (accumulate) {
        _tile_loadd(0, C, ldc * 4);
        _tile_loadd(1, C + 16, ldc * 4);
        _tile_loadd(2, C + 16 * ldc, ldc * 4);
        _tile_loadd(3, C + 16 * ldc + 16, ldc * 4);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    for (int64_t k = 0; k < K; k += 32) {
        _tile_loadd(4, A + k, lda * 2);
        _tile_loadd(5, A + 16 * lda + k, lda * 2);
        _tile_loadd(6, Bp + (k / 2) * ldp, ldp * 2);
        _tile_loadd(7, Bp + (k / 2) * ldp + 32, ldp * 2);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, C, ldc * 4);
    _tile_stored(1, C + 16, ldc * 4);
    _tile_stored(2, C + 16 * ldc, ldc * 4);
    _tile_stored(3, C + 16 * ldc + 16, ldc * 4);
}

/* The same for one 16 x 16 tile of C: tile 0 C, 4 A, 6 B. */
static inline void block_16x16(int64_t K, const uint16_t *A, int64_t lda, const uint16_t *Bp, int64_t ldp, float *C,
                               int64_t ldc, bool accumulate) {
    if (accumulate) _tile_loadd(0, C, ldc * 4);
    else _tile_zero(0);
    for (int64_t k = 0; k < K; k += 32) {
        _tile_loadd(4, A + k, lda * 2);
        _tile_loadd(6, Bp + (k / 2) * ldp, ldp * 2);
        _tile_dpbf16ps(0, 4, 6);
    }
    _tile_stored(0, C, ldc * 4);
}

static void gemm_bf16_amx(int64_t M, int64_t N, int64_t K, const uint16_t *A, int64_t lda, const uint16_t *Bp,
                          int64_t ldp, float *C, int64_t ldc, bool accumulate) {
    const int64_t M16 = M / 16 * 16, N16 = N / 16 * 16, K32 = K / 32 * 32;
    if (M16 == 0 || N16 == 0 || K32 == 0) {
        gemm_bf16(M, N, K, A, lda, Bp, ldp, C, ldc, accumulate);
        return;
    }
    tiles_configure();
    for (int64_t i = 0; i < M16; i += 16) {
        const bool two_rows = i + 32 <= M16;
        int64_t j = 0;
        if (two_rows)
            for (; j + 32 <= N16; j += 32)
                block_32x32(K32, A + i * lda, lda, Bp + 2 * j, ldp, C + i * ldc + j, ldc, accumulate);
        for (; j < N16; j += 16) {
            block_16x16(K32, A + i * lda, lda, Bp + 2 * j, ldp, C + i * ldc + j, ldc, accumulate);
            if (two_rows)
                block_16x16(K32, A + (i + 16) * lda, lda, Bp + 2 * j, ldp, C + (i + 16) * ldc + j, ldc, accumulate);
        }
        if (two_rows) i += 16;
    }
    _tile_release();
    if (K32 < K) /* the last k, added to what the tiles stored */
        gemm_bf16(M16, N16, K - K32, A + K32, lda, Bp + (K32 / 2) * ldp, ldp, C, ldc, true);
    if (N16 < N) gemm_bf16(M16, N - N16, K, A, lda, Bp + 2 * N16, ldp, C + N16, ldc, accumulate);
    if (M16 < M) gemm_bf16(M - M16, N, K, A + M16 * lda, lda, Bp, ldp, C + M16 * ldc, ldc, accumulate);
}
