//! `Error`: a status code of `mfa_error_t` and the detailed message the library stored for it.

use std::ffi::CStr;
use std::fmt;

use mfa_sys as sys;

/// The status codes of `mfa.h`. Codes this version does not know arrive as `Other`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    InvalidArgs,
    MemoryAllocation,
    DeviceNotSupported,
    KernelCompilation,
    ExecutionFailed,
    NullPointer,
    Unsupported,
    OutOfBounds,
    WrongContext,
    Other(i32),
}

impl ErrorCode {
    /// The code for a nonzero `mfa_error_t`.
    pub fn from_raw(code: sys::mfa_error_t) -> Self {
        match code {
            sys::MFA_ERROR_INVALID_ARGS => Self::InvalidArgs,
            sys::MFA_ERROR_MEMORY_ALLOCATION => Self::MemoryAllocation,
            sys::MFA_ERROR_DEVICE_NOT_SUPPORTED => Self::DeviceNotSupported,
            sys::MFA_ERROR_KERNEL_COMPILATION => Self::KernelCompilation,
            sys::MFA_ERROR_EXECUTION_FAILED => Self::ExecutionFailed,
            sys::MFA_ERROR_NULL_POINTER => Self::NullPointer,
            sys::MFA_ERROR_UNSUPPORTED => Self::Unsupported,
            sys::MFA_ERROR_OUT_OF_BOUNDS => Self::OutOfBounds,
            sys::MFA_ERROR_WRONG_CONTEXT => Self::WrongContext,
            other => Self::Other(other),
        }
    }

    /// The `mfa_error_t` value.
    pub fn raw(self) -> sys::mfa_error_t {
        match self {
            Self::InvalidArgs => sys::MFA_ERROR_INVALID_ARGS,
            Self::MemoryAllocation => sys::MFA_ERROR_MEMORY_ALLOCATION,
            Self::DeviceNotSupported => sys::MFA_ERROR_DEVICE_NOT_SUPPORTED,
            Self::KernelCompilation => sys::MFA_ERROR_KERNEL_COMPILATION,
            Self::ExecutionFailed => sys::MFA_ERROR_EXECUTION_FAILED,
            Self::NullPointer => sys::MFA_ERROR_NULL_POINTER,
            Self::Unsupported => sys::MFA_ERROR_UNSUPPORTED,
            Self::OutOfBounds => sys::MFA_ERROR_OUT_OF_BOUNDS,
            Self::WrongContext => sys::MFA_ERROR_WRONG_CONTEXT,
            Self::Other(code) => code,
        }
    }

    /// The library's short text for the code (`mfa_error_string`): "invalid argument", ...
    pub fn as_str(self) -> &'static str {
        // SAFETY: mfa_error_string returns a static NUL-terminated string for every value.
        unsafe { CStr::from_ptr(sys::mfa_error_string(self.raw())) }.to_str().unwrap_or("unknown error")
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed call: the code and the message naming the argument and its value, as the library
/// wrote it (`mfa_last_error_message`), e.g. `heads_q=12 is not a multiple of heads_kv=5`.
/// Checks this wrapper makes itself (slice lengths the C side cannot see, read-only views used as
/// outputs) produce the same kind of value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: ErrorCode,
    message: String,
}

impl Error {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
    }

    /// An error for status `code`, with the message the library stored on `context` (or, for a
    /// null context, the message of this thread's last failed context creation).
    pub(crate) fn from_context(code: sys::mfa_error_t, context: sys::mfa_context_t) -> Self {
        // SAFETY: the message is a NUL-terminated string valid until the next call on the
        // context; it is copied at once.
        let text = unsafe { CStr::from_ptr(sys::mfa_last_error_message(context)) };
        Error::new(ErrorCode::from_raw(code), text.to_string_lossy().into_owned())
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

/// `Result<T, mfa::Error>`.
pub type Result<T> = std::result::Result<T, Error>;

/// `Ok(())` for MFA_SUCCESS, else the error with the context's message.
pub(crate) fn check(code: sys::mfa_error_t, context: sys::mfa_context_t) -> Result<()> {
    if code == sys::MFA_SUCCESS {
        Ok(())
    } else {
        Err(Error::from_context(code, context))
    }
}
