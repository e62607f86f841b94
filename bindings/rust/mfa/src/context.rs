//! `Context`: an `mfa_context_t`, destroyed on drop, and the calls made on it.
//!
//! How a call reaches the library: the params' sizes and settings are copied into a fresh
//! `mfa_attention_params_t`; every slice-backed view is wrapped for the duration of the call as an
//! mfa buffer over exactly the slice (`mfa_buffer_from_ptr`), so the library checks every element
//! the call reaches against the slice and fails with `OutOfBounds` instead of touching memory
//! outside it. The three arrays the C struct holds as bare pointers (lse, block_mask,
//! cu_seqlens_*) are checked here against the lengths the header gives for them. Nothing else is
//! validated in Rust: sizes, strides, dtypes and masks are the library's to judge.

use std::ffi::CStr;
use std::os::raw::c_void;
use std::ptr::{self, NonNull};

use mfa_sys as sys;

use crate::buffer::Buffer;
use crate::dtype::{PlainElement, Precision};
use crate::error::{check, Error, ErrorCode, Result};
use crate::params::{Direction, Params};
use crate::tensor::{Memory, Tensor};

/// Which backend a context runs on (`MFA_BACKEND_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(i32)]
pub enum Backend {
    /// The MFA_BACKEND environment variable, else cpu.
    #[default]
    Auto = sys::MFA_BACKEND_AUTO,
    Cpu = sys::MFA_BACKEND_CPU,
    /// The libmfa_cuda plugin; `ErrorCode::DeviceNotSupported` where it is absent.
    Cuda = sys::MFA_BACKEND_CUDA,
    /// Float64 naive attention: the oracle for tests (slow).
    Reference = sys::MFA_BACKEND_REFERENCE,
}

/// `mfa_context_options_t`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub backend: Backend,
    /// Device index for GPU backends.
    pub device: i32,
    /// cpu threads; 0 = MFA_NUM_THREADS or all online cores.
    pub num_threads: i32,
}

/// The seed-compatible forward's arguments after the buffers (see [`Context::attention_forward`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SeedForward {
    pub batch_size: u32,
    pub seq_len_q: u32,
    pub seq_len_kv: u32,
    pub num_heads: u32,
    pub head_dim: u16,
    /// `<= 0` selects 1/sqrt(head_dim).
    pub softmax_scale: f32,
    /// Top-left aligned (row i sees keys 0..=i).
    pub causal: bool,
    pub input_precision: Precision,
    pub intermediate_precision: Precision,
    pub output_precision: Precision,
    pub transpose_q: bool,
    pub transpose_k: bool,
    pub transpose_v: bool,
    pub transpose_o: bool,
}

/// A library context: backend, threads, last error. Calls on one context are not synchronised,
/// so a `Context` may move between threads (`Send`) but not be shared by them (not `Sync`);
/// different contexts are independent.
#[derive(Debug)]
pub struct Context {
    raw: NonNull<c_void>,
    /// The backend computes on device memory (cuda): host slices are refused.
    device: bool,
}

// SAFETY: the header allows a context to be used by one thread at a time, from any thread.
unsafe impl Send for Context {}

/// Backs the view of an empty slice: a one-byte buffer over it holds no element of any float
/// dtype, so an empty extent passes and anything else fails the bounds check (never touching it).
static EMPTY: u64 = 0;

/// The buffers wrapped around slices for one call; destroyed when the call is over.
struct CallBuffers {
    context: sys::mfa_context_t,
    device: bool,
    handles: [sys::mfa_buffer_t; 9],
    count: usize,
}

impl CallBuffers {
    /// Points `field` at `tensor`'s memory, wrapping a slice as a buffer of exactly its bytes.
    fn attach(&mut self, name: &str, tensor: &Tensor<'_>, field: &mut sys::mfa_tensor_t) -> Result<()> {
        *field = tensor.raw();
        if let Memory::Slice { ptr, bytes } = tensor.memory {
            if self.device {
                return Err(host_on_device(name));
            }
            let (ptr, bytes) = if bytes > 0 {
                (ptr, bytes)
            } else if name == "attn_mask" {
                return Err(Error::new(ErrorCode::InvalidArgs, "attn_mask: the mask slice is empty"));
            } else {
                (&EMPTY as *const u64 as *mut c_void, 1)
            };
            let mut handle = ptr::null_mut();
            // SAFETY: ptr..ptr+bytes is the slice (or EMPTY), borrowed for longer than the call.
            check(unsafe { sys::mfa_buffer_from_ptr(self.context, ptr, bytes, &mut handle) }, self.context)?;
            self.handles[self.count] = handle;
            self.count += 1;
            field.data = ptr::null_mut();
            field.buffer = handle;
            field.byte_offset = 0;
        }
        Ok(())
    }
}

impl Drop for CallBuffers {
    fn drop(&mut self) {
        for &handle in &self.handles[..self.count] {
            // SAFETY: buffers this call created; destroying frees the handle, not the slice.
            unsafe { sys::mfa_destroy_buffer(handle) }
        }
    }
}

/// # Safety
/// `s` must be a NUL-terminated string that lives for `'a`.
unsafe fn text<'a>(s: *const std::os::raw::c_char) -> &'a str {
    CStr::from_ptr(s).to_str().unwrap_or("")
}

/// `a * b * c` when all are non-negative and it fits; None lets the library reject the sizes.
fn product(values: &[i64]) -> Option<usize> {
    values.iter().try_fold(1usize, |acc, &v| acc.checked_mul(usize::try_from(v).ok()?))
}

/// On a CUDA context the library reads device pointers: a Rust slice (host memory) would be
/// handed to the GPU as an invalid address.
fn host_on_device(name: &str) -> Error {
    Error::new(
        ErrorCode::InvalidArgs,
        format!(
            "{name} is a host slice but the context computes on device memory: \
             use a buffer of the context (Tensor::from_buffer) or a device pointer (Tensor::from_raw)"
        ),
    )
}

fn out_of_bounds(message: String) -> Error {
    Error::new(ErrorCode::OutOfBounds, message)
}

impl Context {
    /// `mfa_create_context`: the default backend (MFA_BACKEND, else cpu) on all cores.
    pub fn new() -> Result<Self> {
        let mut raw = ptr::null_mut();
        // SAFETY: a valid out-pointer; on failure the message is in this thread's slot.
        let code = unsafe { sys::mfa_create_context(&mut raw) };
        Self::created(code, raw)
    }

    /// `mfa_create_context_ex` with explicit options.
    pub fn with_options(options: &Options) -> Result<Self> {
        let mut o = std::mem::MaybeUninit::<sys::mfa_context_options_t>::uninit();
        // SAFETY: init writes the whole struct.
        let mut o = unsafe {
            sys::mfa_context_options_init(o.as_mut_ptr());
            o.assume_init()
        };
        o.backend = options.backend as i32;
        o.device = options.device;
        o.num_threads = options.num_threads;
        let mut raw = ptr::null_mut();
        // SAFETY: valid pointers for the call.
        let code = unsafe { sys::mfa_create_context_ex(&mut raw, &o) };
        Self::created(code, raw)
    }

    /// A context on `backend` with `num_threads` cpu threads (0 = all cores).
    pub fn with_backend(backend: Backend, num_threads: i32) -> Result<Self> {
        Self::with_options(&Options { backend, num_threads, ..Options::default() })
    }

    fn created(code: sys::mfa_error_t, raw: sys::mfa_context_t) -> Result<Self> {
        check(code, ptr::null_mut())?; // same thread, before any other call: the message is ours
        let raw = NonNull::new(raw).expect("the library returned a context");
        // SAFETY: a live context; backend names are static strings.
        let device = unsafe { text(sys::mfa_context_backend_name(raw.as_ptr())) } == "cuda";
        Ok(Context { raw, device })
    }

    pub fn as_raw(&self) -> sys::mfa_context_t {
        self.raw.as_ptr()
    }

    /// "cpu", "cuda" or "reference".
    pub fn backend_name(&self) -> &str {
        // SAFETY: backend names are static strings.
        unsafe { text(sys::mfa_context_backend_name(self.as_raw())) }
    }

    /// One line on what the context runs on, e.g. "cpu: ..., 2 threads".
    pub fn description(&self) -> String {
        // SAFETY: the text lives in the context until its next call; it is copied at once.
        unsafe { text(sys::mfa_context_description(self.as_raw())) }.to_string()
    }

    pub fn num_threads(&self) -> i32 {
        // SAFETY: a live context.
        unsafe { sys::mfa_context_num_threads(self.as_raw()) }
    }

    /// Forward: writes o (and the log-sum-exp when given). Nothing is written on error.
    pub fn forward(&self, p: &mut Params<'_>) -> Result<()> {
        self.run(p, Direction::Forward, false)
    }

    /// Backward: reads q, k, v, o, dout and the forward's log-sum-exp; writes dq, dk, dv.
    pub fn backward(&self, p: &mut Params<'_>) -> Result<()> {
        self.run(p, Direction::Backward, false)
    }

    /// The checks of the call in `direction`, without computing: `Ok` means it would be accepted.
    pub fn supported(&self, p: &Params<'_>, direction: Direction) -> Result<()> {
        self.run(p, direction, true)
    }

    fn run(&self, p: &Params<'_>, direction: Direction, check_only: bool) -> Result<()> {
        let ctx = self.as_raw();
        let bwd = direction == Direction::Backward;
        let which = if bwd { "backward" } else { "forward" };
        let mut raw = p.raw;
        let mut buffers = CallBuffers { context: ctx, device: self.device, handles: [ptr::null_mut(); 9], count: 0 };

        // (name, view, C field, written by this direction); the last four only in the backward
        let slots: [(&str, &Option<Tensor<'_>>, &mut sys::mfa_tensor_t, bool); 9] = [
            ("q", &p.q, &mut raw.q, false),
            ("k", &p.k, &mut raw.k, false),
            ("v", &p.v, &mut raw.v, false),
            ("o", &p.o, &mut raw.o, !bwd),
            ("attn_mask", &p.attn_mask, &mut raw.attn_mask, false),
            ("dout", &p.dout, &mut raw.dout, false),
            ("dq", &p.dq, &mut raw.dq, true),
            ("dk", &p.dk, &mut raw.dk, true),
            ("dv", &p.dv, &mut raw.dv, true),
        ];
        let used = if bwd { 9 } else { 5 };
        for (name, view, field, written) in slots.into_iter().take(used) {
            if let Some(t) = view {
                if written && !t.writable {
                    return Err(Error::new(
                        ErrorCode::InvalidArgs,
                        format!("{name} is a read-only view but the {which} writes it (use Tensor::new_mut)"),
                    ));
                }
                buffers.attach(name, t, field)?;
            }
        }

        let r = &p.raw;
        let varlen = p.is_varlen();
        if let Some(lse) = p.lse {
            if !bwd && !lse.writable {
                return Err(Error::new(ErrorCode::InvalidArgs, "lse was given with lse_input but the forward writes it (use lse)"));
            }
            if lse.len.is_some() && self.device {
                return Err(host_on_device("lse"));
            }
            let batch = if varlen { 1 } else { r.batch };
            if let (Some(len), Some(need)) = (lse.len, product(&[batch, r.heads_q, r.seqlen_q])) {
                if len < need {
                    return Err(out_of_bounds(format!(
                        "lse: the slice holds {len} floats but [{}, heads_q={}, seqlen_q={}] needs {need}",
                        if varlen { "1 (varlen)".to_string() } else { format!("batch={}", r.batch) },
                        r.heads_q,
                        r.seqlen_q
                    )));
                }
            }
            raw.lse = lse.ptr;
        }
        if let Some(map) = p.block_mask {
            if map.len.is_some() && self.device {
                return Err(host_on_device("block_mask"));
            }
            if let Some(len) = map.len {
                check_block_reach(r, len)?;
            }
            raw.block_mask = map.ptr;
        }
        if let Some((cu_q, cu_kv)) = p.cu_seqlens {
            if let Some(need) = r.batch.checked_add(1).and_then(|n| usize::try_from(n).ok()) {
                for (name, cu) in [("cu_seqlens_q", cu_q), ("cu_seqlens_kv", cu_kv)] {
                    if cu.len() < need {
                        return Err(out_of_bounds(format!(
                            "{name}: the slice holds {} offsets but batch + 1 = {need} are needed",
                            cu.len()
                        )));
                    }
                }
            }
            raw.cu_seqlens_q = cu_q.as_ptr();
            raw.cu_seqlens_kv = cu_kv.as_ptr();
        }

        // SAFETY: every pointer in raw is a live buffer of this call, a slice borrowed by p (for
        // longer than the call, exclusively where written), or a raw pointer the caller vouched
        // for in an unsafe constructor.
        let code = unsafe {
            if check_only {
                sys::mfa_attention_supported(ctx, &raw, direction as i32)
            } else if bwd {
                sys::mfa_attention_bwd(ctx, &raw)
            } else {
                sys::mfa_attention_fwd(ctx, &raw)
            }
        };
        let result = check(code, ctx); // read the message before the buffers go
        drop(buffers);
        result
    }

    // ---- streams, synchronisation, timing (GPU contexts; plain on the cpu) -----------------
    /// `mfa_context_set_stream`: later calls are enqueued on `stream` (a `cudaStream_t`; null is
    /// the device's default stream). Stored but unused on the cpu backend.
    ///
    /// # Safety
    /// `stream` must be null or a live stream of the context's device, and stay alive while
    /// work is enqueued on it.
    pub unsafe fn set_stream(&self, stream: *mut c_void) -> Result<()> {
        check(sys::mfa_context_set_stream(self.as_raw(), stream), self.as_raw())
    }

    /// The stream set by [`Context::set_stream`] (null: the default stream).
    pub fn stream(&self) -> *mut c_void {
        // SAFETY: a live context.
        unsafe { sys::mfa_context_get_stream(self.as_raw()) }
    }

    /// `mfa_synchronize`: waits for every call enqueued on the context's stream; a kernel that
    /// failed is reported here (`ErrorCode::ExecutionFailed`). Immediate on the cpu backend.
    pub fn synchronize(&self) -> Result<()> {
        // SAFETY: a live context.
        check(unsafe { sys::mfa_synchronize(self.as_raw()) }, self.as_raw())
    }

    /// `mfa_get_gpu_latency`: device time of the last attention call, in seconds (waits for it);
    /// 0 on the cpu backend.
    pub fn gpu_latency(&self) -> f64 {
        // SAFETY: a live context.
        unsafe { sys::mfa_get_gpu_latency(self.as_raw()) }
    }

    // ---- seed-compatible API --------------------------------------------------------------
    /// `mfa_create_buffer`: `size_bytes` of zeroed memory the backend computes on (host memory on
    /// the cpu backend, device memory on a CUDA context), freed when the buffer is dropped.
    pub fn create_buffer(&self, size_bytes: usize) -> Result<Buffer<'_>> {
        let mut handle = ptr::null_mut();
        // SAFETY: live context, valid out-pointer.
        check(unsafe { sys::mfa_create_buffer(self.as_raw(), size_bytes, &mut handle) }, self.as_raw())?;
        Ok(Buffer::from_parts(handle, size_bytes, !self.device, self))
    }

    /// `mfa_buffer_from_ptr`: a buffer over `data`, borrowed (exclusively) while the buffer lives.
    pub fn wrap<'a, T: PlainElement>(&'a self, data: &'a mut [T]) -> Result<Buffer<'a>> {
        if self.device {
            return Err(host_on_device("wrap"));
        }
        let bytes = std::mem::size_of_val(data);
        let mut handle = ptr::null_mut();
        // SAFETY: data..data+bytes stays borrowed by the returned buffer.
        let code = unsafe { sys::mfa_buffer_from_ptr(self.as_raw(), data.as_mut_ptr() as *mut c_void, bytes, &mut handle) };
        check(code, self.as_raw())?;
        Ok(Buffer::from_parts(handle, bytes, true, self))
    }

    /// The seed's 19-argument `mfa_attention_forward`: every operand contiguous
    /// `[batch, num_heads, seq, head_dim]` (a transpose flag stores that operand's slices as
    /// `[head_dim, seq]`), each checked against its buffer's size.
    pub fn attention_forward(&self, q: &Buffer<'_>, k: &Buffer<'_>, v: &Buffer<'_>, out: &mut Buffer<'_>, a: &SeedForward) -> Result<()> {
        // SAFETY: live buffer handles; the library checks sizes and ownership.
        let code = unsafe {
            sys::mfa_attention_forward(
                self.as_raw(),
                q.as_raw(),
                k.as_raw(),
                v.as_raw(),
                out.as_raw(),
                a.batch_size,
                a.seq_len_q,
                a.seq_len_kv,
                a.num_heads,
                a.head_dim,
                a.softmax_scale,
                a.causal,
                a.input_precision as i32,
                a.intermediate_precision as i32,
                a.output_precision as i32,
                a.transpose_q,
                a.transpose_k,
                a.transpose_v,
                a.transpose_o,
            )
        };
        check(code, self.as_raw())
    }
}

/// The block-sparse map's reach over `[batch, heads_q, rows, cols]` must lie inside the slice.
/// Sizes the library will reject anyway (non-positive, overflowing) are left to it.
fn check_block_reach(r: &sys::mfa_attention_params_t, len: usize) -> Result<()> {
    let extent = [r.batch, r.heads_q, r.block_mask_rows, r.block_mask_cols];
    if extent.iter().any(|&e| e <= 0) {
        return Ok(());
    }
    let (mut lo, mut hi) = (0i64, 0i64);
    for (e, s) in extent.iter().zip(r.block_mask_stride) {
        let Some(step) = s.checked_mul(e - 1) else { return Ok(()) };
        let sum = if step < 0 { lo.checked_add(step).map(|x| lo = x) } else { hi.checked_add(step).map(|x| hi = x) };
        if sum.is_none() {
            return Ok(());
        }
    }
    if lo < 0 || hi as u64 >= len as u64 {
        return Err(out_of_bounds(format!(
            "block_mask: strides {:?} over [batch, heads_q, rows, cols] = {:?} reach elements {lo}..={hi} but the slice holds {len}",
            r.block_mask_stride, extent
        )));
    }
    Ok(())
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: the context is live and owned; buffers borrowing it are gone (lifetimes).
        unsafe { sys::mfa_destroy_context(self.as_raw()) }
    }
}
