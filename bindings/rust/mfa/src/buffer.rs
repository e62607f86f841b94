//! `Buffer`: the seed API's `mfa_buffer_t`, memory the library allocated for a context or caller
//! memory it wraps. A buffer borrows its context (the context frees what it still owns when it is
//! destroyed, so a buffer may not outlive it) and, when wrapping, the caller's slice.

use std::marker::PhantomData;
use std::ptr::NonNull;

use mfa_sys as sys;

use crate::context::Context;
use crate::dtype::PlainElement;
use crate::error::{check, Error, ErrorCode, Result};

/// An mfa buffer of `context`, freed on drop.
#[derive(Debug)]
pub struct Buffer<'a> {
    raw: NonNull<std::os::raw::c_void>,
    len: usize,
    host: bool,
    context: &'a Context,
    _data: PhantomData<&'a mut [u8]>,
}

impl<'a> Buffer<'a> {
    pub(crate) fn from_parts(raw: sys::mfa_buffer_t, len: usize, host: bool, context: &'a Context) -> Self {
        Buffer { raw: NonNull::new(raw).expect("the library returned a buffer"), len, host, context, _data: PhantomData }
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn context(&self) -> &'a Context {
        self.context
    }

    pub fn as_raw(&self) -> sys::mfa_buffer_t {
        self.raw.as_ptr()
    }

    /// The memory (`mfa_buffer_contents`): host memory on the cpu and reference backends, a
    /// device pointer on a CUDA context.
    pub fn contents_ptr(&self) -> *mut std::os::raw::c_void {
        // SAFETY: a live buffer handle.
        unsafe { sys::mfa_buffer_contents(self.raw.as_ptr()) }
    }

    fn host_view<T: PlainElement>(&self) -> Result<(*mut T, usize)> {
        if !self.host {
            return Err(Error::new(
                ErrorCode::InvalidArgs,
                format!("buffer contents are {} memory, not readable from the host", self.context.backend_name()),
            ));
        }
        let ptr = self.contents_ptr() as *mut T;
        let size = std::mem::size_of::<T>();
        if ptr.is_null() || (ptr as usize) % std::mem::align_of::<T>() != 0 {
            return Err(Error::new(ErrorCode::InvalidArgs, "buffer contents are not aligned for this element type"));
        }
        Ok((ptr, self.len / size))
    }

    /// The contents as elements (host backends only; a trailing partial element is left out).
    pub fn as_slice<T: PlainElement>(&self) -> Result<&[T]> {
        let (ptr, n) = self.host_view::<T>()?;
        // SAFETY: host memory of len bytes, aligned, owned or exclusively borrowed by this buffer;
        // the shared borrow of self keeps writers away.
        Ok(unsafe { std::slice::from_raw_parts(ptr, n) })
    }

    /// The contents as mutable elements (host backends only).
    pub fn as_mut_slice<T: PlainElement>(&mut self) -> Result<&mut [T]> {
        let (ptr, n) = self.host_view::<T>()?;
        // SAFETY: as in as_slice, with the exclusive borrow of self.
        Ok(unsafe { std::slice::from_raw_parts_mut(ptr, n) })
    }
}

impl Buffer<'_> {
    /// `mfa_buffer_copy_from_host`: copies `src` into the buffer from byte `offset` on (a device
    /// upload on a CUDA context, ordered after the work already enqueued; returns when done).
    pub fn copy_from_host<T: PlainElement>(&mut self, offset: usize, src: &[T]) -> Result<()> {
        // SAFETY: a live buffer; src is readable for its length; the library checks the range.
        let code = unsafe {
            sys::mfa_buffer_copy_from_host(self.as_raw(), offset, src.as_ptr().cast(), std::mem::size_of_val(src))
        };
        check(code, self.context.as_raw())
    }

    /// `mfa_buffer_copy_to_host`: fills `dst` from the buffer's bytes at `offset` (a device
    /// download on a CUDA context, after the work already enqueued; returns when done).
    pub fn copy_to_host<T: PlainElement>(&self, offset: usize, dst: &mut [T]) -> Result<()> {
        // SAFETY: a live buffer; dst is writable for its length and every bit pattern is a valid
        // T (PlainElement); the library checks the range.
        let code = unsafe {
            sys::mfa_buffer_copy_to_host(self.as_raw(), offset, dst.as_mut_ptr().cast(), std::mem::size_of_val(dst))
        };
        check(code, self.context.as_raw())
    }
}

impl Drop for Buffer<'_> {
    fn drop(&mut self) {
        // SAFETY: the buffer is live: its context outlives it ('a), and nothing else frees it.
        unsafe { sys::mfa_destroy_buffer(self.raw.as_ptr()) }
    }
}
