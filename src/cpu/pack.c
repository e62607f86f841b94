/* pack.c — K (and V) converted to fp32 and laid out for the GEMMs, once per call (in a pass
 * before the attention, or each tile by the first thread that needs it: MFA_CPU_PACK_LAZY).
 *
 * S = Q K^T wants K^T tiles ([dim][BK]: a row of B is one dim across the tile's keys); the
 * backward's dP = dO V^T wants V^T tiles likewise; O += P V and dQ += dS K want row tiles
 * ([BK][dim]). Every fp32 tile is stored in the microkernel's column panels (cpu.h), whatever
 * the tensor's layout, so even f32-contiguous rows are copied. The backward packs in one parallel
 * pass over K/V, small next to the attention that reads every tile seqlen_q / BQ times; the
 * forward packs each tile when a query block first needs it, so that under a narrow window (each
 * tile read by ~3 blocks) the tile is packed hot, not written out by a pass and read back. */
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

/* Keys transposed together (a multiple of 8 divides every panel width: 16, 32, BK = 64) */
#define PACK_GROUP 8

/* A tile's state under lazy packing */
enum { TILE_IDLE, TILE_PACKING, TILE_PACKED };

static size_t tile_index(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, int64_t b, int64_t hk, int64_t kb) {
    return (size_t)((b * pr->p.heads_kv + hk) * kv->k_blocks + kb);
}

/* Each packer writes keys [c0, c0 + g) of the tile at j0 (g <= PACK_GROUP) of kv head hk. */

/* Transposed into dst [dim][BK] (in panels): the g rows gathered (converted to fp32 where
 * needed), then each dim's g values stored side by side, one run in one cache line, where a key
 * at a time wrote one float to each of dim lines (window 256 at 4096, D 128: those scattered
 * stores were most of the packing loop's own time). fp32 rows are read in place when packing
 * lazily, whose caller prefetched them a tile ahead (window 256 forward 0.97x); the pass copies
 * them first, as the vector copy streams cold strided rows in better than this loop reads them
 * (in place there: 0.92-0.95x). */
static void pack_transposed(const mfa_cpu_kv_t *kv, const mfa_tensor_t *t, const mfa_seq_t *s, int64_t hk, int64_t j0,
                            int64_t c0, int64_t g, int64_t dim, float *rows, float *dst) {
    const int64_t BK = MFA_CPU_BK, nr = kv->nr;
    const float *src[PACK_GROUP];
    for (int64_t e = 0; e < g; e++) {
        int64_t ld;
        src[e] = kv->state && t->dtype == MFA_DTYPE_F32 && t->stride[3] == 1
                     ? (const float *)t->data + mfa_offset(t, s->tb, s->k0 + j0 + c0 + e, hk, 0)
                     : mfa_cpu_rows(kv->k, t, s->tb, hk, s->k0 + j0 + c0 + e, 1, dim, rows + e * dim, &ld);
    }
    if (g == PACK_GROUP && nr > 0 && kv->k->transpose8) { /* the run of dim d is nr floats after dim d - 1's */
        kv->k->transpose8(src, dim, dst + mfa_cpu_panel_offset(nr, dim, BK, 0, c0), nr);
        return;
    }
    for (int64_t d = 0; d < dim; d++) {
        float *out = dst + mfa_cpu_panel_offset(nr, dim, BK, d, c0); /* keys c0.. of dim d: one run */
        for (int64_t e = 0; e < g; e++) out[e] = src[e][d];
    }
}

/* As rows of dst [BK][dim] (in panels). */
static void pack_rows(const mfa_cpu_kv_t *kv, const mfa_tensor_t *t, const mfa_seq_t *s, int64_t hk, int64_t j0,
                      int64_t c0, int64_t g, int64_t dim, float *row, float *dst) {
    const int64_t BK = MFA_CPU_BK, nr = kv->nr;
    for (int64_t c = c0; c < c0 + g; c++) {
        int64_t ld;
        /* fp32 rows with unit dim stride are read in place: one copy, not two */
        const float *src = t->dtype == MFA_DTYPE_F32 && t->stride[3] == 1
                               ? (const float *)t->data + mfa_offset(t, s->tb, s->k0 + j0 + c, hk, 0)
                               : mfa_cpu_rows(kv->k, t, s->tb, hk, s->k0 + j0 + c, 1, dim, row, &ld);
        for (int64_t first = 0; first < dim; first += nr > 0 ? nr : dim) { /* one run per panel */
            const int64_t w = nr > 0 && dim - first > nr ? nr : dim - first;
            memcpy(dst + mfa_cpu_panel_offset(nr, BK, dim, c, first), src + first, sizeof(float) * (size_t)w);
        }
    }
}

/* Key c of the tile at j0 as bf16: its first element (the dim stride is t->stride[3]). */
static const uint16_t *bf16_row(const mfa_tensor_t *t, const mfa_seq_t *s, int64_t hk, int64_t j0, int64_t c) {
    return (const uint16_t *)t->data + mfa_offset(t, s->tb, s->k0 + j0 + c, hk, 0);
}

void mfa_cpu_pairs_dim(const mfa_cpu_kernels_t *k, const uint16_t *const *src, int64_t g, int64_t sd, int64_t dim,
                       uint16_t *dst) {
    const int64_t BK = MFA_CPU_BK;
    bool words = g == 8 && sd == 1 && k->transpose8; /* pairs as 32-bit words, 4-byte aligned */
    for (int64_t e = 0; e < g; e++) words = words && (uintptr_t)src[e] % 4 == 0;
    if (words) { /* the same 8 x 8 transposes as the fp32 K^T, of words (bits moved, not converted) */
        const float *rows[8];
        for (int64_t e = 0; e < g; e++) rows[e] = (const float *)(const void *)src[e];
        k->transpose8(rows, dim / 2, (float *)(void *)dst, BK);
        return;
    }
    for (int64_t d = 0; d < dim; d += 2) {
        uint16_t *out = dst + d * BK;
        for (int64_t e = 0; e < g; e++) out[2 * e] = src[e][d * sd], out[2 * e + 1] = src[e][(d + 1) * sd];
    }
}

void mfa_cpu_pairs_keys(const uint16_t *r0, const uint16_t *r1, int64_t sd, int64_t dim, uint16_t *dst) {
    if (r1)
        for (int64_t e = 0; e < dim; e++) dst[2 * e] = r0[e * sd], dst[2 * e + 1] = r1[e * sd];
    else
        for (int64_t e = 0; e < dim; e++) dst[2 * e] = r0[e * sd], dst[2 * e + 1] = 0;
}

/* K^T (or V^T) of keys [c0, c0 + g) in pairs along the dim (mfa_cpu_pairs_dim); the rows are read
 * through one pointer each (an offset computed per element was 3 % of a bf16 forward, Zen 5). */
static void pack_t_pairs(const mfa_cpu_kv_t *kv, const mfa_tensor_t *t, const mfa_seq_t *s, int64_t hk, int64_t j0,
                         int64_t c0, int64_t g, int64_t dim, uint16_t *dst) {
    const uint16_t *src[PACK_GROUP];
    for (int64_t e = 0; e < g; e++) src[e] = bf16_row(t, s, hk, j0, c0 + e);
    mfa_cpu_pairs_dim(kv->k, src, g, t->stride[3], dim, dst + 2 * c0);
}

/* V (or K) of keys [c0, c0 + g) in pairs along the keys (mfa_cpu_pairs_keys; g is even except
 * for an odd tile's last group). */
static void pack_v_pairs(const mfa_tensor_t *t, const mfa_seq_t *s, int64_t hk, int64_t j0, int64_t c0, int64_t g,
                         int64_t dim, uint16_t *dst) {
    for (int64_t c = c0; c < c0 + g; c += 2)
        mfa_cpu_pairs_keys(bf16_row(t, s, hk, j0, c), c + 1 < c0 + g ? bf16_row(t, s, hk, j0, c + 1) : NULL,
                           t->stride[3], dim, dst + (c / 2) * 2 * dim);
}

/* Tile (b, hk, kb): one key tile of one sequence and kv head, keys past the sequence zero; by
 * thread `thread` (its row scratch). */
static void pack_tile(const mfa_cpu_kv_t *kv, int64_t b, int64_t hk, int64_t kb, int thread) {
    const mfa_problem_t *pr = kv->pr;
    const int64_t Dq = pr->p.head_dim_qk, Dv = pr->p.head_dim_v, BK = MFA_CPU_BK;
    const mfa_seq_t s = mfa_problem_seq(pr, b);
    const int64_t j0 = kb * BK;
    if (j0 >= s.sk) return;
    const int64_t nk = s.sk - j0 < BK ? s.sk - j0 : BK;
    const size_t tile = tile_index(pr, kv, b, hk, kb);
    float *rows = kv->rows + (size_t)thread * (size_t)kv->row_floats;
    float *kt = kv->kt ? kv->kt + tile * (size_t)(Dq * BK) : NULL, *vt = kv->vt ? kv->vt + tile * (size_t)(Dv * BK) : NULL;
    float *k_rows = kv->k_rows ? kv->k_rows + tile * (size_t)(BK * Dq) : NULL;
    float *v_rows = kv->v_rows ? kv->v_rows + tile * (size_t)(BK * Dv) : NULL;
    uint16_t *kt_pairs = kv->kt_pairs ? kv->kt_pairs + tile * (size_t)(Dq * BK) : NULL;
    uint16_t *v_pairs = kv->v_pairs ? kv->v_pairs + tile * (size_t)(BK * Dv) : NULL;
    uint16_t *vt_pairs = kv->vt_pairs ? kv->vt_pairs + tile * (size_t)(Dv * BK) : NULL;
    uint16_t *k_row_pairs = kv->k_row_pairs ? kv->k_row_pairs + tile * (size_t)(BK * Dq) : NULL;
    if (nk < BK) {
        if (kt) memset(kt, 0, sizeof(float) * (size_t)(Dq * BK));
        if (vt) memset(vt, 0, sizeof(float) * (size_t)(Dv * BK));
        if (k_rows) memset(k_rows, 0, sizeof(float) * (size_t)(BK * Dq));
        if (v_rows) memset(v_rows, 0, sizeof(float) * (size_t)(BK * Dv));
        if (kt_pairs) memset(kt_pairs, 0, sizeof(uint16_t) * (size_t)(Dq * BK));
        if (v_pairs) memset(v_pairs, 0, sizeof(uint16_t) * (size_t)(BK * Dv));
        if (vt_pairs) memset(vt_pairs, 0, sizeof(uint16_t) * (size_t)(Dv * BK));
        if (k_row_pairs) memset(k_row_pairs, 0, sizeof(uint16_t) * (size_t)(BK * Dq));
    }
    const mfa_tensor_t *K = &pr->p.k, *V = &pr->p.v;
    for (int64_t c0 = 0; c0 < nk; c0 += PACK_GROUP) {
        const int64_t g = nk - c0 < PACK_GROUP ? nk - c0 : PACK_GROUP;
        if (kt) pack_transposed(kv, K, &s, hk, j0, c0, g, Dq, rows, kt);
        if (kt_pairs) pack_t_pairs(kv, K, &s, hk, j0, c0, g, Dq, kt_pairs);
        if (vt_pairs) pack_t_pairs(kv, V, &s, hk, j0, c0, g, Dv, vt_pairs);
        if (k_row_pairs) pack_v_pairs(K, &s, hk, j0, c0, g, Dq, k_row_pairs);
        if (v_pairs) pack_v_pairs(V, &s, hk, j0, c0, g, Dv, v_pairs);
        if (vt) pack_transposed(kv, V, &s, hk, j0, c0, g, Dv, rows, vt);
        if (k_rows) pack_rows(kv, K, &s, hk, j0, c0, g, Dq, rows, k_rows);
        if (v_rows) pack_rows(kv, V, &s, hk, j0, c0, g, Dv, rows, v_rows);
    }
}

/* The packing pass: one item a tile, kv head fastest: consecutive items take the same keys of
 * neighbouring heads, which a BSHD tensor keeps side by side (a head's rows alone are a page apart
 * at 8+ heads). (Every head of a key tile in one item, reading each token's page front to back:
 * 0.998x, window 256 at 4096, 2 threads.) */
static void pack_item(void *arg, int64_t item, int thread) {
    const mfa_cpu_kv_t *kv = arg;
    const int64_t heads = kv->pr->p.heads_kv;
    pack_tile(kv, item / heads / kv->k_blocks, item % heads, item / heads % kv->k_blocks, thread);
}

void mfa_cpu_kv_ready(const mfa_cpu_kv_t *kv, int64_t b, int64_t hk, int64_t kb, int thread) {
    if (!kv->state) return;
    _Atomic(unsigned char) *state = kv->state + tile_index(kv->pr, kv, b, hk, kb);
    if (atomic_load_explicit(state, memory_order_acquire) == TILE_PACKED) return;
    unsigned char idle = TILE_IDLE;
    if (atomic_compare_exchange_strong_explicit(state, &idle, TILE_PACKING, memory_order_acquire,
                                                memory_order_acquire)) {
        pack_tile(kv, b, hk, kb, thread);
        atomic_store_explicit(state, TILE_PACKED, memory_order_release);
        return;
    }
    /* another thread is packing it: a tile takes microseconds (yield now and then, in case that
     * thread shares a core with this one) */
    for (unsigned spins = 1; atomic_load_explicit(state, memory_order_acquire) != TILE_PACKED; spins++) {
        if (spins % 1024 == 0) sched_yield();
#if defined(__x86_64__) || defined(__i386__)
        else __builtin_ia32_pause();
#endif
    }
}

bool mfa_cpu_kv_source(const mfa_cpu_kv_t *kv, int64_t b, int64_t hk, int64_t kb, mfa_cpu_kv_source_t *src) {
    if (!kv->state ||
        atomic_load_explicit(kv->state + tile_index(kv->pr, kv, b, hk, kb), memory_order_relaxed) != TILE_IDLE)
        return false;
    const mfa_tensor_t *K = &kv->pr->p.k, *V = &kv->pr->p.v;
    if (K->stride[3] != 1 || V->stride[3] != 1) return false;
    const mfa_seq_t s = mfa_problem_seq(kv->pr, b);
    const int64_t j0 = kb * MFA_CPU_BK, ks = mfa_dtype_size(K->dtype), vs = mfa_dtype_size(V->dtype);
    if (j0 >= s.sk) return false;
    *src = (mfa_cpu_kv_source_t){
        .k = (const char *)K->data + mfa_offset(K, s.tb, s.k0 + j0, hk, 0) * ks,
        .v = (const char *)V->data + mfa_offset(V, s.tb, s.k0 + j0, hk, 0) * vs,
        .k_step = K->stride[1] * ks,
        .v_step = V->stride[1] * vs,
        .keys = s.sk - j0 < MFA_CPU_BK ? s.sk - j0 : MFA_CPU_BK,
        .k_bytes = (size_t)(kv->pr->p.head_dim_qk * ks),
        .v_bytes = (size_t)(kv->pr->p.head_dim_v * vs),
    };
    return true;
}

/* The context's pack buffer, at least `bytes` long: kept while it fits and is at most 4x the
 * request (so one huge call does not pin its memory through a run of small ones), else replaced. */
static void *pack_buffer(mfa_context *ctx, size_t bytes) {
    mfa_cpu_state_t *state = ctx->backend_state;
    if (state->pack_mem && state->pack_bytes >= bytes && state->pack_bytes / 4 <= bytes) return state->pack_mem;
    free(state->pack_mem);
    /* 64-byte aligned: the tiles' panels then start on cache lines (malloc gives 16) */
    if (posix_memalign(&state->pack_mem, 64, bytes)) state->pack_mem = NULL;
    state->pack_bytes = state->pack_mem ? bytes : 0;
    return state->pack_mem;
}

mfa_error_t mfa_cpu_kv_pack(mfa_context *ctx, const mfa_problem_t *pr, int what, mfa_cpu_kv_t *kv) {
    const int64_t Dq = pr->p.head_dim_qk, Dv = pr->p.head_dim_v, BK = MFA_CPU_BK;
    memset(kv, 0, sizeof *kv);
    kv->k_blocks = (pr->max_seqlen_kv + BK - 1) / BK;
    kv->nr = mfa_cpu_kernels(ctx)->nr;
    const size_t tiles = (size_t)(pr->p.batch * pr->p.heads_kv * kv->k_blocks);
    if (!tiles) return MFA_SUCCESS;
    const bool k_pairs = what & MFA_CPU_PACK_K_PAIRS, v_pairs = what & MFA_CPU_PACK_V_PAIRS;
    const bool vt_pairs = what & MFA_CPU_PACK_VT_PAIRS;
    const bool vt = (what & MFA_CPU_PACK_VT) && !vt_pairs;
    const bool k_row_pairs = what & MFA_CPU_PACK_K_ROW_PAIRS;
    const bool k_rows = (what & MFA_CPU_PACK_K_ROWS) && !k_row_pairs;
    const bool v_rows = (what & MFA_CPU_PACK_V_ROWS) && !v_pairs;
    const bool lazy = what & MFA_CPU_PACK_LAZY;
    /* lazy: any of the context's threads may pack */
    const int threads = lazy ? ctx->num_threads : mfa_cpu_threads_for(ctx, (int64_t)tiles);
    const int64_t row_floats = PACK_GROUP * (Dq > Dv ? Dq : Dv);
    /* one block: fp32 arrays first, then the bf16 pairs (4-byte aligned after floats) */
    const size_t floats = tiles * (size_t)(BK * ((k_pairs ? 0 : Dq) + (vt ? Dv : 0) + (k_rows ? Dq : 0) +
                                                 (v_rows ? Dv : 0))) +
                          (size_t)(threads * row_floats);
    const size_t halves = tiles * (size_t)(BK * ((k_pairs ? Dq : 0) + (v_pairs ? Dv : 0) + (vt_pairs ? Dv : 0) +
                                                 (k_row_pairs ? Dq : 0)));
    const size_t bytes = sizeof(float) * floats + sizeof(uint16_t) * halves + (lazy ? tiles : 0);
    float *at = pack_buffer(ctx, bytes);
    if (!at)
        return mfa_set_error(ctx, MFA_ERROR_MEMORY_ALLOCATION, "cpu backend: cannot allocate %zu bytes to pack K/V",
                             bytes);
    kv->mem = at;
    if (!k_pairs) kv->kt = at, at += tiles * (size_t)(Dq * BK);
    if (vt) kv->vt = at, at += tiles * (size_t)(Dv * BK);
    if (k_rows) kv->k_rows = at, at += tiles * (size_t)(BK * Dq);
    if (v_rows) kv->v_rows = at, at += tiles * (size_t)(BK * Dv);
    float *rows = at;
    at += threads * row_floats;
    uint16_t *half = (uint16_t *)at;
    if (k_pairs) kv->kt_pairs = half, half += tiles * (size_t)(Dq * BK);
    if (v_pairs) kv->v_pairs = half, half += tiles * (size_t)(BK * Dv);
    if (vt_pairs) kv->vt_pairs = half, half += tiles * (size_t)(Dv * BK);
    if (k_row_pairs) kv->k_row_pairs = half, half += tiles * (size_t)(BK * Dq);
    kv->pr = pr, kv->k = mfa_cpu_kernels(ctx), kv->rows = rows, kv->row_floats = row_floats;
    if (lazy) {
        kv->state = (_Atomic(unsigned char) *)half;
        for (size_t t = 0; t < tiles; t++) atomic_init(&kv->state[t], TILE_IDLE);
    } else {
        mfa_cpu_parallel_for(ctx, threads, (int64_t)tiles, pack_item, kv);
    }
    return MFA_SUCCESS;
}

void mfa_cpu_kv_free(mfa_cpu_kv_t *kv) { memset(kv, 0, sizeof *kv); /* the memory stays with the context */ }

static mfa_cpu_panels_t tile_panels(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, const float *tiles, int64_t b,
                                    int64_t hk, int64_t kb, int64_t rows, int64_t cols) {
    return (mfa_cpu_panels_t){tiles + tile_index(pr, kv, b, hk, kb) * (size_t)(rows * cols), rows, cols};
}

mfa_cpu_panels_t mfa_cpu_kv_kt(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, int64_t b, int64_t hk, int64_t kb) {
    return tile_panels(pr, kv, kv->kt, b, hk, kb, pr->p.head_dim_qk, MFA_CPU_BK);
}

mfa_cpu_panels_t mfa_cpu_kv_vt(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, int64_t b, int64_t hk, int64_t kb) {
    return tile_panels(pr, kv, kv->vt, b, hk, kb, pr->p.head_dim_v, MFA_CPU_BK);
}

mfa_cpu_panels_t mfa_cpu_kv_k_rows(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, int64_t b, int64_t hk,
                                   int64_t kb) {
    return tile_panels(pr, kv, kv->k_rows, b, hk, kb, MFA_CPU_BK, pr->p.head_dim_qk);
}

mfa_cpu_panels_t mfa_cpu_kv_v_rows(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, int64_t b, int64_t hk,
                                   int64_t kb) {
    return tile_panels(pr, kv, kv->v_rows, b, hk, kb, MFA_CPU_BK, pr->p.head_dim_v);
}

/* Tile (b, hk, kb) of a bf16 array whose tiles hold BK x dim halves. */
static const uint16_t *pairs_tile(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, const uint16_t *tiles, int64_t b,
                                  int64_t hk, int64_t kb, int64_t dim) {
    return tiles + tile_index(pr, kv, b, hk, kb) * (size_t)(MFA_CPU_BK * dim);
}

const uint16_t *mfa_cpu_kv_kt_pairs(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, int64_t b, int64_t hk,
                                    int64_t kb) {
    return pairs_tile(pr, kv, kv->kt_pairs, b, hk, kb, pr->p.head_dim_qk);
}

const uint16_t *mfa_cpu_kv_v_pairs(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, int64_t b, int64_t hk,
                                   int64_t kb) {
    return pairs_tile(pr, kv, kv->v_pairs, b, hk, kb, pr->p.head_dim_v);
}

const uint16_t *mfa_cpu_kv_vt_pairs(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, int64_t b, int64_t hk,
                                    int64_t kb) {
    return pairs_tile(pr, kv, kv->vt_pairs, b, hk, kb, pr->p.head_dim_v);
}

const uint16_t *mfa_cpu_kv_k_row_pairs(const mfa_problem_t *pr, const mfa_cpu_kv_t *kv, int64_t b, int64_t hk,
                                       int64_t kb) {
    return pairs_tile(pr, kv, kv->k_row_pairs, b, hk, kb, pr->p.head_dim_qk);
}
