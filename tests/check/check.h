/* check.h — the shared case table and the compare-with-reference runner.
 *
 * What this is: one table of attention problems (tests/check/cases.c) and one function that runs
 * a case on the context under test and on a float64 reference context, on the same fresh random
 * input bits, and compares every output element-wise within the tolerances of tolerance.h.
 * `mfa check`, tests/test_cases.c and the CUDA tests all drive this same code, so a case added to
 * the table is exercised everywhere.
 *
 * What the runner checks, beyond the element-wise comparison:
 *   - outputs are poisoned with NaN before each run (unwritten elements fail), and NaN anywhere
 *     in an output is a failure;
 *   - every byte around and between the described elements (guards before/after each array, the
 *     gaps of strided layouts) is a sentinel that must survive the call;
 *   - inputs (q, k, v, masks, and o/lse/dout in the backward) are not modified;
 *   - rows that keep no key give o == 0, lse == -inf and dq == 0 exactly, and keys that no row
 *     keeps give dk == dv == 0 exactly (checked from the case's own mask evaluation, not only
 *     through the tolerance).
 *
 * It uses only the public API (mfa.h). Not thread-safe across concurrent calls on one context.
 */
#ifndef MFA_CHECK_H
#define MFA_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mfa.h"

/* ---- A case ---------------------------------------------------------------------------------
 * Zero-initialised fields are the defaults, so table rows only name what they change. */
enum { MFA_CHECK_F32 = 0, MFA_CHECK_F16 = 1, MFA_CHECK_BF16 = 2 }; /* element types (0 = f32) */

enum {
    MFA_CHECK_BSHD = 0,    /* contiguous [batch, seq, head, dim] */
    MFA_CHECK_BHSD = 1,    /* contiguous [batch, head, seq, dim] (the seed's layout) */
    MFA_CHECK_STRIDED = 2, /* BSHD with gaps: head stride dim + 8, row and batch padding */
};
/* `transpose` bits: that operand's (batch, head) slice is stored [dim, seq] (stride[3] = seq,
 * stride[1] = 1) inside a BHSD layout, as the seed's transpose flags. dq/dk/dv follow q/k/v, dout
 * follows o. */
enum { MFA_CHECK_TQ = 1, MFA_CHECK_TK = 2, MFA_CHECK_TV = 4, MFA_CHECK_TO = 8 };

enum { MFA_CHECK_BLOCK_NONE = 0, MFA_CHECK_BLOCK_SHARED = 1, MFA_CHECK_BLOCK_PER_HEAD = 2 };
enum {
    MFA_CHECK_DENSE_NONE = 0,
    MFA_CHECK_DENSE_BOOL = 1,
    MFA_CHECK_DENSE_F32 = 2,
    MFA_CHECK_DENSE_BF16 = 3
};
/* `dense_broadcast` bits: the dense mask has stride 0 over batch and/or heads. */
enum { MFA_CHECK_BCAST_BATCH = 1, MFA_CHECK_BCAST_HEAD = 2 };

typedef struct mfa_check_case {
    const char *name;
    int64_t batch, seqlen_q, seqlen_kv, heads_q, heads_kv, head_dim_qk, head_dim_v;
    int32_t in_dtype;                  /* q, k, v: MFA_CHECK_F32 / F16 / BF16 */
    int32_t out_dtype;                 /* o, and dout/dq/dk/dv in the backward */
    int32_t layout;                    /* MFA_CHECK_BSHD / BHSD / STRIDED */
    int32_t transpose;                 /* MFA_CHECK_T* bits (BHSD-based) */
    int32_t mask, mask_align;          /* MFA_MASK_*, MFA_ALIGN_* */
    int64_t window_left, window_right; /* MFA_MASK_WINDOW only; -1 = unbounded */
    int32_t block;                     /* MFA_CHECK_BLOCK_*: random block-sparse map */
    int64_t block_q, block_kv;
    int32_t dense;           /* MFA_CHECK_DENSE_*: random dense mask, one row fully dropped */
    int32_t dense_broadcast; /* MFA_CHECK_BCAST_* bits */
    float softcap;
    float softmax_scale; /* 0 = library default 1/sqrt(head_dim_qk) */
    int32_t varlen;      /* 1: random per-sequence lengths <= seqlen_q/kv, sequence 1 empty;
                            when seqlen_q != seqlen_kv the kv lengths are drawn independently
                            and sequence 3 (if any) has queries but no keys */
    int32_t lse;         /* request and compare the LSE */
    int32_t backward;    /* also run and compare the backward */
    float score_std;     /* std of the scaled scores q.k*scale; 0 = 2 (realistic) */
    int32_t uniform;     /* inputs uniform in [-a, a] instead of normal, same std */
    int32_t buffers;     /* how the context under test gets its memory: 0 raw pointers;
                            1 caller memory wrapped by mfa_buffer_from_ptr, each buffer ending
                            exactly at its tensor's last element; 2 library buffers from
                            mfa_create_buffer filled with mfa_buffer_copy_from_host (what a GPU
                            caller does; always used on backends other than cpu / reference) */
} mfa_check_case_t;

/* The table (cases.c). */
extern const mfa_check_case_t mfa_check_cases[];
extern const size_t mfa_check_num_cases;

/* True when `filter` is NULL, empty, or a substring of the case's name. */
int mfa_check_case_matches(const mfa_check_case_t *c, const char *filter);

/* ---- Running a case -------------------------------------------------------------------------- */
enum { MFA_CHECK_PASS = 0, MFA_CHECK_FAIL = 1, MFA_CHECK_SKIP = 2 };

/* Error statistics of one compared output. ratio = |x - ref| / (atol + rtol*|ref|) (<= 1
 * passes); err_rms = max |x - ref| / rms(ref); err_rel = max |x - ref| / |ref| over elements with
 * |ref| >= rms(ref). The last two are what tolerance.h was measured with. */
typedef struct mfa_check_stat {
    int64_t compared;
    double max_abs, max_ratio, err_rms, err_rel, rms_ref;
} mfa_check_stat_t;

enum { MFA_CHECK_O, MFA_CHECK_LSE, MFA_CHECK_DQ, MFA_CHECK_DK, MFA_CHECK_DV, MFA_CHECK_NOUT };

typedef struct mfa_check_result {
    int status;       /* MFA_CHECK_PASS / FAIL / SKIP */
    double max_ratio; /* worst ratio over all compared outputs */
    double score_max; /* largest |scaled score + bias| over kept pairs (see tolerance.h) */
    mfa_check_stat_t stat[MFA_CHECK_NOUT];
    double ms_fwd, ms_bwd;         /* the context under test */
    double ms_ref_fwd, ms_ref_bwd; /* the reference */
} mfa_check_result_t;

/* Runs case c with inputs drawn from `seed` (mixed with the case name, so one case replays alone
 * with --filter). Returns MFA_CHECK_PASS, MFA_CHECK_FAIL (report says why: the first <= 5
 * mismatches with [b, s, h, d] indices, values, reference, and the seed) or MFA_CHECK_SKIP (the
 * context under test answered UNSUPPORTED / DEVICE_NOT_SUPPORTED). result may be NULL. */
int mfa_check_case_ex(const mfa_check_case_t *c, mfa_context_t under_test, mfa_context_t reference,
                      uint64_t seed, mfa_check_result_t *result, char *report, size_t report_size);
int mfa_check_case(const mfa_check_case_t *c, mfa_context_t under_test, mfa_context_t reference,
                   uint64_t seed, char *report, size_t report_size);

/* Runs every case of the table matching `filter` on a context of `backend` ("cpu", "cuda",
 * "reference", or NULL / "auto" for the default) against the reference, printing one line per
 * case (name, PASS / FAIL / SKIP, worst error as a fraction of the tolerance, time) and each
 * failure's report to `out`. verbose > 0 adds per-output error statistics. A SKIP (the backend
 * refused the case) counts as a failure except on the cuda backend, which may have limits the
 * cpu one does not. Returns the number of failed cases, or -1 when a context could not be
 * created or no case matches `filter` (the message is printed). */
int mfa_check_run_table(const char *backend, const char *filter, uint64_t seed, int verbose,
                        FILE *out);

/* MFA_BACKEND_* for a name ("cpu", "cuda", "reference", "auto"), or -1. */
int32_t mfa_check_backend_from_name(const char *name);

/* The seed for a run: MFA_SEED from the environment if set, otherwise drawn from time and pid. */
uint64_t mfa_check_seed(void);

/* Short description of a case's shape and features (for tables), into buf. */
const char *mfa_check_describe(const mfa_check_case_t *c, char *buf, size_t size);

/* ======================================================================================== */
/* Helpers shared by the check library's files (inputs.c); not for callers.                  */
/* ======================================================================================== */

typedef struct mfa_check_rng {
    uint64_t s;
} mfa_check_rng_t;
void mfa_check_rng_seed(mfa_check_rng_t *r, uint64_t seed);
uint64_t mfa_check_rng_u64(mfa_check_rng_t *r);
double mfa_check_rng_uniform(mfa_check_rng_t *r); /* [0, 1) */
double mfa_check_rng_normal(mfa_check_rng_t *r);  /* N(0, 1) */
uint64_t mfa_check_hash(const char *s);

/* f16 / bf16 conversions of the check library (independent of the library's own). */
float mfa_check_half_to_f32(uint16_t h, int32_t mfa_dtype);
uint16_t mfa_check_f32_to_half(float f, int32_t mfa_dtype);
int32_t mfa_check_mfa_dtype(int32_t check_dtype); /* MFA_CHECK_F32.. -> MFA_DTYPE_* */
const char *mfa_check_dtype_name(int32_t check_dtype);

/* An array described by 4 extents and element strides (all >= 0), between two guard regions.
 * The whole allocation starts as the sentinel byte; described elements are then written. */
typedef struct mfa_check_array {
    unsigned char *alloc; /* guard | extent elements | guard */
    size_t bytes;         /* size of alloc */
    void *data;           /* element [0, 0, 0, 0] */
    int32_t dtype;        /* MFA_DTYPE_* */
    size_t esize;
    int64_t n[4], stride[4];
    int64_t extent;      /* elements from data to the last described one, inclusive */
    mfa_buffer_t buffer; /* optional (check.c): caller memory [alloc, last element] wrapped
                            by mfa_buffer_from_ptr, or a library buffer of `bytes` mirroring
                            the allocation (then `mirrored`) */
    int mirrored;
} mfa_check_array_t;

/* Allocates and sentinel-fills; returns 0, or -1 when out of memory. */
int mfa_check_array_alloc(mfa_check_array_t *a, int32_t dtype, const int64_t n[4],
                          const int64_t stride[4]);
void mfa_check_array_free(mfa_check_array_t *a);
int64_t mfa_check_array_at(const mfa_check_array_t *a, int64_t i0, int64_t i1, int64_t i2,
                           int64_t i3);
double mfa_check_array_get(const mfa_check_array_t *a, int64_t at);
void mfa_check_array_set(mfa_check_array_t *a, int64_t at, double x);
/* Described elements := NaN (all bits set: 0xFFFF for 16-bit types). */
void mfa_check_array_poison(mfa_check_array_t *a);
/* Described elements := N(0, std^2) or uniform with the same std, rounded to the dtype. */
void mfa_check_array_fill(mfa_check_array_t *a, mfa_check_rng_t *r, double std, int uniform);
/* Root mean square of the described elements (0 for an empty array). */
double mfa_check_array_rms(const mfa_check_array_t *a);
/* 0 when every byte outside the described elements still holds the sentinel; otherwise -1 and
 * a message naming the first touched byte. */
int mfa_check_array_untouched(const mfa_check_array_t *a, const char *name, char *msg, size_t size);

/* Strides of a [n0, n1, n2, n3] = [batch, seq, head, dim] tensor in a layout; `transposed`
 * stores each (batch, head) slice as [dim, seq] inside BHSD. */
void mfa_check_layout_strides(int32_t layout, int transposed, const int64_t n[4],
                              int64_t stride[4]);

#endif
