//! `Params`: a builder over `mfa_attention_params_t`. Every setter maps to the header field of
//! the same name; the defaults are `mfa_attention_params_init`'s. Sizes left unset stay 0 and the
//! library rejects them with a message naming the field.

use mfa_sys as sys;

use crate::tensor::Tensor;

/// Mask alignment for causal and window masks (`MFA_ALIGN_*`): the diagonal is `d = 0` for
/// `TopLeft` (PyTorch's `is_causal`) and `d = seqlen_kv - seqlen_q` for `BottomRight`
/// (FlashAttention's causal).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[repr(i32)]
pub enum Align {
    #[default]
    TopLeft = sys::MFA_ALIGN_TOP_LEFT,
    BottomRight = sys::MFA_ALIGN_BOTTOM_RIGHT,
}

/// `MFA_DIRECTION_*`, for [`crate::Context::supported`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Direction {
    Forward = sys::MFA_DIRECTION_FWD,
    Backward = sys::MFA_DIRECTION_BWD,
}

/// A host slice or a raw pointer the call reads (and perhaps writes): the log-sum-exp and the
/// block-sparse map. `len` is None for raw pointers (nothing to check them against).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawSlice<T> {
    pub ptr: *mut T,
    pub len: Option<usize>,
    pub writable: bool,
}

/// Everything one attention call needs, borrowed for `'a`. Build it, then pass it to
/// [`crate::Context::forward`] / [`crate::Context::backward`] (as `&mut`: the views it holds may
/// be written).
#[derive(Debug)]
pub struct Params<'a> {
    /// Sizes, scalars and mask settings; pointer and tensor fields stay empty here and are
    /// filled from the views below for each call.
    pub(crate) raw: sys::mfa_attention_params_t,
    pub(crate) q: Option<Tensor<'a>>,
    pub(crate) k: Option<Tensor<'a>>,
    pub(crate) v: Option<Tensor<'a>>,
    pub(crate) o: Option<Tensor<'a>>,
    pub(crate) attn_mask: Option<Tensor<'a>>,
    pub(crate) dout: Option<Tensor<'a>>,
    pub(crate) dq: Option<Tensor<'a>>,
    pub(crate) dk: Option<Tensor<'a>>,
    pub(crate) dv: Option<Tensor<'a>>,
    pub(crate) lse: Option<RawSlice<f32>>,
    pub(crate) block_mask: Option<RawSlice<u8>>,
    pub(crate) cu_seqlens: Option<(&'a [i32], &'a [i32])>,
}

impl Default for Params<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> Params<'a> {
    /// Defaults of `mfa_attention_params_init`: sizes 0, no mask, top-left alignment, window
    /// (-1, -1), softmax scale 1/sqrt(head_dim_qk), no softcap.
    pub fn new() -> Self {
        let mut raw = std::mem::MaybeUninit::<sys::mfa_attention_params_t>::uninit();
        // SAFETY: mfa_attention_params_init writes every byte of the struct.
        let raw = unsafe {
            sys::mfa_attention_params_init(raw.as_mut_ptr());
            raw.assume_init()
        };
        Params {
            raw,
            q: None,
            k: None,
            v: None,
            o: None,
            attn_mask: None,
            dout: None,
            dq: None,
            dk: None,
            dv: None,
            lse: None,
            block_mask: None,
            cu_seqlens: None,
        }
    }

    // ---- sizes -------------------------------------------------------------------------------
    pub fn batch(mut self, batch: i64) -> Self {
        self.raw.batch = batch;
        self
    }

    /// Query and key/value sequence lengths (the packed totals with [`Params::varlen`]).
    pub fn seqlen(mut self, seqlen_q: i64, seqlen_kv: i64) -> Self {
        self.raw.seqlen_q = seqlen_q;
        self.raw.seqlen_kv = seqlen_kv;
        self
    }

    /// Query heads and key/value heads (GQA/MQA: heads_q a multiple of heads_kv).
    pub fn heads(mut self, heads_q: i64, heads_kv: i64) -> Self {
        self.raw.heads_q = heads_q;
        self.raw.heads_kv = heads_kv;
        self
    }

    /// One head dim for q/k and v.
    pub fn head_dim(self, head_dim: i64) -> Self {
        self.head_dims(head_dim, head_dim)
    }

    pub fn head_dims(mut self, head_dim_qk: i64, head_dim_v: i64) -> Self {
        self.raw.head_dim_qk = head_dim_qk;
        self.raw.head_dim_v = head_dim_v;
        self
    }

    // ---- tensors -----------------------------------------------------------------------------
    /// `[batch, seqlen_q, heads_q, head_dim_qk]`
    pub fn q(mut self, t: Tensor<'a>) -> Self {
        self.q = Some(t);
        self
    }
    /// `[batch, seqlen_kv, heads_kv, head_dim_qk]`
    pub fn k(mut self, t: Tensor<'a>) -> Self {
        self.k = Some(t);
        self
    }
    /// `[batch, seqlen_kv, heads_kv, head_dim_v]`
    pub fn v(mut self, t: Tensor<'a>) -> Self {
        self.v = Some(t);
        self
    }
    /// `[batch, seqlen_q, heads_q, head_dim_v]`: written by the forward (a writable view), read
    /// by the backward.
    pub fn o(mut self, t: Tensor<'a>) -> Self {
        self.o = Some(t);
        self
    }

    /// Log-sum-exp output of the forward, `[batch, heads_q, seqlen_q]` (varlen:
    /// `[heads_q, total_q]`), natural log.
    pub fn lse(mut self, lse: &'a mut [f32]) -> Self {
        self.lse = Some(RawSlice { ptr: lse.as_mut_ptr(), len: Some(lse.len()), writable: true });
        self
    }

    /// The forward's log-sum-exp as the backward's input.
    pub fn lse_input(mut self, lse: &'a [f32]) -> Self {
        self.lse = Some(RawSlice { ptr: lse.as_ptr() as *mut f32, len: Some(lse.len()), writable: false });
        self
    }

    /// The log-sum-exp at a raw pointer (device memory on a CUDA context).
    ///
    /// # Safety
    /// `lse` must be valid for reads and writes of the whole `[batch, heads_q, seqlen_q]` f32
    /// array for the duration of the call (on a CUDA context, of the stream's work).
    pub unsafe fn lse_raw(mut self, lse: *mut f32) -> Self {
        self.lse = Some(RawSlice { ptr: lse, len: None, writable: true });
        self
    }

    // ---- scalars and masks -------------------------------------------------------------------
    /// `<= 0` selects 1/sqrt(head_dim_qk); applied before softcap and masks.
    pub fn softmax_scale(mut self, scale: f32) -> Self {
        self.raw.softmax_scale = scale;
        self
    }

    /// `> 0`: scores become `softcap * tanh(scores / softcap)`; 0 turns it off.
    pub fn softcap(mut self, softcap: f32) -> Self {
        self.raw.softcap = softcap;
        self
    }

    /// No causal/window mask (the default).
    pub fn no_mask(mut self) -> Self {
        self.raw.mask = sys::MFA_MASK_NONE;
        self
    }

    /// Causal: key j is kept for query i when `j <= i + d` (d from `align`).
    pub fn causal(mut self, align: Align) -> Self {
        self.raw.mask = sys::MFA_MASK_CAUSAL;
        self.raw.mask_align = align as i32;
        self
    }

    /// Sliding window: `i + d - left <= j <= i + d + right`; -1 leaves that side unbounded.
    pub fn window(mut self, left: i64, right: i64, align: Align) -> Self {
        self.raw.mask = sys::MFA_MASK_WINDOW;
        self.raw.mask_align = align as i32;
        self.raw.window_left = left;
        self.raw.window_right = right;
        self
    }

    /// Dense mask `[batch, heads_q, seqlen_q, seqlen_kv]` through its strides (0 broadcasts):
    /// `bool`/`u8` views keep nonzero elements; f32/f16/bf16 views are added to the scaled scores.
    pub fn attn_mask(mut self, mask: Tensor<'a>) -> Self {
        self.attn_mask = Some(mask);
        self
    }

    /// Block-sparse map: `map` is `[batch, heads_q, rows, cols]` through `stride` (0 broadcasts),
    /// nonzero keeps block (r, c) = query rows `r*block_q..`, keys `c*block_kv..`. `rows` and
    /// `cols` must be `ceil(seqlen_q / block_q)` and `ceil(seqlen_kv / block_kv)` (varlen: of the
    /// longest sequence).
    pub fn block_mask(mut self, map: &'a [u8], block: (i64, i64), shape: (i64, i64), stride: [i64; 4]) -> Self {
        self.block_mask = Some(RawSlice { ptr: map.as_ptr() as *mut u8, len: Some(map.len()), writable: false });
        self.set_block_shape(block, shape, stride);
        self
    }

    /// The block-sparse map at a raw pointer (device memory on a CUDA context).
    ///
    /// # Safety
    /// Every byte `stride` reaches over `[batch, heads_q, rows, cols]` must be readable for the
    /// call (on a CUDA context, for the stream's work).
    pub unsafe fn block_mask_raw(mut self, map: *const u8, block: (i64, i64), shape: (i64, i64), stride: [i64; 4]) -> Self {
        self.block_mask = Some(RawSlice { ptr: map as *mut u8, len: None, writable: false });
        self.set_block_shape(block, shape, stride);
        self
    }

    fn set_block_shape(&mut self, block: (i64, i64), shape: (i64, i64), stride: [i64; 4]) {
        (self.raw.block_q, self.raw.block_kv) = block;
        (self.raw.block_mask_rows, self.raw.block_mask_cols) = shape;
        self.raw.block_mask_stride = stride;
    }

    /// Varlen batch: `batch + 1` non-decreasing offsets from 0 into the packed tokens (host
    /// memory on every backend). seqlen_q / seqlen_kv are then the packed totals, tensors are
    /// indexed by packed token and their batch stride is ignored.
    pub fn varlen(mut self, cu_seqlens_q: &'a [i32], cu_seqlens_kv: &'a [i32]) -> Self {
        self.cu_seqlens = Some((cu_seqlens_q, cu_seqlens_kv));
        self
    }

    // ---- backward ----------------------------------------------------------------------------
    /// dO, like o.
    pub fn dout(mut self, t: Tensor<'a>) -> Self {
        self.dout = Some(t);
        self
    }
    /// dQ, like q (writable).
    pub fn dq(mut self, t: Tensor<'a>) -> Self {
        self.dq = Some(t);
        self
    }
    /// dK, like k (writable).
    pub fn dk(mut self, t: Tensor<'a>) -> Self {
        self.dk = Some(t);
        self
    }
    /// dV, like v (writable).
    pub fn dv(mut self, t: Tensor<'a>) -> Self {
        self.dv = Some(t);
        self
    }

    /// The same inputs give bitwise the same gradients.
    pub fn deterministic(mut self, on: bool) -> Self {
        self.raw.deterministic = on as i32;
        self
    }

    /// GPU fp32 inputs may use TF32 (default: exact fp32).
    pub fn allow_tf32(mut self, on: bool) -> Self {
        self.raw.allow_tf32 = on as i32;
        self
    }

    /// The sizes, scalars and mask settings as the C struct (tensor and pointer fields empty).
    pub fn as_raw(&self) -> &sys::mfa_attention_params_t {
        &self.raw
    }

    pub(crate) fn is_varlen(&self) -> bool {
        self.cu_seqlens.is_some()
    }
}

