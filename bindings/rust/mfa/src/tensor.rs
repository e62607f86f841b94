//! `Tensor`: a view the library reads or writes — memory, an element type and element strides in
//! the header's fixed index order `[batch, seq, head, dim]` (`[batch, head, q, kv]` for the dense
//! mask). A view does not know its extent: the params decide it, and the library checks every
//! element the call reaches against the memory the view holds (see `Context::forward`).

use std::marker::PhantomData;
use std::os::raw::c_void;
use std::ptr;

use mfa_sys as sys;

use crate::buffer::Buffer;
use crate::dtype::{DType, Element, PlainElement};

/// Where a view's elements are.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Memory {
    /// A Rust slice: `bytes` long, wrapped as an mfa buffer for the call so the library
    /// bounds-checks every element against it.
    Slice { ptr: *mut c_void, bytes: usize },
    /// An mfa buffer of the same context, from `byte_offset` on (bounds-checked by the library).
    Buffer { handle: sys::mfa_buffer_t, byte_offset: u64 },
    /// A raw pointer (device memory on a CUDA context): not checked by anyone.
    Raw(*mut c_void),
}

/// A read-only or writable view of elements, borrowed for `'a`.
#[derive(Debug)]
pub struct Tensor<'a> {
    pub(crate) memory: Memory,
    pub(crate) dtype: DType,
    pub(crate) stride: [i64; 4],
    pub(crate) writable: bool,
    _borrow: PhantomData<&'a mut [u8]>,
}

/// Element strides of a contiguous `[batch, seq, heads, dim]` tensor (BSHD, the default layout).
pub fn strides_bshd(seq: i64, heads: i64, dim: i64) -> [i64; 4] {
    [seq * heads * dim, heads * dim, dim, 1]
}

/// Element strides, in `[batch, seq, head, dim]` order, of a contiguous `[batch, heads, seq, dim]`
/// tensor (BHSD, the seed's layout and PyTorch's default).
pub fn strides_bhsd(heads: i64, seq: i64, dim: i64) -> [i64; 4] {
    [heads * seq * dim, dim, seq * dim, 1]
}

impl<'a> Tensor<'a> {
    fn new_view(memory: Memory, dtype: DType, stride: [i64; 4], writable: bool) -> Self {
        Tensor { memory, dtype, stride, writable, _borrow: PhantomData }
    }

    /// A read-only view of `data` with element strides `stride` (`[batch, seq, head, dim]`).
    pub fn new<T: Element>(data: &'a [T], stride: [i64; 4]) -> Self {
        let memory = Memory::Slice { ptr: data.as_ptr() as *mut c_void, bytes: std::mem::size_of_val(data) };
        Self::new_view(memory, T::DTYPE, stride, false)
    }

    /// A writable view of `data` (an output: o, dq, dk, dv).
    pub fn new_mut<T: PlainElement>(data: &'a mut [T], stride: [i64; 4]) -> Self {
        let memory = Memory::Slice { ptr: data.as_mut_ptr() as *mut c_void, bytes: std::mem::size_of_val(data) };
        Self::new_view(memory, T::DTYPE, stride, true)
    }

    /// A read-only view of a contiguous `[batch, seq, heads, dim]` tensor.
    pub fn contiguous<T: Element>(data: &'a [T], seq: i64, heads: i64, dim: i64) -> Self {
        Self::new(data, strides_bshd(seq, heads, dim))
    }

    /// A writable view of a contiguous `[batch, seq, heads, dim]` tensor.
    pub fn contiguous_mut<T: PlainElement>(data: &'a mut [T], seq: i64, heads: i64, dim: i64) -> Self {
        Self::new_mut(data, strides_bshd(seq, heads, dim))
    }

    /// A read-only view into an mfa buffer, starting `byte_offset` bytes in. The buffer must
    /// belong to the context the view is used with (else `ErrorCode::WrongContext`).
    pub fn from_buffer(buffer: &'a Buffer<'_>, dtype: DType, byte_offset: u64, stride: [i64; 4]) -> Self {
        Self::new_view(Memory::Buffer { handle: buffer.as_raw(), byte_offset }, dtype, stride, false)
    }

    /// A writable view into an mfa buffer.
    pub fn from_buffer_mut(buffer: &'a mut Buffer<'_>, dtype: DType, byte_offset: u64, stride: [i64; 4]) -> Self {
        Self::new_view(Memory::Buffer { handle: buffer.as_raw(), byte_offset }, dtype, stride, true)
    }

    /// A writable view of raw memory: on a CUDA context a device pointer (or mapped host memory),
    /// on the cpu and reference contexts host memory.
    ///
    /// # Safety
    /// Every element the call reaches through `stride` must be valid for reads (and for writes if
    /// the view is an output) of `dtype` for the whole call (on a CUDA context: until the
    /// context's stream has finished the work), aligned to the element size, and not otherwise
    /// accessed meanwhile. The library cannot check any of it.
    pub unsafe fn from_raw(data: *mut c_void, dtype: DType, stride: [i64; 4]) -> Self {
        Self::new_view(Memory::Raw(data), dtype, stride, true)
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    pub fn strides(&self) -> [i64; 4] {
        self.stride
    }

    pub fn is_writable(&self) -> bool {
        self.writable
    }

    /// The C struct for this view, with `data`/`buffer` as given (slices are attached later).
    pub(crate) fn raw(&self) -> sys::mfa_tensor_t {
        let (data, buffer, byte_offset) = match self.memory {
            Memory::Slice { ptr, .. } | Memory::Raw(ptr) => (ptr, ptr::null_mut(), 0),
            Memory::Buffer { handle, byte_offset } => (ptr::null_mut(), handle, byte_offset),
        };
        sys::mfa_tensor_t { data, buffer, byte_offset, dtype: self.dtype as i32, reserved_: 0, stride: self.stride }
    }
}
