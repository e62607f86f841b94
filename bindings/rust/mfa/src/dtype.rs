//! Element types: `DType` (the header's MFA_DTYPE_*), the 16-bit float storage types `F16` and
//! `BF16`, and the `Element` trait that ties a Rust type to its dtype.
//!
//! `F16` and `BF16` are storage only: bit patterns with exact conversions to and from `f32`
//! (round to nearest even, as the library rounds its own outputs). Arithmetic is not their job.

use mfa_sys as sys;

/// Element type of a tensor (`MFA_DTYPE_*`); the seed's precision values are the same numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum DType {
    F16 = sys::MFA_DTYPE_F16,
    BF16 = sys::MFA_DTYPE_BF16,
    F32 = sys::MFA_DTYPE_F32,
    /// One byte per element, nonzero = keep; only for the dense attention mask.
    Bool = sys::MFA_DTYPE_BOOL,
}

impl DType {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::F16 | DType::BF16 => 2,
            DType::F32 => 4,
            DType::Bool => 1,
        }
    }
}

/// Precision argument of the seed-compatible [`crate::Context::attention_forward`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i32)]
pub enum Precision {
    FP16 = sys::MFA_PRECISION_FP16,
    BF16 = sys::MFA_PRECISION_BF16,
    FP32 = sys::MFA_PRECISION_FP32,
}

/// IEEE 754 binary16, stored as its bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct F16(pub u16);

/// bfloat16 (the upper half of an f32), stored as its bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(transparent)]
pub struct BF16(pub u16);

impl F16 {
    /// Rounds to the nearest binary16 (ties to even); overflow gives infinity, NaN stays NaN.
    pub fn from_f32(x: f32) -> F16 {
        let bits = x.to_bits();
        let sign = ((bits >> 16) & 0x8000) as u16;
        let exp = ((bits >> 23) & 0xff) as i32;
        let man = bits & 0x7f_ffff;
        if exp == 0xff {
            let nan = if man != 0 { 0x200 | (man >> 13) as u16 } else { 0 };
            return F16(sign | 0x7c00 | nan);
        }
        let e = exp - 127 + 15; // binary16 biased exponent
        if e >= 0x1f {
            return F16(sign | 0x7c00);
        }
        // Keep `keep` bits of the 24-bit significand (normal) or shift into a subnormal.
        let (mut r, rem, half) = if e <= 0 {
            if e < -10 {
                return F16(sign); // below half the smallest subnormal
            }
            let m = man | 0x80_0000;
            let shift = (14 - e) as u32; // value = m >> shift units of 2^-24
            (m >> shift, m & ((1 << shift) - 1), 1u32 << (shift - 1))
        } else {
            (((e as u32) << 10) | (man >> 13), man & 0x1fff, 0x1000)
        };
        if rem > half || (rem == half && r & 1 == 1) {
            r += 1; // a carry into the exponent is the correct rounding (up to infinity)
        }
        F16(sign | r as u16)
    }

    /// The exact f32 value.
    pub fn to_f32(self) -> f32 {
        let h = self.0 as u32;
        let sign = (h & 0x8000) << 16;
        let exp = (h >> 10) & 0x1f;
        let man = h & 0x3ff;
        match exp {
            0 => {
                let magnitude = man as f32 * (1.0 / 16_777_216.0); // man * 2^-24, exact
                f32::from_bits(sign | magnitude.to_bits())
            }
            0x1f => f32::from_bits(sign | 0x7f80_0000 | (man << 13)),
            _ => f32::from_bits(sign | ((exp + 112) << 23) | (man << 13)),
        }
    }
}

impl BF16 {
    /// Rounds to the nearest bfloat16 (ties to even); NaN stays a (quiet) NaN.
    pub fn from_f32(x: f32) -> BF16 {
        let bits = x.to_bits();
        if x.is_nan() {
            return BF16(((bits >> 16) | 0x40) as u16);
        }
        let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1));
        BF16((rounded >> 16) as u16)
    }

    /// The exact f32 value.
    pub fn to_f32(self) -> f32 {
        f32::from_bits((self.0 as u32) << 16)
    }
}

impl From<f32> for F16 {
    fn from(x: f32) -> Self {
        F16::from_f32(x)
    }
}
impl From<F16> for f32 {
    fn from(x: F16) -> Self {
        x.to_f32()
    }
}
impl From<f32> for BF16 {
    fn from(x: f32) -> Self {
        BF16::from_f32(x)
    }
}
impl From<BF16> for f32 {
    fn from(x: BF16) -> Self {
        x.to_f32()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A Rust type whose memory layout is one of the library's element types. Implemented for
/// `f32`, [`F16`], [`BF16`], and for `bool` and `u8` as [`DType::Bool`] (dense masks).
pub trait Element: Copy + sealed::Sealed + 'static {
    const DTYPE: DType;
}

/// An [`Element`] for which every bit pattern is a valid value (all but `bool`): the types the
/// library may write into, and that raw buffer contents may be viewed as.
pub trait PlainElement: Element {}

macro_rules! element {
    ($($ty:ty => $dtype:ident),*) => {$(
        impl sealed::Sealed for $ty {}
        impl Element for $ty {
            const DTYPE: DType = DType::$dtype;
        }
    )*};
}
element!(f32 => F32, F16 => F16, BF16 => BF16, bool => Bool, u8 => Bool);
impl PlainElement for f32 {}
impl PlainElement for F16 {}
impl PlainElement for BF16 {}
impl PlainElement for u8 {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_round_trips_and_rounds_to_nearest_even() {
        for bits in 0..=u16::MAX {
            let h = F16(bits);
            let x = h.to_f32();
            if x.is_nan() {
                assert!(F16::from_f32(x).to_f32().is_nan());
            } else {
                assert_eq!(F16::from_f32(x), h, "bits {bits:#06x}");
            }
        }
        assert_eq!(F16::from_f32(1.0).0, 0x3c00);
        assert_eq!(F16::from_f32(65520.0).0, 0x7c00); // rounds up to infinity
        assert_eq!(F16::from_f32(1.0 + 1.0 / 2048.0).0, 0x3c00); // tie to even
        assert_eq!(F16::from_f32(1.0 + 3.0 / 2048.0).0, 0x3c02);
        assert_eq!(F16::from_f32(2f32.powi(-25)).0, 0); // tie to even zero
        assert_eq!(F16::from_f32(2f32.powi(-25) * 1.5).0, 1);
        assert_eq!(F16::from_f32(-0.0).0, 0x8000);
    }

    #[test]
    fn bf16_round_trips_and_rounds_to_nearest_even() {
        for bits in 0..=u16::MAX {
            let b = BF16(bits);
            let x = b.to_f32();
            if !x.is_nan() {
                assert_eq!(BF16::from_f32(x), b);
            }
        }
        assert_eq!(BF16::from_f32(1.0 + 1.0 / 256.0).0, 0x3f80); // tie to even
        assert_eq!(BF16::from_f32(1.0 + 3.0 / 256.0).0, 0x3f82);
        assert!(BF16::from_f32(f32::NAN).to_f32().is_nan());
    }
}
