/* inputs.c — random numbers, element conversions and guarded strided arrays for the check
 * library.
 *
 * Every array lives between two guard regions, and the whole allocation starts as a sentinel
 * byte; only the described elements are then written (inputs) or poisoned with NaN (outputs).
 * After a call, mfa_check_array_untouched() verifies that nothing outside the described
 * elements changed: neither the guards nor the gaps of padded or transposed layouts.
 *
 * The f16/bf16 conversions here are written independently of the library's src/dtype.h (double
 * arithmetic with frexp/ldexp instead of bit tricks), so a shared mistake is unlikely. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

enum { GUARD_BYTES = 256, SENTINEL = 0xA5 };

/* ---- Random numbers: splitmix64 ------------------------------------------------------------ */
void mfa_check_rng_seed(mfa_check_rng_t *r, uint64_t seed) { r->s = seed; }

uint64_t mfa_check_rng_u64(mfa_check_rng_t *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double mfa_check_rng_uniform(mfa_check_rng_t *r) {
    return (double)(mfa_check_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

double mfa_check_rng_normal(mfa_check_rng_t *r) { /* Box-Muller; u1 in (0, 1] */
    const double u1 = 1.0 - mfa_check_rng_uniform(r), u2 = mfa_check_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

uint64_t mfa_check_hash(const char *s) { /* FNV-1a */
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

uint64_t mfa_check_seed(void) {
    const char *env = getenv("MFA_SEED");
    if (env && *env) return strtoull(env, NULL, 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    mfa_check_rng_t r;
    mfa_check_rng_seed(&r, (uint64_t)ts.tv_sec * 1000000007ull ^ (uint64_t)ts.tv_nsec ^
                               ((uint64_t)getpid() << 32));
    return mfa_check_rng_u64(&r) % 1000000000ull; /* short enough to type back */
}

/* ---- Element types --------------------------------------------------------------------------- */
int32_t mfa_check_mfa_dtype(int32_t check_dtype) {
    return check_dtype == MFA_CHECK_F16    ? MFA_DTYPE_F16
           : check_dtype == MFA_CHECK_BF16 ? MFA_DTYPE_BF16
                                           : MFA_DTYPE_F32;
}

const char *mfa_check_dtype_name(int32_t check_dtype) {
    return check_dtype == MFA_CHECK_F16 ? "f16" : check_dtype == MFA_CHECK_BF16 ? "bf16" : "f32";
}

/* Format parameters: significand bits (with the implicit one), smallest normal exponent,
 * exponent field width. */
static void half_format(int32_t dtype, int *sig, int *emin, int *ebits) {
    if (dtype == MFA_DTYPE_BF16) {
        *sig = 8, *emin = -126, *ebits = 8;
    } else {
        *sig = 11, *emin = -14, *ebits = 5;
    }
}

float mfa_check_half_to_f32(uint16_t h, int32_t dtype) {
    int sig, emin, ebits;
    half_format(dtype, &sig, &emin, &ebits);
    const int mbits = sig - 1, emax_field = (1 << ebits) - 1;
    const int e = (h >> mbits) & emax_field;
    const unsigned m = h & ((1u << mbits) - 1);
    const double s = (h & 0x8000u) ? -1.0 : 1.0;
    if (e == emax_field) return m ? NAN : (float)(s * INFINITY);
    if (e == 0) return (float)(s * ldexp((double)m, emin - mbits));
    return (float)(s * ldexp((double)(m | (1u << mbits)), e - 1 + emin - mbits));
}

uint16_t mfa_check_f32_to_half(float f, int32_t dtype) {
    int sig, emin, ebits;
    half_format(dtype, &sig, &emin, &ebits);
    const int mbits = sig - 1;
    const uint16_t sign = signbit(f) ? 0x8000u : 0;
    const uint16_t inf = (uint16_t)(((1u << ebits) - 1) << mbits);
    if (isnan(f)) return (uint16_t)(inf | (1u << (mbits - 1))); /* quiet NaN */
    double a = fabs((double)f);
    if (isinf(a)) return sign | inf;
    if (a == 0.0) return sign;
    int e;
    frexp(a, &e);    /* a = m * 2^e, m in [0.5, 1): the leading bit has weight 2^(e-1) */
    int q = e - sig; /* weight of the last kept bit */
    if (q < emin - mbits) q = emin - mbits;       /* subnormal spacing */
    const double units = nearbyint(ldexp(a, -q)); /* round to nearest even (default mode) */
    /* encode units * 2^q: carries into the exponent happen naturally */
    double r = ldexp(units, q);
    int re;
    frexp(r, &re);
    const int field = re - 1 - emin + 1; /* biased exponent of r if normal */
    if (field >= (int)((1u << ebits) - 1)) return sign | inf;
    if (field <= 0) return (uint16_t)(sign | (uint16_t)units); /* subnormal: q == emin-mbits */
    const unsigned mant = (unsigned)ldexp(r, mbits - (re - 1)) & ((1u << mbits) - 1);
    return (uint16_t)(sign | (field << mbits) | mant);
}

/* ---- Arrays ------------------------------------------------------------------------------------
 */
static size_t dtype_size(int32_t dtype) {
    return dtype == MFA_DTYPE_F32 ? 4 : dtype == MFA_DTYPE_BOOL ? 1 : 2;
}

void mfa_check_layout_strides(int32_t layout, int transposed, const int64_t n[4], int64_t st[4]) {
    const int64_t S = n[1], H = n[2], D = n[3];
    if (transposed) { /* BHSD with each (b, h) slice stored [dim, seq] */
        st[0] = H * D * S, st[1] = 1, st[2] = D * S, st[3] = S;
    } else if (layout == MFA_CHECK_BHSD) {
        st[0] = H * S * D, st[1] = D, st[2] = S * D, st[3] = 1;
    } else if (layout == MFA_CHECK_STRIDED) { /* gaps after each head, row and batch */
        st[3] = 1, st[2] = D + 8, st[1] = H * (D + 8) + 4, st[0] = S * st[1] + 16;
    } else {
        st[0] = S * H * D, st[1] = H * D, st[2] = D, st[3] = 1;
    }
}

int mfa_check_array_alloc(mfa_check_array_t *a, int32_t dtype, const int64_t n[4],
                          const int64_t stride[4]) {
    memset(a, 0, sizeof *a);
    a->dtype = dtype;
    a->esize = dtype_size(dtype);
    a->extent = 1;
    for (int i = 0; i < 4; i++) {
        a->n[i] = n[i], a->stride[i] = stride[i];
        if (n[i] <= 0) a->extent = 0;
    }
    if (a->extent)
        for (int i = 0; i < 4; i++) a->extent += (n[i] - 1) * stride[i];
    size_t bytes = 2 * GUARD_BYTES + (size_t)a->extent * a->esize;
    bytes = (bytes + 63) & ~(size_t)63;
    a->alloc = aligned_alloc(64, bytes);
    if (!a->alloc) return -1;
    a->bytes = bytes;
    memset(a->alloc, SENTINEL, bytes);
    a->data = a->alloc + GUARD_BYTES;
    return 0;
}

void mfa_check_array_free(mfa_check_array_t *a) {
    free(a->alloc);
    memset(a, 0, sizeof *a);
}

int64_t mfa_check_array_at(const mfa_check_array_t *a, int64_t i0, int64_t i1, int64_t i2,
                           int64_t i3) {
    return i0 * a->stride[0] + i1 * a->stride[1] + i2 * a->stride[2] + i3 * a->stride[3];
}

double mfa_check_array_get(const mfa_check_array_t *a, int64_t at) {
    switch (a->dtype) {
    case MFA_DTYPE_F32:
        return ((const float *)a->data)[at];
    case MFA_DTYPE_BOOL:
        return ((const uint8_t *)a->data)[at];
    default:
        return mfa_check_half_to_f32(((const uint16_t *)a->data)[at], a->dtype);
    }
}

void mfa_check_array_set(mfa_check_array_t *a, int64_t at, double x) {
    switch (a->dtype) {
    case MFA_DTYPE_F32:
        ((float *)a->data)[at] = (float)x;
        break;
    case MFA_DTYPE_BOOL:
        ((uint8_t *)a->data)[at] = x != 0.0;
        break;
    default:
        ((uint16_t *)a->data)[at] = mfa_check_f32_to_half((float)x, a->dtype);
        break;
    }
}

/* Calls fn(a, at, arg) for every described element (aliased ones more than once). */
static void for_each(mfa_check_array_t *a, void (*fn)(mfa_check_array_t *, int64_t, void *),
                     void *arg) {
    for (int64_t i0 = 0; i0 < a->n[0]; i0++)
        for (int64_t i1 = 0; i1 < a->n[1]; i1++)
            for (int64_t i2 = 0; i2 < a->n[2]; i2++)
                for (int64_t i3 = 0; i3 < a->n[3]; i3++)
                    fn(a, mfa_check_array_at(a, i0, i1, i2, i3), arg);
}

static void poison_one(mfa_check_array_t *a, int64_t at, void *arg) {
    (void)arg;
    memset((unsigned char *)a->data + (size_t)at * a->esize, 0xFF, a->esize);
}
void mfa_check_array_poison(mfa_check_array_t *a) { for_each(a, poison_one, NULL); }

typedef struct {
    mfa_check_rng_t *r;
    double std;
    int uniform;
} fill_arg;
static void fill_one(mfa_check_array_t *a, int64_t at, void *arg) {
    const fill_arg *f = arg;
    const double x = f->uniform ? f->std * sqrt(3.0) * (2.0 * mfa_check_rng_uniform(f->r) - 1.0)
                                : f->std * mfa_check_rng_normal(f->r);
    mfa_check_array_set(a, at, x);
}
void mfa_check_array_fill(mfa_check_array_t *a, mfa_check_rng_t *r, double std, int uniform) {
    fill_arg f = {r, std, uniform};
    for_each(a, fill_one, &f);
}

static void square_one(mfa_check_array_t *a, int64_t at, void *arg) {
    const double x = mfa_check_array_get(a, at);
    ((double *)arg)[0] += x * x, ((double *)arg)[1] += 1;
}
double mfa_check_array_rms(const mfa_check_array_t *a) {
    double acc[2] = {0, 0};
    for_each((mfa_check_array_t *)a, square_one, acc);
    return acc[1] > 0 ? sqrt(acc[0] / acc[1]) : 0.0;
}

static void mark_one(mfa_check_array_t *a, int64_t at, void *arg) {
    (void)a;
    ((unsigned char *)arg)[at] = 1;
}

int mfa_check_array_untouched(const mfa_check_array_t *a, const char *name, char *msg,
                              size_t size) {
    unsigned char *described = calloc((size_t)a->extent + 1, 1);
    if (!described) {
        snprintf(msg, size, "%s: out of memory while checking padding", name);
        return -1;
    }
    for_each((mfa_check_array_t *)a, mark_one, described);
    const size_t body = (size_t)a->extent * a->esize;
    int rc = 0;
    for (size_t i = 0; i < a->bytes; i++) {
        if (i >= GUARD_BYTES && i < GUARD_BYTES + body && described[(i - GUARD_BYTES) / a->esize])
            continue;
        if (a->alloc[i] == SENTINEL) continue;
        if (i < GUARD_BYTES)
            snprintf(msg, size, "%s: overwrote the byte %zu bytes before its first element", name,
                     GUARD_BYTES - i);
        else if (i >= GUARD_BYTES + body)
            snprintf(msg, size, "%s: overwrote the byte %zu bytes past its last element", name,
                     i - GUARD_BYTES - body + 1);
        else
            snprintf(msg, size, "%s: overwrote padding at element offset %zu (between rows/heads)",
                     name, (i - GUARD_BYTES) / a->esize);
        rc = -1;
        break;
    }
    free(described);
    return rc;
}
