/* ptx.cuh — the few tensor-core and async-copy instructions the kernels use, as inline PTX.
 *
 * sm_80+ (Ampere, Ada, Hopper through the legacy path): mma.sync.m16n8k16 with fp32
 * accumulators, ldmatrix (plain and transposed) from shared memory, and cp.async 16-byte copies
 * global -> shared with zero fill. Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"),
 * with lane = 4 g + t (g = lane / 4, t = lane % 4):
 *   A 16x16: a0 = (g, 2t..2t+1)  a1 = (g+8, 2t..)  a2 = (g, 8+2t..)  a3 = (g+8, 8+2t..)
 *   B 16x8:  b0 = (k 2t..2t+1, n g)  b1 = (k 8+2t.., n g)
 *   C 16x8:  c0,c1 = (g, 2t..2t+1)   c2,c3 = (g+8, 2t..2t+1)
 * A C fragment of two adjacent n-tiles is therefore an A fragment of the next product: P stays in
 * registers between S = Q K^T and O += P V. */
#ifndef MFA_CUDA_PTX_CUH
#define MFA_CUDA_PTX_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

__device__ __forceinline__ uint32_t smem_u32(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* 16 bytes global -> shared, bypassing L1; src_bytes < 16 zero-fills the rest (0: all zeros,
 * nothing read). */
__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(src_bytes));
}
/* 4 bytes global -> shared through L1 (small per-row statistics). */
__device__ __forceinline__ void cp_async4(uint32_t dst, const void *src) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(dst), "l"(src));
}
/* 4 bytes global -> shared through L1, zero-filled where n = 0 (nothing read). */
__device__ __forceinline__ void cp_async4z(uint32_t dst, const void *src, int n) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src), "r"(n));
}
/* dst[0..3] += v (fp32, global): one vector reduction on sm_90, four atomics before. */
__device__ __forceinline__ void red_add4(float *dst, float4 v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"l"(dst), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w)
                 : "memory");
#else
    atomicAdd(dst, v.x), atomicAdd(dst + 1, v.y), atomicAdd(dst + 2, v.z), atomicAdd(dst + 3, v.w);
#endif
}
/* dst[0..1] += (x, y) in global memory without a return value; dst 8-byte aligned. */
__device__ __forceinline__ void red_add2(float *dst, float x, float y) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("red.global.add.v2.f32 [%0], {%1, %2};\n" ::"l"(dst), "f"(x), "f"(y) : "memory");
#else
    atomicAdd(dst, x), atomicAdd(dst + 1, y);
#endif
}
/* Bulk asynchronous reduction (sm_90, by the TMA unit): dst[0 .. bytes/4) += the fp32 row at
 * shared address src (16-byte aligned, bytes a multiple of 16), tracked as a bulk group of the
 * issuing thread; the thread waits with bulk_wait_read before it overwrites src, and with
 * bulk_wait before it exits. Callers are sm_90-only kernels. */
__device__ __forceinline__ void bulk_red_add(float *dst, uint32_t src, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(dst), "r"(src),
                 "r"(bytes)
                 : "memory");
#else
    (void)dst, (void)src, (void)bytes;
    __trap();
#endif
}
__device__ __forceinline__ void bulk_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void bulk_wait_read() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void bulk_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
#endif
}
/* mbarrier in shared memory (sm_90): a phase completes when `count` arrivals have been made;
 * waiting on parity p returns once the phase of that parity completed (on a fresh barrier,
 * parity 1 counts as the phase before the first, so it returns at once). Arrive releases, and a
 * completed wait acquires, the arriving threads' shared-memory writes (CTA scope). */
__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
#endif
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
#endif
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("{\n.reg .pred done;\nWAIT:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
                 "@!done bra WAIT;\n}\n" ::"r"(bar),
                 "r"(parity)
                 : "memory");
#endif
}
/* The mbarrier gets one arrival once all of this thread's earlier cp.async copies have landed
 * (.noinc: the arrival is one of the `count` the barrier was initialised with). */
__device__ __forceinline__ void cp_async_mbar_arrive(uint32_t bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(bar) : "memory");
#endif
}
/* This thread's arrival on the mbarrier, telling it to wait besides for `bytes` of transfers that
 * will complete on it (the tensor copies below); one of the `count` arrivals. */
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes) : "memory");
#endif
}
/* A box of a 4-d tensor (its tensor map `map`, a __grid_constant__ parameter) copied by the TMA
 * unit into shared memory at dst in the map's layout (the 128-byte swizzle: ptx.cuh's pnl panels);
 * element coordinates c0 (innermost) .. c3, out-of-bounds elements zero; the bytes complete on
 * mbarrier `bar`. */
__device__ __forceinline__ void tma_load_4d(uint32_t dst, const void *map, int c0, int c1, int c2, int c3, uint32_t bar) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, "
                 "%4, %5}], [%6];\n" ::"r"(dst),
                 "l"(map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
                 : "memory");
#endif
}
/* Named barrier `id` (1..15; 0 is __syncthreads'): waits until `n` threads (a multiple of 32)
 * have reached it, so a subset of the block's warps can meet without the others. */
__device__ __forceinline__ void bar_sync(uint32_t id, uint32_t n) {
    asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
/* Counts this warp's arrival at named barrier `id` without waiting: a producer's signal to
 * warps that bar_sync on it (the `n` threads include both sides). */
__device__ __forceinline__ void bar_arrive(uint32_t id, uint32_t n) {
    asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(n) : "memory");
}
/* setmaxnreg (sm_90a): a warpgroup gives registers back to the block's pool, or takes them from
 * it, so that one warpgroup with small state lets the others hold more. N: multiple of 8, 24..256. */
template <int N> __device__ __forceinline__ void regs_dec() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}
template <int N> __device__ __forceinline__ void regs_inc() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
    asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(N));
#endif
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N)); }

__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
/* The inverse of ldsm_x4 (sm_90): four 8x8 b16 matrices, register i of each lane holding its pair
 * (row lane / 4, columns 2 (lane % 4)..+1) of matrix i; lanes 8i..8i+7 give the row addresses of
 * matrix i. One instruction for what takes four 4-byte stores. */
__device__ __forceinline__ void stsm_x4(uint32_t addr, uint32_t r0, uint32_t r1, uint32_t r2, uint32_t r3) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(r0), "r"(r1),
                 "r"(r2), "r"(r3));
#else
    (void)addr, (void)r0, (void)r1, (void)r2, (void)r3;
    __trap(); /* callers test MFA_HAS_STSM */
#endif
}
/* The same, each 8x8 matrix stored transposed: lanes 8i..8i+7 give the addresses of the rows of
 * matrix i's transpose (column lane % 8 of what the registers hold). */
__device__ __forceinline__ void stsm_x4_t(uint32_t addr, uint32_t r0, uint32_t r1, uint32_t r2, uint32_t r3) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("stmatrix.sync.aligned.m8n8.x4.trans.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr), "r"(r0), "r"(r1),
                 "r"(r2), "r"(r3));
#else
    (void)addr, (void)r0, (void)r1, (void)r2, (void)r3;
    __trap(); /* callers test MFA_HAS_STSM */
#endif
}
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define MFA_HAS_STSM 1
#else
#define MFA_HAS_STSM 0
#endif

/* D += A B, 16x8x16, fp32 accumulators; T is __half or __nv_bfloat16. */
template <typename T> __device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <> __device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                                                    uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <> __device__ __forceinline__ void mma16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* 2^x on the special-function unit, subnormal results flushed to 0 (probabilities that small
 * do not change an fp32 sum); 2^-inf = 0. */
__device__ __forceinline__ float ex2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* Two floats rounded (to nearest even) into one register of T pairs: lo in the low half, which
 * is the lower column of a fragment. */
template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}
/* C fragments of n-tiles (2k, 2k + 1) -> the A fragment of k16 step k (the layouts at the top):
 * register i of step k is row g + 8 (i & 1) of n-tile 2k + i / 2, rounded to T. */
template <typename T, int NT>
__device__ __forceinline__ void c_to_a(const float (&c)[NT][4], uint32_t (&a)[NT / 2][4]) {
#pragma unroll
    for (int k = 0; k < NT / 2; k++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int n = 2 * k + (i >> 1), hf = i & 1;
            a[k][i] = pack2<T>(c[n][hf * 2], c[n][hf * 2 + 1]);
        }
}
/* The inverse: one register of T pairs into two floats (lo = the low half). */
template <typename T> __device__ __forceinline__ float2 unpack2(uint32_t v);
template <> __device__ __forceinline__ float2 unpack2<__nv_bfloat16>(uint32_t v) {
    return __bfloat1622float2(*reinterpret_cast<__nv_bfloat162 *>(&v));
}
template <> __device__ __forceinline__ float2 unpack2<__half>(uint32_t v) {
    return __half22float2(*reinterpret_cast<__half2 *>(&v));
}

/* Shared-memory tiles of rows x DP elements of 2 bytes, DP a multiple of 64 (rows start on
 * 128-byte lines). The 16-byte chunk c of row r is stored at chunk c ^ (r % 8): the 8 rows an
 * ldmatrix phase reads at one logical chunk land in 8 different bank groups, and so do the
 * cp.async writes. Returns the byte offset. */
template <int DP> __device__ __forceinline__ uint32_t swz(int r, int c) {
    static_assert(DP % 64 == 0, "tile rows must be whole 128-byte lines");
    return (uint32_t)(r * DP * 2 + ((c ^ (r & 7)) << 4));
}

/* The same swizzle in column panels (the wgmma 128-byte swizzle layout): chunk c of row r lies in
 * panel c / 8, a block of ROWS rows x 128 bytes. With D = 64 it is swz<64>. */
template <int ROWS> __device__ __forceinline__ uint32_t pnl(int r, int c) {
    return (uint32_t)((c >> 3) * ROWS * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

#endif
