//! Safe Rust over libmfa: exact (FlashAttention-style) attention through its C ABI.
//!
//! ```no_run
//! use mfa::{Align, Backend, Context, Params, Tensor};
//! # fn main() -> mfa::Result<()> {
//! let (batch, seq, heads_q, heads_kv, dim) = (2, 128, 8, 2, 64);
//! let q = vec![0.1f32; batch * seq * heads_q * dim];
//! let kv = vec![0.2f32; batch * seq * heads_kv * dim];
//! let mut o = vec![0f32; q.len()];
//! let ctx = Context::with_backend(Backend::Cpu, 0)?;
//! let (s, hq, hkv, d) = (seq as i64, heads_q as i64, heads_kv as i64, dim as i64);
//! let mut p = Params::new()
//!     .batch(batch as i64).seqlen(s, s).heads(hq, hkv).head_dim(d)
//!     .q(Tensor::contiguous(&q, s, hq, d))
//!     .k(Tensor::contiguous(&kv, s, hkv, d))
//!     .v(Tensor::contiguous(&kv, s, hkv, d))
//!     .o(Tensor::contiguous_mut(&mut o, s, hq, d))
//!     .causal(Align::TopLeft);
//! ctx.forward(&mut p)?;
//! # Ok(()) }
//! ```
//!
//! What the wrapper adds to the C API: ownership (a [`Context`] is destroyed on drop, a
//! [`Buffer`] cannot outlive its context), views over slices whose bounds the library checks,
//! [`F16`]/[`BF16`] storage types, a builder over the params struct, and [`Error`] values that
//! carry the library's message. Every computation is the library's; see `include/mfa.h` for what
//! each field means and `docs/bindings.md` for building and device pointers.

mod buffer;
mod context;
mod dtype;
mod error;
mod params;
mod tensor;

pub use buffer::Buffer;
pub use context::{Backend, Context, Options, SeedForward};
pub use dtype::{DType, Element, PlainElement, Precision, BF16, F16};
pub use error::{Error, ErrorCode, Result};
pub use params::{Align, Direction, Params};
pub use tensor::{strides_bhsd, strides_bshd, Tensor};

/// The raw C declarations (the `mfa-sys` crate).
pub use mfa_sys as sys;

/// Version of the loaded library, (major, minor, patch).
pub fn version() -> (i32, i32, i32) {
    let (mut major, mut minor, mut patch) = (0, 0, 0);
    // SAFETY: three valid out-pointers.
    unsafe { sys::mfa_get_version(&mut major, &mut minor, &mut patch) };
    (major, minor, patch)
}

/// True when at least one backend can run here (the cpu backend always can).
pub fn is_device_supported() -> bool {
    // SAFETY: no arguments.
    unsafe { sys::mfa_is_device_supported() }
}
