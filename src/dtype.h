/* dtype.h — element loads and stores for f32 / f16 / bf16 (and the bool mask byte).
 *
 * Portable C: the f16 and bf16 conversions are done with integer arithmetic (round to nearest
 * even on the way out), so every backend and the reference read the same values from the same
 * bits. SIMD backends may convert with F16C / AVX512-BF16 instead; those are exact too. */
#ifndef MFA_DTYPE_H
#define MFA_DTYPE_H

#include <stdint.h>
#include <string.h>

#include "mfa.h"

static inline size_t mfa_dtype_size(int32_t dtype) {
    switch (dtype) {
    case MFA_DTYPE_F32: return 4;
    case MFA_DTYPE_F16:
    case MFA_DTYPE_BF16: return 2;
    case MFA_DTYPE_BOOL: return 1;
    default: return 0;
    }
}

static inline const char *mfa_dtype_name(int32_t dtype) {
    switch (dtype) {
    case MFA_DTYPE_F32: return "f32";
    case MFA_DTYPE_F16: return "f16";
    case MFA_DTYPE_BF16: return "bf16";
    case MFA_DTYPE_BOOL: return "bool";
    default: return "?";
    }
}

static inline float mfa_bits_to_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline uint32_t mfa_f32_to_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float mfa_bf16_to_f32(uint16_t h) { return mfa_bits_to_f32((uint32_t)h << 16); }

static inline uint16_t mfa_f32_to_bf16(float f) {
    uint32_t u = mfa_f32_to_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(u >> 16);
}

static inline float mfa_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return mfa_bits_to_f32(sign | 0x7f800000u | (man << 13)); /* inf / NaN */
    if (exp == 0) { /* zero or subnormal: man * 2^-24 */
        float f = (float)man * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    return mfa_bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

static inline uint16_t mfa_f32_to_f16(float f) {
    uint32_t u = mfa_f32_to_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);   /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  /* rounds to >= 65520: inf */
    if (a < 0x38800000u) {                                    /* below 2^-14: subnormal or 0 */
        /* value * 2^24 rounded to nearest even gives the subnormal mantissa */
        float scaled = mfa_bits_to_f32(a) * 16777216.0f;
        uint32_t m = (uint32_t)scaled;
        float rest = scaled - (float)m;
        if (rest > 0.5f || (rest == 0.5f && (m & 1u))) m++;
        return (uint16_t)(sign | m);
    }
    a += 0xfffu + ((a >> 13) & 1u); /* round mantissa to 10 bits, nearest even */
    return (uint16_t)(sign | ((a - 0x38000000u) >> 13));
}

/* Element `index` of an array of `dtype` at base, as float. */
static inline float mfa_load(const void *base, int32_t dtype, int64_t index) {
    switch (dtype) {
    case MFA_DTYPE_F32: return ((const float *)base)[index];
    case MFA_DTYPE_F16: return mfa_f16_to_f32(((const uint16_t *)base)[index]);
    case MFA_DTYPE_BF16: return mfa_bf16_to_f32(((const uint16_t *)base)[index]);
    default: return ((const uint8_t *)base)[index] ? 1.0f : 0.0f;
    }
}

static inline void mfa_store(void *base, int32_t dtype, int64_t index, float x) {
    switch (dtype) {
    case MFA_DTYPE_F32: ((float *)base)[index] = x; break;
    case MFA_DTYPE_F16: ((uint16_t *)base)[index] = mfa_f32_to_f16(x); break;
    case MFA_DTYPE_BF16: ((uint16_t *)base)[index] = mfa_f32_to_bf16(x); break;
    default: ((uint8_t *)base)[index] = x != 0.0f; break;
    }
}

#endif
