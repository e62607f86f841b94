/* cases.c — the case table: every feature of the API against the float64 reference.
 *
 * One row per case; unnamed fields keep their zero defaults (f32 in and out, BSHD contiguous,
 * no mask, default scale, forward only). Coverage, by section:
 *   shapes    sequence lengths 1, 7, 63, 127, 257, 1000 (equal and unequal q/kv), head dims 16,
 *             32, 64, 80, 96, 128, 256 and head_dim_v != head_dim_qk
 *   decode    1-5 query rows per q head, GQA groups of 1-8, against 300-2000 keys, with masks,
 *             dtypes, layouts, varlen, and keys split across threads
 *   gqa       ratios 1 (everywhere), 2, 4, 8
 *   masks     causal top-left / bottom-right, windows with each side bounded or not and either
 *             alignment, block-sparse (shared and per-head maps, odd block sizes), dense bool /
 *             additive f32 / additive bf16 (broadcast over batch, heads, or neither)
 *   empty     rows that keep no key: bottom-right causal with seqlen_q > seqlen_kv, a window
 *             that leaves early rows empty, the all-dropped row of every dense mask, block rows
 *             the map drops, varlen sequences with no key
 *   numerics  softcap, explicit scale, large scores (online-softmax rescaling), uniform inputs
 *   layouts   BSHD, BHSD, strided (padded), transposed (the seed's [dim, seq] slices); tensors
 *             as raw pointers, as (buffer, byte_offset) over caller memory with buffers that
 *             end exactly at the last element, or in library buffers filled by copies
 *   dtypes    f32 / f16 / bf16 inputs with each output dtype
 *   varlen    random lengths, an empty sequence, queries without keys, with masks and GQA
 *   backward  at least one case per feature above.
 * Cases with 1000-token sequences use one or two heads so the float64 reference stays fast:
 * the whole table runs in well under a minute on two cores. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check.h"

#define SHAPE(b, sq, skv, hq, hkv, dqk, dv)                                                        \
    .batch = (b), .seqlen_q = (sq), .seqlen_kv = (skv), .heads_q = (hq), .heads_kv = (hkv),        \
    .head_dim_qk = (dqk), .head_dim_v = (dv)
#define F16 MFA_CHECK_F16
#define BF16 MFA_CHECK_BF16
#define CAUSAL .mask = MFA_MASK_CAUSAL
#define BR .mask_align = MFA_ALIGN_BOTTOM_RIGHT
#define WINDOW(l, r) .mask = MFA_MASK_WINDOW, .window_left = (l), .window_right = (r)
#define BLOCK(kind, bq, bk) .block = (kind), .block_q = (bq), .block_kv = (bk)
#define BWD .backward = 1
#define LSE .lse = 1

const mfa_check_case_t mfa_check_cases[] = {
    /* ---- shapes ---- */
    {"s1_d64", SHAPE(2, 1, 1, 2, 2, 64, 64), LSE},
    {"s7_d16", SHAPE(3, 7, 7, 3, 3, 16, 16)},
    {"s63_d32", SHAPE(2, 63, 63, 4, 4, 32, 32), LSE},
    {"s127_d80", SHAPE(1, 127, 127, 2, 2, 80, 80)},
    {"s257_d96", SHAPE(1, 257, 257, 2, 2, 96, 96), LSE},
    {"s127_d128", SHAPE(2, 127, 127, 2, 2, 128, 128)},
    /* head dims off every kernel's panel width (cpu: 16 avx2, 32 avx512) and tensor-core tile */
    {"s127_dqk40_dv24", SHAPE(2, 127, 127, 2, 2, 40, 24), LSE},
    {"s63_d256", SHAPE(1, 63, 63, 2, 2, 256, 256), LSE},
    {"s257_d256_bf16", SHAPE(1, 257, 257, 1, 1, 256, 256), .in_dtype = BF16, .out_dtype = BF16},
    {"s1000_d64", SHAPE(1, 1000, 1000, 2, 2, 64, 64), LSE},
    {"s1000_d128_causal", SHAPE(1, 1000, 1000, 1, 1, 128, 128), CAUSAL},
    {"sq1_skv1000", SHAPE(2, 1, 1000, 2, 2, 64, 64), LSE},
    {"sq1000_skv7", SHAPE(1, 1000, 7, 1, 1, 32, 32)},
    {"sq7_skv257", SHAPE(2, 7, 257, 2, 2, 64, 64)},
    {"sq257_skv63", SHAPE(1, 257, 63, 2, 2, 32, 32), LSE},
    {"dqk64_dv32", SHAPE(2, 63, 127, 2, 2, 64, 32), LSE},
    {"dqk32_dv128", SHAPE(1, 127, 63, 2, 2, 32, 128)},
    {"dqk256_dv64", SHAPE(1, 63, 63, 2, 2, 256, 64)},
    {"dqk16_dv80", SHAPE(2, 7, 63, 2, 2, 16, 80)},
    /* ---- decode (cpu: src/cpu/decode.c, at most 16 query rows, at most 128 per kv head with
     * the GQA group, 256+ keys; blocks of more than 16 rows take S through a GEMM) ---- */
    {"decode_gqa4_sq3_causal_br", SHAPE(2, 3, 517, 8, 2, 64, 64), CAUSAL, BR, LSE},
    {"decode_gqa8_sq2_window_br_bf16", SHAPE(1, 2, 700, 8, 1, 128, 128), WINDOW(100, 0), BR,
     .in_dtype = BF16, .out_dtype = BF16, LSE},
    {"decode_causal_tl_sq4_gqa4", SHAPE(1, 4, 600, 4, 1, 32, 32), CAUSAL, LSE},
    {"decode_block_per_head_gqa2", SHAPE(2, 5, 300, 4, 2, 32, 48), BLOCK(MFA_CHECK_BLOCK_PER_HEAD, 4, 32),
     LSE},
    {"decode_softcap_dense_f32", SHAPE(1, 4, 400, 4, 4, 64, 64), .softcap = 5.0f, .score_std = 4.0f,
     .dense = MFA_CHECK_DENSE_F32, .dense_broadcast = MFA_CHECK_BCAST_BATCH, LSE},
    {"decode_varlen_gqa4_causal_br", SHAPE(3, 4, 300, 8, 2, 64, 64), .varlen = 1, CAUSAL, BR, LSE},
    {"decode_strided_f16_gqa4_d80", SHAPE(2, 1, 1000, 4, 1, 80, 80), .layout = MFA_CHECK_STRIDED,
     .in_dtype = F16, LSE},
    {"decode_transposed_k", SHAPE(1, 2, 513, 2, 1, 64, 64), .transpose = MFA_CHECK_TK, LSE},
    {"decode_one_pair_split_keys", SHAPE(1, 1, 2000, 1, 1, 64, 64), LSE},
    {"decode_batch5_unsplit_gqa2", SHAPE(5, 2, 300, 4, 2, 64, 64), CAUSAL, BR, LSE},
    {"decode_bhsd_gqa2_head_order", SHAPE(2, 3, 400, 4, 2, 64, 64), .layout = MFA_CHECK_BHSD, LSE},
    {"decode_gqa8_sq6_causal_br_48rows", SHAPE(1, 6, 700, 16, 2, 64, 64), CAUSAL, BR, LSE},
    {"decode_gqa4_sq16_bf16_d128_64rows", SHAPE(2, 16, 333, 8, 2, 128, 128), WINDOW(200, 0), BR,
     .in_dtype = BF16, .out_dtype = BF16, LSE},
    {"decode_gqa12_sq9_d40_108rows", SHAPE(1, 9, 400, 12, 1, 40, 40), CAUSAL, LSE},
    /* ---- gqa ---- */
    {"gqa2", SHAPE(2, 127, 127, 4, 2, 64, 64), LSE},
    {"gqa8", SHAPE(1, 63, 63, 8, 1, 64, 64), LSE},
    {"gqa8_h16", SHAPE(1, 127, 127, 16, 2, 32, 32)},
    {"gqa4_dqk32_dv64", SHAPE(1, 63, 127, 4, 1, 32, 64)},
    /* ---- masks ---- */
    {"causal_tl", SHAPE(2, 127, 127, 2, 2, 64, 64), CAUSAL, LSE},
    {"causal_tl_sq63_skv257", SHAPE(1, 63, 257, 2, 2, 64, 64), CAUSAL},
    {"causal_tl_sq257_skv63", SHAPE(1, 257, 63, 2, 2, 32, 32), CAUSAL, LSE},
    {"causal_br", SHAPE(2, 127, 127, 2, 2, 64, 64), CAUSAL, BR},
    {"causal_br_sq63_skv257", SHAPE(1, 63, 257, 2, 2, 64, 64), CAUSAL, BR, LSE},
    {"causal_br_sq257_skv63_empty_rows", SHAPE(1, 257, 63, 2, 2, 32, 32), CAUSAL, BR, LSE},
    {"window_16_0", SHAPE(1, 257, 257, 2, 2, 64, 64), WINDOW(16, 0), LSE},
    {"window_8_8", SHAPE(2, 127, 127, 2, 2, 32, 32), WINDOW(8, 8)},
    {"window_unbounded_left", SHAPE(1, 127, 127, 2, 2, 64, 64), WINDOW(-1, 4)},
    {"window_unbounded_right", SHAPE(1, 127, 127, 2, 2, 64, 64), WINDOW(4, -1), LSE},
    {"window_br_empty_rows", SHAPE(1, 127, 7, 2, 2, 64, 64), WINDOW(3, 0), BR, LSE},
    {"window_br_sq63_skv257", SHAPE(1, 63, 257, 2, 2, 64, 64), WINDOW(32, 16), BR},
    {"block_shared", SHAPE(2, 127, 257, 2, 2, 64, 64), BLOCK(MFA_CHECK_BLOCK_SHARED, 16, 32)},
    {"block_per_head", SHAPE(2, 257, 127, 4, 2, 32, 32), BLOCK(MFA_CHECK_BLOCK_PER_HEAD, 32, 16),
     LSE},
    {"block_causal", SHAPE(1, 257, 257, 2, 2, 64, 64), BLOCK(MFA_CHECK_BLOCK_SHARED, 64, 64),
     CAUSAL},
    {"block_odd_sizes", SHAPE(1, 63, 63, 2, 2, 32, 32), BLOCK(MFA_CHECK_BLOCK_PER_HEAD, 7, 13),
     LSE},
    {"dense_bool", SHAPE(2, 63, 127, 2, 2, 64, 64), .dense = MFA_CHECK_DENSE_BOOL,
     .dense_broadcast = MFA_CHECK_BCAST_BATCH, LSE},
    {"dense_f32", SHAPE(2, 127, 63, 2, 2, 32, 32), .dense = MFA_CHECK_DENSE_F32,
     .dense_broadcast = MFA_CHECK_BCAST_BATCH | MFA_CHECK_BCAST_HEAD, LSE},
    {"dense_bf16", SHAPE(1, 127, 127, 2, 2, 64, 64), .dense = MFA_CHECK_DENSE_BF16},
    {"dense_bool_causal_br_gqa2", SHAPE(2, 63, 63, 4, 2, 64, 64), .dense = MFA_CHECK_DENSE_BOOL,
     .dense_broadcast = MFA_CHECK_BCAST_HEAD, CAUSAL, BR, LSE},
    /* ---- numerics ---- */
    {"softcap", SHAPE(2, 127, 127, 2, 2, 64, 64), .softcap = 5.0f, .score_std = 4.0f, LSE},
    {"softcap_causal", SHAPE(1, 257, 257, 2, 2, 32, 32), .softcap = 2.0f, .score_std = 3.0f,
     CAUSAL},
    {"scale_explicit", SHAPE(1, 63, 63, 2, 2, 64, 64), .softmax_scale = 0.3f, LSE},
    {"large_scores", SHAPE(1, 257, 257, 2, 2, 64, 64), .score_std = 40.0f, LSE},
    {"large_scores_causal_f16", SHAPE(1, 127, 127, 2, 2, 64, 64), .score_std = 30.0f, CAUSAL,
     .in_dtype = F16},
    {"uniform_inputs", SHAPE(2, 63, 63, 2, 2, 64, 64), .uniform = 1},
    /* ---- layouts ---- */
    {"bhsd", SHAPE(2, 127, 63, 4, 2, 64, 64), .layout = MFA_CHECK_BHSD, LSE},
    {"strided", SHAPE(2, 63, 127, 4, 2, 64, 32), .layout = MFA_CHECK_STRIDED, LSE},
    {"strided_d80_causal", SHAPE(1, 127, 127, 2, 1, 80, 80), .layout = MFA_CHECK_STRIDED, CAUSAL},
    {"transposed_k", SHAPE(2, 127, 127, 2, 2, 64, 64), .transpose = MFA_CHECK_TK},
    {"transposed_qkvo", SHAPE(1, 63, 257, 2, 2, 32, 32), .transpose = 15, LSE},
    {"transposed_seed_causal_f16", SHAPE(1, 127, 127, 2, 2, 64, 64), .transpose = 15, CAUSAL,
     .in_dtype = F16, .out_dtype = F16},
    {"buffers_strided_gqa2", SHAPE(2, 63, 127, 4, 2, 64, 32), .layout = MFA_CHECK_STRIDED,
     .buffers = 1, LSE},
    {"buffers_created_block_lse", SHAPE(2, 127, 63, 2, 1, 32, 32), .buffers = 2,
     BLOCK(MFA_CHECK_BLOCK_PER_HEAD, 16, 16), LSE},
    {"buffers_transposed_dense_bool", SHAPE(1, 63, 63, 2, 2, 32, 32), .transpose = 15,
     .dense = MFA_CHECK_DENSE_BOOL, .dense_broadcast = MFA_CHECK_BCAST_BATCH, .buffers = 1},
    /* ---- dtypes ---- */
    {"f16", SHAPE(2, 127, 127, 2, 2, 64, 64), .in_dtype = F16, .out_dtype = F16, LSE},
    {"bf16", SHAPE(2, 127, 127, 2, 2, 64, 64), .in_dtype = BF16, .out_dtype = BF16, LSE},
    {"f16_in_f32_out", SHAPE(1, 257, 257, 2, 2, 128, 128), .in_dtype = F16},
    {"bf16_in_f32_out", SHAPE(1, 257, 63, 2, 2, 80, 80), .in_dtype = BF16, LSE},
    {"f32_in_f16_out", SHAPE(1, 63, 127, 2, 2, 64, 64), .out_dtype = F16},
    {"f32_in_bf16_out", SHAPE(1, 127, 63, 2, 2, 96, 96), .out_dtype = BF16},
    {"f16_in_bf16_out", SHAPE(1, 63, 63, 2, 2, 32, 32), .in_dtype = F16, .out_dtype = BF16},
    {"bf16_s1000_causal", SHAPE(1, 1000, 1000, 1, 1, 64, 64), .in_dtype = BF16, .out_dtype = BF16,
     CAUSAL},
    /* 16-bit sliding windows outside the decode path: rows whose keys start past a tile's first
     * (the cpu forward takes a narrow window's tiles all at once, P rounded to bf16 from there),
     * two-sided with GQA; and bf16 products with an fp32 output (P stays fp32) */
    {"bf16_window_100_20_d128_gqa2", SHAPE(1, 600, 600, 4, 2, 128, 128), .in_dtype = BF16, .out_dtype = BF16,
     WINDOW(100, 20), LSE},
    {"bf16_in_f32_out_window_64_0", SHAPE(2, 300, 300, 2, 2, 64, 64), .in_dtype = BF16, WINDOW(64, 0)},
    /* 16-bit d128 forwards with several query tiles (before these the table had d128 16-bit
     * forwards only in decode shapes), GQA, causal; and varlen, whose shorter sequences leave the
     * Hopper forward's grid with padding tiles */
    {"bf16_s777_d128_causal_gqa2", SHAPE(2, 777, 777, 4, 2, 128, 128), .in_dtype = BF16, .out_dtype = BF16,
     CAUSAL, LSE},
    {"varlen_f16_d128_gqa2", SHAPE(3, 300, 300, 4, 2, 128, 128), .varlen = 1, .in_dtype = F16, .out_dtype = F16,
     LSE},
    /* causal with fewer or more queries than keys, bottom-right, fixed length: the Hopper
     * forward's persistent schedule pairs query tiles of unequal cost (d128), and walks items
     * whose first rows see no key (d64) */
    {"bf16_sq300_skv700_d128_causal_br_gqa2", SHAPE(2, 300, 700, 4, 2, 128, 128), .in_dtype = BF16,
     .out_dtype = BF16, CAUSAL, BR, LSE},
    {"bf16_sq700_skv300_d64_causal_br", SHAPE(1, 700, 300, 2, 2, 64, 64), .in_dtype = BF16, .out_dtype = BF16,
     CAUSAL, BR, LSE},
    /* ---- varlen ---- */
    {"varlen", SHAPE(4, 127, 127, 2, 2, 64, 64), .varlen = 1, LSE},
    {"varlen_causal_br_no_keys", SHAPE(5, 63, 127, 2, 2, 32, 32), .varlen = 1, CAUSAL, BR, LSE},
    {"varlen_window", SHAPE(4, 127, 127, 2, 2, 64, 64), .varlen = 1, WINDOW(16, 16)},
    {"varlen_gqa4_bf16", SHAPE(3, 63, 63, 4, 1, 64, 64), .varlen = 1, .in_dtype = BF16,
     .out_dtype = BF16, LSE},
    {"varlen_block", SHAPE(4, 127, 127, 2, 2, 32, 32), .varlen = 1,
     BLOCK(MFA_CHECK_BLOCK_SHARED, 16, 16)},
    {"varlen_bhsd", SHAPE(3, 63, 63, 2, 2, 64, 64), .varlen = 1, .layout = MFA_CHECK_BHSD},
    {"varlen_strided_sq63_skv127", SHAPE(4, 63, 127, 2, 2, 32, 32), .varlen = 1,
     .layout = MFA_CHECK_STRIDED},
    /* several key tiles a sequence at unaligned packed offsets, head dims 4 past a multiple of 8
     * (the fp32 Hopper forward's per-tile scales and half 16-byte chunks) */
    {"varlen_gqa2_causal_dqk100_dv52", SHAPE(4, 300, 333, 4, 2, 100, 52), .varlen = 1, CAUSAL, LSE},
    /* ---- backward ---- */
    {"bwd_s1", SHAPE(2, 1, 1, 2, 2, 64, 64), BWD},
    {"bwd_s7_d16", SHAPE(2, 7, 7, 2, 2, 16, 16), BWD},
    {"bwd_s63_d32", SHAPE(2, 63, 63, 2, 2, 32, 32), BWD},
    {"bwd_s127_d80", SHAPE(1, 127, 127, 2, 2, 80, 80), BWD},
    {"bwd_s257_d96", SHAPE(1, 257, 257, 1, 1, 96, 96), BWD},
    {"bwd_s1000", SHAPE(1, 1000, 1000, 1, 1, 64, 64), BWD},
    {"bwd_sq1_skv1000", SHAPE(1, 1, 1000, 2, 2, 64, 64), BWD},
    {"bwd_d128", SHAPE(1, 127, 127, 2, 2, 128, 128), BWD},
    {"bwd_d256", SHAPE(1, 63, 63, 2, 2, 256, 256), BWD},
    {"bwd_dqk64_dv32", SHAPE(1, 63, 127, 2, 2, 64, 32), BWD},
    {"bwd_dqk32_dv128", SHAPE(1, 127, 63, 2, 2, 32, 128), BWD},
    {"bwd_gqa2", SHAPE(2, 63, 63, 4, 2, 64, 64), BWD},
    {"bwd_gqa8", SHAPE(1, 127, 127, 8, 1, 32, 32), BWD},
    {"bwd_causal_tl", SHAPE(2, 127, 127, 2, 2, 64, 64), CAUSAL, BWD},
    {"bwd_causal_br_sq63_skv257", SHAPE(1, 63, 257, 2, 2, 64, 64), CAUSAL, BR, BWD},
    {"bwd_causal_br_empty_rows", SHAPE(1, 127, 63, 2, 2, 64, 64), CAUSAL, BR, BWD},
    {"bwd_window", SHAPE(1, 257, 257, 2, 2, 64, 64), WINDOW(16, 4), BWD},
    {"bwd_window_keys_seen_by_no_row", SHAPE(1, 63, 257, 2, 2, 64, 64), WINDOW(8, 8), BWD},
    {"bwd_window_br_empty_rows", SHAPE(1, 127, 7, 2, 2, 32, 32), WINDOW(3, 0), BR, BWD},
    {"bwd_block_shared", SHAPE(2, 127, 127, 2, 2, 64, 64), BLOCK(MFA_CHECK_BLOCK_SHARED, 16, 32),
     BWD},
    {"bwd_block_per_head_causal", SHAPE(1, 127, 127, 4, 2, 32, 32),
     BLOCK(MFA_CHECK_BLOCK_PER_HEAD, 32, 16), CAUSAL, BWD},
    {"bwd_dense_bool", SHAPE(2, 63, 127, 2, 2, 64, 64), .dense = MFA_CHECK_DENSE_BOOL,
     .dense_broadcast = MFA_CHECK_BCAST_BATCH, BWD},
    {"bwd_dense_f32", SHAPE(1, 127, 63, 2, 2, 32, 32), .dense = MFA_CHECK_DENSE_F32, BWD},
    {"bwd_dense_bf16_gqa2", SHAPE(2, 63, 63, 4, 2, 64, 64), .dense = MFA_CHECK_DENSE_BF16,
     .dense_broadcast = MFA_CHECK_BCAST_BATCH | MFA_CHECK_BCAST_HEAD, BWD},
    {"bwd_softcap", SHAPE(1, 127, 127, 2, 2, 64, 64), .softcap = 5.0f, .score_std = 4.0f, BWD},
    {"bwd_scale_explicit", SHAPE(1, 63, 63, 2, 2, 64, 64), .softmax_scale = 0.3f, BWD},
    {"bwd_large_scores", SHAPE(1, 127, 127, 2, 2, 64, 64), .score_std = 40.0f, BWD},
    {"bwd_varlen", SHAPE(4, 127, 127, 2, 2, 64, 64), .varlen = 1, BWD},
    {"bwd_varlen_causal_br_no_keys", SHAPE(5, 63, 127, 4, 2, 32, 32), .varlen = 1, CAUSAL, BR, BWD},
    {"bwd_f16", SHAPE(2, 127, 127, 2, 2, 64, 64), .in_dtype = F16, .out_dtype = F16, BWD},
    {"bwd_bf16", SHAPE(2, 127, 127, 2, 2, 64, 64), .in_dtype = BF16, .out_dtype = BF16, BWD},
    /* 16-bit backward at the tensor-core kernels' other tile shapes: several query tiles of 128
     * rows (d64), staged dQ with GQA and the causal edge (d128), dQ from registers with a window
     * (d256), a head dim padded up (96 -> 128) with varlen and bottom-right causal */
    {"bwd_bf16_s300_d64", SHAPE(2, 300, 300, 2, 2, 64, 64), .in_dtype = BF16, .out_dtype = BF16, BWD},
    {"bwd_bf16_d128_causal_gqa2", SHAPE(1, 257, 257, 4, 2, 128, 128), .in_dtype = BF16, .out_dtype = BF16,
     CAUSAL, BWD},
    {"bwd_f16_d256_window", SHAPE(1, 200, 200, 2, 2, 256, 256), .in_dtype = F16, .out_dtype = F16, WINDOW(64, 0),
     BWD},
    {"bwd_bf16_d96_varlen_causal_br", SHAPE(3, 100, 130, 2, 1, 96, 96), .varlen = 1, .in_dtype = BF16,
     .out_dtype = BF16, CAUSAL, BR, BWD},
    /* the Hopper backward's other paths: window + GQA at d128, partial head dims and bottom-right
     * causal with fewer queries than keys at d64 (query tiles of 128), the d256 dim split with varlen
     * and partial head dims */
    {"bwd_f16_s777_d128_window_gqa4", SHAPE(1, 777, 777, 8, 2, 128, 128), .in_dtype = F16, .out_dtype = F16,
     WINDOW(100, 30), BWD},
    {"bwd_bf16_s333_dqk40_dv24_causal", SHAPE(2, 333, 333, 4, 4, 40, 24), .in_dtype = BF16, .out_dtype = BF16,
     CAUSAL, BWD},
    {"bwd_bf16_sq130_skv517_d64_br_gqa2", SHAPE(1, 130, 517, 2, 1, 64, 64), .in_dtype = BF16, .out_dtype = BF16,
     CAUSAL, BR, BWD},
    {"bwd_bf16_varlen_dqk200_dv256_causal_gqa2", SHAPE(2, 150, 150, 4, 2, 200, 256), .varlen = 1, .in_dtype = BF16,
     .out_dtype = BF16, CAUSAL, BWD},
    {"bwd_s100_dqk40_dv24_causal", SHAPE(1, 100, 100, 2, 2, 40, 24), CAUSAL, BWD},
    {"bwd_bf16_in_f32_out", SHAPE(1, 63, 63, 2, 2, 64, 64), .in_dtype = BF16, BWD},
    {"bwd_f32_in_f16_out_causal", SHAPE(1, 127, 127, 2, 2, 64, 64), .out_dtype = F16, CAUSAL, BWD},
    {"bwd_bhsd", SHAPE(2, 63, 63, 2, 2, 64, 64), .layout = MFA_CHECK_BHSD, BWD},
    {"bwd_strided_gqa2", SHAPE(1, 63, 127, 4, 2, 64, 32), .layout = MFA_CHECK_STRIDED, BWD},
    {"bwd_transposed", SHAPE(1, 63, 63, 2, 2, 32, 32), .transpose = 15, BWD},
    {"bwd_buffers_varlen_bf16", SHAPE(4, 63, 63, 2, 1, 64, 64), .varlen = 1, .in_dtype = BF16,
     .out_dtype = BF16, .buffers = 1, BWD},
    {"bwd_buffers_created_strided", SHAPE(2, 63, 63, 4, 2, 32, 32), .layout = MFA_CHECK_STRIDED,
     .buffers = 2, CAUSAL, BWD},
};
const size_t mfa_check_num_cases = sizeof mfa_check_cases / sizeof mfa_check_cases[0];

int mfa_check_case_matches(const mfa_check_case_t *c, const char *filter) {
    return !filter || !*filter || strstr(c->name, filter) != NULL;
}

const char *mfa_check_describe(const mfa_check_case_t *c, char *buf, size_t size) {
    static const char *layouts[] = {"bshd", "bhsd", "strided"};
    static const char *masks[] = {"", " causal", " window"};
    static const char *dense[] = {"", " dense-bool", " dense-f32", " dense-bf16"};
    char win[48] = "";
    if (c->mask == MFA_MASK_WINDOW)
        snprintf(win, sizeof win, "(%lld,%lld)", (long long)c->window_left,
                 (long long)c->window_right);
    snprintf(buf, size, "b%lld sq%lld skv%lld h%lld/%lld d%lld/%lld %s>%s %s%s%s%s%s%s%s%s%s%s%s",
             (long long)c->batch, (long long)c->seqlen_q, (long long)c->seqlen_kv,
             (long long)c->heads_q, (long long)c->heads_kv, (long long)c->head_dim_qk,
             (long long)c->head_dim_v, mfa_check_dtype_name(c->in_dtype),
             mfa_check_dtype_name(c->out_dtype), c->transpose ? "transposed" : layouts[c->layout],
             masks[c->mask], win, c->mask && c->mask_align == MFA_ALIGN_BOTTOM_RIGHT ? "-br" : "",
             c->block ? " block" : "", dense[c->dense], c->softcap > 0 ? " softcap" : "",
             c->varlen ? " varlen" : "", c->lse ? " lse" : "", c->backward ? " bwd" : "",
             c->score_std > 8 ? " large" : "");
    return buf;
}

int32_t mfa_check_backend_from_name(const char *name) {
    if (!name || !*name || strcmp(name, "auto") == 0) return MFA_BACKEND_AUTO;
    if (strcmp(name, "cpu") == 0) return MFA_BACKEND_CPU;
    if (strcmp(name, "cuda") == 0) return MFA_BACKEND_CUDA;
    if (strcmp(name, "reference") == 0) return MFA_BACKEND_REFERENCE;
    return -1;
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static mfa_context_t open_context(int32_t backend, const char *name, FILE *out) {
    mfa_context_options_t o;
    mfa_context_options_init(&o);
    o.backend = backend;
    mfa_context_t ctx = NULL;
    const mfa_error_t e = mfa_create_context_ex(&ctx, &o);
    if (e != MFA_SUCCESS) {
        fprintf(out, "cannot create a %s context: %s (%s)\n", name, mfa_error_string(e),
                mfa_last_error_message(NULL));
        return NULL;
    }
    return ctx;
}

int mfa_check_run_table(const char *backend, const char *filter, uint64_t seed, int verbose,
                        FILE *out) {
    static const char *status_name[] = {"PASS", "FAIL", "SKIP"};
    static const char *out_name[] = {"o", "lse", "dq", "dk", "dv"};
    const int32_t kind = mfa_check_backend_from_name(backend);
    if (kind < 0) {
        fprintf(out, "unknown backend '%s' (cpu, cuda, reference)\n", backend);
        return -1;
    }
    mfa_context_t ut = open_context(kind, backend ? backend : "default", out);
    mfa_context_t ref = ut ? open_context(MFA_BACKEND_REFERENCE, "reference", out) : NULL;
    if (!ref) {
        mfa_destroy_context(ut);
        return -1;
    }
    size_t selected = 0;
    for (size_t i = 0; i < mfa_check_num_cases; i++)
        selected += (size_t)mfa_check_case_matches(&mfa_check_cases[i], filter);
    if (selected == 0) {
        fprintf(out, "no case name contains '%s'\n", filter);
        mfa_destroy_context(ref);
        mfa_destroy_context(ut);
        return -1;
    }
    fprintf(out, "mfa check: %s vs reference, seed %llu, %zu of %zu cases\n",
            mfa_context_description(ut), (unsigned long long)seed, selected, mfa_check_num_cases);
    fprintf(out, "%-36s %-5s %9s %9s %9s\n", "case", "", "err/tol", "fwd ms", "bwd ms");
    static char report[8192];
    int counts[3] = {0, 0, 0};
    const double t0 = seconds();
    for (size_t i = 0; i < mfa_check_num_cases; i++) {
        const mfa_check_case_t *c = &mfa_check_cases[i];
        if (!mfa_check_case_matches(c, filter)) continue;
        mfa_check_result_t res;
        const int st = mfa_check_case_ex(c, ut, ref, seed, &res, report, sizeof report);
        counts[st]++;
        fprintf(out, "%-36s %-5s %9.3g %9.2f", c->name, status_name[st], res.max_ratio, res.ms_fwd);
        if (c->backward) fprintf(out, " %9.2f", res.ms_bwd);
        fprintf(out, "\n");
        if (verbose)
            fprintf(out, "    out %s, score_max %.3g\n", mfa_check_dtype_name(c->out_dtype),
                    res.score_max);
        for (int k = 0; verbose && k < MFA_CHECK_NOUT; k++) {
            const mfa_check_stat_t *s = &res.stat[k];
            if (s->compared)
                fprintf(out, "    %-3s err/rms %9.3g  err/|ref| %9.3g  err/tol %9.3g  rms %9.3g\n",
                        out_name[k], s->err_rms, s->err_rel, s->max_ratio, s->rms_ref);
        }
        if (st != MFA_CHECK_PASS) {
            const char *line = report;
            while (*line) { /* indent the report */
                const char *nl = strchr(line, '\n');
                const int len = nl ? (int)(nl - line) : (int)strlen(line);
                fprintf(out, "    %.*s\n", len, line);
                line += len + (nl != NULL);
            }
        }
        fflush(out);
    }
    fprintf(out, "%zu cases: %d passed, %d failed, %d skipped (%.1f s)\n", selected,
            counts[MFA_CHECK_PASS], counts[MFA_CHECK_FAIL], counts[MFA_CHECK_SKIP], seconds() - t0);
    const int skip_fails = strcmp(mfa_context_backend_name(ut), "cuda") != 0;
    mfa_destroy_context(ref);
    mfa_destroy_context(ut);
    return counts[MFA_CHECK_FAIL] + (skip_fails ? counts[MFA_CHECK_SKIP] : 0);
}
