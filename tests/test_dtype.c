/* test_dtype.c — the f16 / bf16 conversions of src/dtype.h against independent computations.
 *
 * References: a slow decoder and a slow round-to-nearest-even encoder written with
 * frexp/ldexp/nearbyint in double precision (exact for these formats), and, where the compiler
 * has it, the compiler's own _Float16 conversions as a second opinion. Checked:
 *   - decode of all 65536 f16 and bf16 bit patterns (NaN stays NaN, signs of zero kept);
 *   - round trip of all 65536 patterns through f32 (NaN stays NaN);
 *   - ties: the midpoint between every pair of neighbouring values rounds to the even one, and
 *     the f32 values just below / above it round down / up (this covers the subnormal range and
 *     the subnormal-to-normal step);
 *   - overflow: the midpoint above the largest finite value and everything beyond give inf;
 *   - specials: +-0, +-inf, quiet and signalling NaNs with any payload;
 *   - a sweep of about a million f32 bit patterns over the whole range, including f32
 *     subnormals;
 *   - mfa_load / mfa_store for every dtype. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dtype.h"

static int failures;

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond) && ++failures <= 20) {                                                         \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

typedef struct format {
    const char *name;
    int sig, emin, ebits; /* significand bits incl. the implicit one, min normal exponent */
    float (*decode)(uint16_t);
    uint16_t (*encode)(float);
} format_t;

static const format_t formats[] = {
    {"f16", 11, -14, 5, mfa_f16_to_f32, mfa_f32_to_f16},
    {"bf16", 8, -126, 8, mfa_bf16_to_f32, mfa_f32_to_bf16},
};

/* ---- Slow references ---------------------------------------------------------------------- */
static double ref_decode(const format_t *f, uint16_t h) {
    const int mbits = f->sig - 1, emax_field = (1 << f->ebits) - 1;
    const int e = (h >> mbits) & emax_field;
    const int m = h & ((1 << mbits) - 1);
    const double s = (h >> 15) ? -1.0 : 1.0;
    if (e == emax_field) return m ? NAN : s * INFINITY;
    if (e == 0) return s * ldexp(m, f->emin - mbits);
    return s * ldexp(m + (1 << mbits), e - 1 + f->emin - mbits);
}

static double ref_max(const format_t *f) {
    const int emax = -f->emin + 1; /* bias */
    return ldexp(2.0 - ldexp(1.0, 1 - f->sig), emax);
}

/* The value x rounds to (round to nearest, ties to even), as a double; +-inf on overflow. */
static double ref_round(const format_t *f, double x) {
    if (isnan(x) || isinf(x) || x == 0.0) return x;
    const double a = fabs(x);
    int e;
    frexp(a, &e);
    int q = e - f->sig;
    if (q < f->emin - (f->sig - 1)) q = f->emin - (f->sig - 1);
    double r = ldexp(nearbyint(ldexp(a, -q)), q);
    if (r > ref_max(f)) r = INFINITY;
    return x < 0 ? -r : r;
}

static int same_value(double a, double b) { /* NaN == NaN; the sign of zero counts */
    if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
    return a == b && signbit(a) == signbit(b);
}

/* ---- Tests ---------------------------------------------------------------------------------- */
static void test_decode_and_round_trip(const format_t *f) {
    for (uint32_t u = 0; u < 65536; u++) {
        const uint16_t h = (uint16_t)u;
        const double want = ref_decode(f, h);
        const float got = f->decode(h);
        EXPECT(same_value(got, want), "%s decode 0x%04x = %.9g, want %.9g", f->name, u, got, want);
        const uint16_t back = f->encode(got);
        if (isnan(want))
            EXPECT(isnan(ref_decode(f, back)), "%s NaN 0x%04x came back as 0x%04x", f->name, u,
                   back);
        else
            EXPECT(back == h, "%s round trip 0x%04x -> %.9g -> 0x%04x", f->name, u, got, back);
    }
}

static void expect_encode(const format_t *f, float x) {
    const double want = ref_round(f, x), got = ref_decode(f, f->encode(x));
    EXPECT(same_value(got, want), "%s encode %.10g (0x%08x) = %.10g, want %.10g", f->name, x,
           mfa_f32_to_bits(x), got, want);
}

/* Every midpoint between neighbouring positive values (and the one above the maximum), with
 * its f32 neighbours, both signs. */
static void test_ties(const format_t *f) {
    const uint16_t inf_bits = (uint16_t)(((1u << f->ebits) - 1) << (f->sig - 1));
    for (uint16_t h = 0; h < inf_bits; h++) {
        const double lo = ref_decode(f, h);
        const double hi = h + 1 == inf_bits ? ldexp(1.0, -f->emin + 2) : ref_decode(f, h + 1);
        const float mid = (float)((lo + hi) / 2); /* exact: needs sig + 1 bits */
        for (int s = 0; s < 2; s++) {
            const float m = s ? -mid : mid;
            expect_encode(f, m);
            expect_encode(f, nextafterf(m, 0.0f));
            expect_encode(f, nextafterf(m, s ? -INFINITY : INFINITY));
            const uint16_t even = (h & 1) ? (uint16_t)(h + 1) : h;
            EXPECT(f->encode(mid) == even, "%s tie %.10g -> 0x%04x, want even 0x%04x", f->name, mid,
                   f->encode(mid), even);
        }
    }
}

static void test_specials(const format_t *f) {
    const uint16_t inf_bits = (uint16_t)(((1u << f->ebits) - 1) << (f->sig - 1));
    EXPECT(f->encode(0.0f) == 0, "%s +0", f->name);
    EXPECT(f->encode(-0.0f) == 0x8000, "%s -0 keeps its sign", f->name);
    EXPECT(f->encode(INFINITY) == inf_bits, "%s +inf", f->name);
    EXPECT(f->encode(-INFINITY) == (0x8000 | inf_bits), "%s -inf", f->name);
    EXPECT(f->encode(3.4e38f) == inf_bits, "%s 3.4e38 overflows to inf", f->name);
    EXPECT(f->encode(mfa_bits_to_f32(0x7f7fffffu)) == inf_bits, "%s FLT_MAX overflows", f->name);
    const uint32_t nans[] = {0x7fc00000u, 0x7f800001u, 0x7fa00000u,
                             0xffc00001u, 0x7fffffffu, 0xff800100u};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        const uint16_t h = f->encode(mfa_bits_to_f32(nans[i]));
        EXPECT(isnan(ref_decode(f, h)), "%s NaN 0x%08x -> 0x%04x is not NaN", f->name, nans[i], h);
    }
}

static void test_sweep(const format_t *f) {
    for (uint64_t u = 0; u < 0x100000000ull; u += 4099)
        expect_encode(f, mfa_bits_to_f32((uint32_t)u));
    for (uint32_t u = 0; u < 70000; u++) { /* f32 subnormals and the smallest normals */
        expect_encode(f, mfa_bits_to_f32(u * 1237u));
        expect_encode(f, mfa_bits_to_f32(0x00800000u - u));
    }
}

#if defined(__FLT16_MAX__)
/* The compiler's _Float16 as a second opinion on the f16 conversions. */
static void test_against_compiler_f16(void) {
    for (uint32_t u = 0; u < 65536; u++) {
        _Float16 h;
        const uint16_t bits = (uint16_t)u;
        memcpy(&h, &bits, 2);
        EXPECT(same_value((float)h, mfa_f16_to_f32(bits)), "f16 0x%04x vs _Float16", u);
    }
    for (uint64_t u = 0; u < 0x100000000ull; u += 65521) {
        const float x = mfa_bits_to_f32((uint32_t)u);
        const _Float16 h = (_Float16)x;
        uint16_t bits;
        memcpy(&bits, &h, 2);
        const uint16_t ours = mfa_f32_to_f16(x);
        EXPECT(isnan(x) ? (ours & 0x7fff) > 0x7c00 : ours == bits,
               "f16 encode 0x%08x: 0x%04x, _Float16 gives 0x%04x", (uint32_t)u, ours, bits);
    }
}
#endif

static void test_load_store(void) {
    const int32_t dtypes[] = {MFA_DTYPE_F32, MFA_DTYPE_F16, MFA_DTYPE_BF16, MFA_DTYPE_BOOL};
    const float values[] = {0.0f, 1.0f, -2.5f, 0.333333f, 1000.0f};
    unsigned char buf[4 * 8];
    for (int d = 0; d < 4; d++) {
        memset(buf, 0xA5, sizeof buf);
        for (int i = 0; i < 5; i++) mfa_store(buf, dtypes[d], i, values[i]);
        EXPECT(mfa_dtype_size(dtypes[d]) * 5 <= sizeof buf, "size");
        for (int i = 0; i < 5; i++) {
            const float x = mfa_load(buf, dtypes[d], i);
            float want = values[i];
            if (dtypes[d] == MFA_DTYPE_F16) want = (float)ref_round(&formats[0], want);
            if (dtypes[d] == MFA_DTYPE_BF16) want = (float)ref_round(&formats[1], want);
            if (dtypes[d] == MFA_DTYPE_BOOL) want = values[i] != 0.0f;
            EXPECT(x == want, "%s store/load %g gave %g", mfa_dtype_name(dtypes[d]), values[i], x);
        }
        /* the element after the last stored one is untouched */
        EXPECT(buf[5 * mfa_dtype_size(dtypes[d])] == 0xA5, "%s store wrote past its element",
               mfa_dtype_name(dtypes[d]));
    }
}

int main(void) {
    for (int i = 0; i < 2; i++) {
        test_decode_and_round_trip(&formats[i]);
        test_ties(&formats[i]);
        test_specials(&formats[i]);
        test_sweep(&formats[i]);
    }
#if defined(__FLT16_MAX__)
    test_against_compiler_f16();
    printf("f16 also checked against the compiler's _Float16\n");
#endif
    test_load_store();
    printf("test_dtype: %s (%d failures)\n", failures ? "FAIL" : "PASS", failures);
    return failures ? 1 : 0;
}
