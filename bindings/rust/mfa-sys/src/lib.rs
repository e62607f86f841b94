//! Raw declarations of libmfa's C ABI, written by hand from `include/mfa.h` (version 0.1).
//!
//! What this is: `extern "C"` items, `#[repr(C)]` structs and the constants of the header, one to
//! one, with the header's names. Nothing here is safe to call without reading the header's
//! contract; the `mfa` crate is the safe wrapper. `tests/layout.rs` compiles a small C program
//! against the real header and checks every struct size, field offset and constant below.
//!
//! What this is not: generated (no bindgen: only the standard library is available), or a second
//! source of documentation. The header is the manual; comments here only say where to look.
#![allow(non_camel_case_types)]

use std::os::raw::{c_char, c_int, c_void};

// ---- Version -------------------------------------------------------------------------------
pub const MFA_VERSION_MAJOR: c_int = 0;
pub const MFA_VERSION_MINOR: c_int = 1;
pub const MFA_VERSION_PATCH: c_int = 0;
pub const MFA_VERSION_NUMBER: c_int = MFA_VERSION_MAJOR * 10000 + MFA_VERSION_MINOR * 100 + MFA_VERSION_PATCH;

// ---- Status codes (mfa_error_t is an int) ----------------------------------------------------
pub type mfa_error_t = c_int;
pub const MFA_SUCCESS: mfa_error_t = 0;
pub const MFA_ERROR_INVALID_ARGS: mfa_error_t = 1;
pub const MFA_ERROR_MEMORY_ALLOCATION: mfa_error_t = 2;
pub const MFA_ERROR_DEVICE_NOT_SUPPORTED: mfa_error_t = 3;
pub const MFA_ERROR_KERNEL_COMPILATION: mfa_error_t = 4;
pub const MFA_ERROR_EXECUTION_FAILED: mfa_error_t = 5;
pub const MFA_ERROR_NULL_POINTER: mfa_error_t = 6;
pub const MFA_ERROR_UNSUPPORTED: mfa_error_t = 7;
pub const MFA_ERROR_OUT_OF_BOUNDS: mfa_error_t = 8;
pub const MFA_ERROR_WRONG_CONTEXT: mfa_error_t = 9;

// ---- Element types ---------------------------------------------------------------------------
/// `mfa_precision_t` (a C enum: `int` sized on every supported ABI).
pub type mfa_precision_t = c_int;
pub const MFA_PRECISION_FP16: mfa_precision_t = 0;
pub const MFA_PRECISION_BF16: mfa_precision_t = 1;
pub const MFA_PRECISION_FP32: mfa_precision_t = 2;

pub const MFA_DTYPE_F16: i32 = 0;
pub const MFA_DTYPE_BF16: i32 = 1;
pub const MFA_DTYPE_F32: i32 = 2;
pub const MFA_DTYPE_BOOL: i32 = 3;

// ---- Handles ----------------------------------------------------------------------------------
pub type mfa_context_t = *mut c_void;
pub type mfa_buffer_t = *mut c_void;

// ---- Backends, masks, directions ---------------------------------------------------------------
pub const MFA_BACKEND_AUTO: i32 = 0;
pub const MFA_BACKEND_CPU: i32 = 1;
pub const MFA_BACKEND_CUDA: i32 = 2;
pub const MFA_BACKEND_REFERENCE: i32 = 3;

pub const MFA_MASK_NONE: i32 = 0;
pub const MFA_MASK_CAUSAL: i32 = 1;
pub const MFA_MASK_WINDOW: i32 = 2;
pub const MFA_ALIGN_TOP_LEFT: i32 = 0;
pub const MFA_ALIGN_BOTTOM_RIGHT: i32 = 1;

pub const MFA_DIRECTION_FWD: i32 = 0;
pub const MFA_DIRECTION_BWD: i32 = 1;

// ---- Structs -----------------------------------------------------------------------------------
/// `mfa_context_options_t`; fill with [`mfa_context_options_init`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct mfa_context_options_t {
    pub struct_size: u32,
    pub backend: i32,
    pub device: i32,
    pub num_threads: i32,
}

/// `mfa_tensor_t`: `data` or `buffer` (+ `byte_offset`), a dtype, element strides in
/// `[batch, seq, head, dim]` order (`[batch, head, q, kv]` for `attn_mask`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct mfa_tensor_t {
    pub data: *mut c_void,
    pub buffer: mfa_buffer_t,
    pub byte_offset: u64,
    pub dtype: i32,
    pub reserved_: i32,
    pub stride: [i64; 4],
}

/// `mfa_attention_params_t`; always start from [`mfa_attention_params_init`].
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct mfa_attention_params_t {
    pub struct_size: u32,
    pub reserved_: u32,

    pub batch: i64,
    pub seqlen_q: i64,
    pub seqlen_kv: i64,
    pub heads_q: i64,
    pub heads_kv: i64,
    pub head_dim_qk: i64,
    pub head_dim_v: i64,

    pub q: mfa_tensor_t,
    pub k: mfa_tensor_t,
    pub v: mfa_tensor_t,
    pub o: mfa_tensor_t,
    pub lse: *mut f32,

    pub softmax_scale: f32,
    pub softcap: f32,

    pub mask: i32,
    pub mask_align: i32,
    pub window_left: i64,
    pub window_right: i64,

    pub block_mask: *const u8,
    pub block_q: i64,
    pub block_kv: i64,
    pub block_mask_rows: i64,
    pub block_mask_cols: i64,
    pub block_mask_stride: [i64; 4],

    pub attn_mask: mfa_tensor_t,

    pub cu_seqlens_q: *const i32,
    pub cu_seqlens_kv: *const i32,

    pub dout: mfa_tensor_t,
    pub dq: mfa_tensor_t,
    pub dk: mfa_tensor_t,
    pub dv: mfa_tensor_t,
    pub deterministic: i32,
    pub allow_tf32: i32,
}

extern "C" {
    // 1. Seed-compatible API
    pub fn mfa_create_context(context: *mut mfa_context_t) -> mfa_error_t;
    pub fn mfa_destroy_context(context: mfa_context_t);
    pub fn mfa_create_buffer(context: mfa_context_t, size_bytes: usize, buffer: *mut mfa_buffer_t) -> mfa_error_t;
    pub fn mfa_buffer_from_ptr(
        context: mfa_context_t,
        data: *mut c_void,
        size_bytes: usize,
        buffer: *mut mfa_buffer_t,
    ) -> mfa_error_t;
    pub fn mfa_buffer_contents(buffer: mfa_buffer_t) -> *mut c_void;
    pub fn mfa_destroy_buffer(buffer: mfa_buffer_t);
    pub fn mfa_attention_forward(
        context: mfa_context_t,
        q: mfa_buffer_t,
        k: mfa_buffer_t,
        v: mfa_buffer_t,
        out: mfa_buffer_t,
        batch_size: u32,
        seq_len_q: u32,
        seq_len_kv: u32,
        num_heads: u32,
        head_dim: u16,
        softmax_scale: f32,
        causal: bool,
        input_precision: c_int,
        intermediate_precision: c_int,
        output_precision: c_int,
        transpose_q: bool,
        transpose_k: bool,
        transpose_v: bool,
        transpose_o: bool,
    ) -> mfa_error_t;
    pub fn mfa_error_string(error: mfa_error_t) -> *const c_char;
    pub fn mfa_get_version(major: *mut c_int, minor: *mut c_int, patch: *mut c_int);
    pub fn mfa_is_device_supported() -> bool;

    // 2. Full API
    pub fn mfa_context_options_init(options: *mut mfa_context_options_t);
    pub fn mfa_create_context_ex(context: *mut mfa_context_t, options: *const mfa_context_options_t) -> mfa_error_t;
    pub fn mfa_last_error_message(context: mfa_context_t) -> *const c_char;
    pub fn mfa_context_backend_name(context: mfa_context_t) -> *const c_char;
    pub fn mfa_context_description(context: mfa_context_t) -> *const c_char;
    pub fn mfa_context_num_threads(context: mfa_context_t) -> i32;

    pub fn mfa_tensor_contiguous(
        t: *mut mfa_tensor_t,
        data: *mut c_void,
        dtype: i32,
        seq: i64,
        heads: i64,
        dim: i64,
    ) -> *mut mfa_tensor_t;

    pub fn mfa_attention_params_init(p: *mut mfa_attention_params_t);
    pub fn mfa_attention_fwd(context: mfa_context_t, p: *const mfa_attention_params_t) -> mfa_error_t;
    pub fn mfa_attention_bwd(context: mfa_context_t, p: *const mfa_attention_params_t) -> mfa_error_t;
    pub fn mfa_attention_supported(
        context: mfa_context_t,
        p: *const mfa_attention_params_t,
        direction: i32,
    ) -> mfa_error_t;

    // 3. GPU contexts: memory, streams, synchronisation, timing
    pub fn mfa_context_set_stream(context: mfa_context_t, stream: *mut c_void) -> mfa_error_t;
    pub fn mfa_context_get_stream(context: mfa_context_t) -> *mut c_void;
    pub fn mfa_synchronize(context: mfa_context_t) -> mfa_error_t;
    pub fn mfa_buffer_copy_from_host(buffer: mfa_buffer_t, offset: usize, src: *const c_void, size_bytes: usize)
        -> mfa_error_t;
    pub fn mfa_buffer_copy_to_host(buffer: mfa_buffer_t, offset: usize, dst: *mut c_void, size_bytes: usize)
        -> mfa_error_t;
    pub fn mfa_get_gpu_latency(context: mfa_context_t) -> f64;
}
