"""_core.py — mfa.attention, mfa.attention_backward and their varlen forms: array objects in,
one mfa_attention_params_t filled, one C call, outputs from the input's framework.

How an array becomes an mfa_tensor_t: its data pointer and its strides (in elements) reordered to
libmfa's fixed index order [batch, seq, head, dim]:
    layout "bshd"  shape [batch, seq, heads, dim]   strides taken as they are
    layout "bhsd"  shape [batch, heads, seq, dim]   strides (s0, s2, s1, s3)
    varlen         shape [total_tokens, heads, dim] strides (0, s0, s1, s2) (batch is ignored)
attn_mask is [batch, heads_q, seqlen_q, seqlen_kv] after numpy broadcasting: a missing or size-1
axis gets stride 0, so masks shaped like PyTorch's broadcasting masks pass without a copy.

The C API sees only pointers, strides and the sizes we give it, so every shape relation it cannot
see (k and v agree, out has the right shape, ...) is checked here before the call, with errors in
the library's style. Everything else is checked by libmfa, whose message is raised as is.

Speed: the params struct is filled with struct.pack_into at offsets read from the ctypes mirror
(building ctypes sub-structures costs ~3 us each; a pack_into ~0.3 us).
"""

from __future__ import annotations

import ctypes
import struct

from . import _lib
from ._context import Context, default_context
from ._errors import Error, InvalidArgumentError, NullPointerError, UnsupportedError, from_code
from ._tensor import (DEVICE, KIND, NUMPY, OBJ, SHAPE, STRIDES, TORCH, Arr, adapt, empty_like_framework, np_data,
                      torch_dtype_code)

import numpy as np

from ._tensor import is_torch

_np_empty = np.empty
_np_ndarray = np.ndarray
_np_float32 = np.dtype(np.float32)

Params = _lib.Params
_byref = ctypes.byref

# ---- Packers over the ctypes mirror -----------------------------------------------------------
_CODES = {ctypes.c_int64: "q", ctypes.c_int32: "i", ctypes.c_uint32: "I", ctypes.c_uint64: "Q",
          ctypes.c_float: "f", ctypes.c_void_p: "Q", ctypes.c_uint8: "B"}
assert ctypes.sizeof(ctypes.c_void_p) == 8, "mfa: 64-bit platforms only"


def _flat(cls, base=0):
    """(offset, struct code) of every leaf field of a ctypes Structure, in order."""
    out = []
    for name, typ in cls._fields_:
        off = base + getattr(cls, name).offset
        if isinstance(typ, type) and issubclass(typ, ctypes.Structure):
            out += _flat(typ, off)
        elif isinstance(typ, type) and issubclass(typ, ctypes.Array):
            size = ctypes.sizeof(typ._type_)
            out += [(off + i * size, _CODES[typ._type_]) for i in range(typ._length_)]
        else:
            out.append((off, _CODES[typ]))
    return out


def _packer(first: str, last: str):
    """(offset, pack_into) writing Params fields first..last (inclusive) in one call."""
    names = [n for n, _ in Params._fields_]
    fields = names[names.index(first): names.index(last) + 1]
    leaves = []
    for n in fields:
        typ = dict(Params._fields_)[n]
        if isinstance(typ, type) and issubclass(typ, ctypes.Structure):
            leaves += _flat(typ, getattr(Params, n).offset)
        elif isinstance(typ, type) and issubclass(typ, ctypes.Array):
            size = ctypes.sizeof(typ._type_)
            leaves += [(getattr(Params, n).offset + i * size, _CODES[typ._type_]) for i in range(typ._length_)]
        else:
            leaves.append((getattr(Params, n).offset, _CODES[typ]))
    start = pos = leaves[0][0]
    fmt = "="
    for off, code in leaves:
        if off > pos:
            fmt += f"{off - pos}x"
        fmt += code
        pos = off + struct.calcsize("=" + code)
    return start, struct.Struct(fmt).pack_into


_SIZES_AT, _pack_sizes = _packer("batch", "head_dim_v")
_MAIN_AT, _pack_main = _packer("batch", "window_right")  # sizes, q, k, v, o, lse .. window: one call
_SCAL_AT, _pack_scalars = _packer("lse", "window_right")  # lse, scale, softcap, mask, align, wl, wr
_BLOCK_AT, _pack_block = _packer("block_mask", "block_mask_stride")
_CU_AT, _pack_cu = _packer("cu_seqlens_q", "cu_seqlens_kv")
_FLAGS_AT, _pack_flags = _packer("deterministic", "allow_tf32")
_pack_tensor = struct.Struct("=" + "".join(c for _, c in _flat(_lib.Tensor))).pack_into
_pack_ptr = struct.Struct("=Q").pack_into
_AT = {n: getattr(Params, n).offset for n in ("q", "k", "v", "o", "lse", "attn_mask", "dout", "dq", "dk", "dv")}
_Q, _K, _V, _O, _LSE, _M = _AT["q"], _AT["k"], _AT["v"], _AT["o"], _AT["lse"], _AT["attn_mask"]
_DO, _DQ, _DK, _DV = _AT["dout"], _AT["dq"], _AT["dk"], _AT["dv"]
_STRUCT_SIZE = _lib.PARAMS_SIZE
_init = _lib.params_init


def _template():
    """A params struct filled by mfa_attention_params_init (with room for a newer library's
    larger struct), then sized as this package's mirror, so fields it does not know keep the
    library's defaults."""
    buf = _lib.ParamsBuffer()
    _init(_byref(buf))
    struct.pack_into("=I", buf, 0, _STRUCT_SIZE)
    return bytes(buf)


# Every call starts from the library's own defaults: mfa_attention_params_init's result, taken
# once at import and copied per call (a copy costs 0.3 us, a ctypes call to the init ~1 us; the
# init is a pure function of the library, so the copy is the same bytes).
_TEMPLATE = _template()
_from_template = _lib.ParamsBuffer.from_buffer_copy


def new_params():
    """A fresh params struct holding mfa_attention_params_init's defaults."""
    return _from_template(_TEMPLATE)


def set_tensor(buf, at: int, ptr: int, dtype: int, s) -> None:
    _pack_tensor(buf, at, ptr, 0, 0, dtype, 0, s[0], s[1], s[2], s[3])


# ---- Execution ---------------------------------------------------------------------------------------
_fwd, _bwd, _supported = _lib.fwd, _lib.bwd, _lib.supported
_FWD = _lib.DIRECTION_FWD
_set_stream = _lib.set_stream
_last_error = _lib.last_error_message


_raw_stream = None


def current_stream(kind: int, device: int):
    """The stream a CUDA call should run on: torch's current stream on the device for torch
    tensors, the legacy default stream (0) for other CUDA arrays."""
    global _raw_stream
    if kind != TORCH:
        return 0
    if _raw_stream is None:
        import torch
        # torch._C._cuda_getCurrentRawStream(device) is the cudaStream_t as an int (0.2 us; Triton
        # uses it); torch.cuda.current_stream(device).cuda_stream builds a Stream object (2-3 us).
        raw = getattr(torch._C, "_cuda_getCurrentRawStream", None)
        _raw_stream = raw if raw is not None else (lambda d: torch.cuda.current_stream(d).cuda_stream)
    return _raw_stream(device)


def execute(ctx: Context, direction: int, buf, stream=None, check_only=False) -> None:
    """Runs the forward or backward on ctx; raises the mfa.Error of a failure with its message.
    stream: for a CUDA context, the cudaStream_t (as an int) the call is queued on."""
    h = ctx._handle
    if h is None:
        raise InvalidArgumentError("this mfa.Context is closed")
    with ctx._lock:
        # mfa_context_set_stream waits for the work queued on the previous stream (it always
        # synchronises: the context's workspace must not serve two streams at once), so it is
        # called only when the stream changes, never per call (that would also break CUDA-graph
        # capture, where synchronising is illegal).
        if ctx.is_cuda and stream != ctx._stream:
            if _set_stream is not None:
                err = _set_stream(h, stream)
                if err:
                    raise from_code(err, _last_error(h).decode(errors="replace"))
                ctx._stream = stream
            elif stream:
                raise UnsupportedError(
                    "this libmfa has no mfa_context_set_stream, so CUDA calls cannot follow a "
                    f"non-default stream ({stream:#x}); run on the default stream or update libmfa")
        if check_only:
            err = _supported(h, buf, direction)
        elif direction == _FWD:
            err = _fwd(h, buf)
        else:
            err = _bwd(h, buf)
        if err:
            msg = _last_error(h).decode(errors="replace")
    if err:
        raise from_code(err, msg)


def _where(device: int) -> str:
    return "host memory" if device < 0 else f"CUDA device {device}"


def pick_context(context, device: int) -> Context:
    """The context for data on `device` (-1 = host): the given one, checked against the device,
    or this thread's default one for the device."""
    if context is None:
        return default_context(device)
    if not isinstance(context, Context):
        raise InvalidArgumentError(f"context={context!r} is not an mfa.Context")
    if context.is_cuda:
        if device != context.device:
            raise InvalidArgumentError(f"q is in {_where(device)} but the context is CUDA device {context.device}")
    elif device >= 0:
        raise InvalidArgumentError(f"q is on CUDA device {device} but the context's backend is "
                                   f"{context.backend!r}, which reads host memory")
    return context


# ---- Options shared by every entry point --------------------------------------------------------
_ALIGN = {"top_left": _lib.ALIGN_TOP_LEFT, "bottom_right": _lib.ALIGN_BOTTOM_RIGHT}
_NO_WINDOW = (-1, -1)


NO_MASK = (_lib.MASK_NONE, _lib.ALIGN_TOP_LEFT, -1, -1)
CAUSAL_TOP_LEFT = (_lib.MASK_CAUSAL, _lib.ALIGN_TOP_LEFT, -1, -1)


def mask_fields(causal, causal_align="top_left", window=None):
    """The mask spec (mask, align, window_left, window_right) of the C struct. causal together
    with a window keeps both: the window's right side is clipped to the diagonal
    (FlashAttention's rule)."""
    if causal_align == "top_left" and (window is None or window is _NO_WINDOW or window == _NO_WINDOW):
        return CAUSAL_TOP_LEFT if causal else NO_MASK
    align = _ALIGN.get(causal_align)
    if align is None:
        raise InvalidArgumentError(f"causal_align={causal_align!r} is not 'top_left' or 'bottom_right'")
    if window is None:
        wl = wr = -1
    else:
        try:
            wl, wr = int(window[0]), int(window[1])
            if len(window) != 2:
                raise ValueError
        except (TypeError, ValueError, IndexError):
            raise InvalidArgumentError(f"window={window!r} is not a pair (left, right) of ints (-1 = unbounded)") from None
    if wl == -1 and wr == -1:
        return (_lib.MASK_CAUSAL if causal else _lib.MASK_NONE), align, -1, -1
    if causal:
        wr = 0 if wr < 0 else min(wr, 0)
    return _lib.MASK_WINDOW, align, wl, wr


def scale_value(scale) -> float:
    if scale is None:
        return 0.0  # the library's default, 1/sqrt(head_dim_qk)
    s = float(scale)
    if not s > 0.0 or s == float("inf"):
        raise InvalidArgumentError(f"scale={scale!r} must be positive and finite (None selects 1/sqrt(head_dim))")
    return s


def _same_device(a: Arr, device: int, name: str):
    if a[DEVICE] != device:
        raise InvalidArgumentError(f"{name} is in {_where(a[DEVICE])} but q is in {_where(device)}")


_MASK_AXES = ("batch", "heads_q", "seqlen_q", "seqlen_kv")


def broadcast_strides(a: Arr, target, name: str):
    """a's strides broadcast (numpy rules) to the 4 axes of `target`: stride 0 on missing or
    size-1 axes. Raises when a's shape does not broadcast."""
    shape, strides = tuple(a[SHAPE]), tuple(a[STRIDES])
    nd = len(shape)
    if nd > 4:
        raise InvalidArgumentError(f"{name}.shape={shape} has more than 4 dims")
    shape = (1,) * (4 - nd) + shape
    strides = (0,) * (4 - nd) + strides
    out = []
    for n, s, t in zip(shape, strides, target):
        if n == t:
            out.append(s if n > 1 else 0)
        elif n == 1:
            out.append(0)
        else:
            raise InvalidArgumentError(
                f"{name}.shape={tuple(a[SHAPE])} does not broadcast to [{', '.join(_MASK_AXES)}] = {list(target)}")
    return out


def set_masks(buf, device, batch, heads_q, sq, skv, attn_mask, block_mask, block_size):
    """Fills the attn_mask and block_mask fields; returns the adapted arrays, which the caller
    keeps alive until the call returns."""
    keep = []
    if attn_mask is not None:
        m = adapt(attn_mask, "attn_mask", mask=True)
        _same_device(m, device, "attn_mask")
        set_tensor(buf, _M, m[1], m[2], broadcast_strides(m, (batch, heads_q, sq, skv), "attn_mask"))
        keep.append(m)
    if block_mask is not None:
        bm = adapt(block_mask, "block_mask", mask=True)
        _same_device(bm, device, "block_mask")
        if bm[2] != _lib.DTYPE_BOOL:
            raise InvalidArgumentError(f"block_mask has dtype {_lib.DTYPE_NAME[bm[2]]}; it must be bool or uint8")
        shape = tuple(bm[SHAPE])
        if len(shape) < 2:
            raise InvalidArgumentError(f"block_mask.shape={shape}: it needs at least [rows, cols]")
        rows, cols = shape[-2], shape[-1]
        if block_size is None:
            if rows < 1 or cols < 1:
                raise InvalidArgumentError(f"block_mask.shape={shape} has an empty block axis")
            bq, bkv = max(1, -(-sq // rows)), max(1, -(-skv // cols))
        else:
            bq, bkv = int(block_size[0]), int(block_size[1])
        st = broadcast_strides(bm, (batch, heads_q, rows, cols), "block_mask")
        _pack_block(buf, _BLOCK_AT, bm[1], bq, bkv, rows, cols, *st)
        keep.append(bm)
    elif block_size is not None:
        raise InvalidArgumentError("block_size is given without a block_mask")
    return keep


# ---- Layouts and outputs ----------------------------------------------------------------------
def _split(a: Arr, name: str, layout: str):
    """(batch, seq, heads, dim) and their element strides for one q/k/v-like array."""
    sh, st = a[SHAPE], a[STRIDES]
    if layout == "bshd" and len(sh) == 4:
        return sh, st
    if layout == "bhsd" and len(sh) == 4:
        return (sh[0], sh[2], sh[1], sh[3]), (st[0], st[2], st[1], st[3])
    if layout == "varlen" and len(sh) == 3:
        return (1, sh[0], sh[1], sh[2]), (0, st[0], st[1], st[2])
    want = {"bshd": "4 dims [batch, seq, heads, head_dim]", "bhsd": "4 dims [batch, heads, seq, head_dim]",
            "varlen": "3 dims [total_tokens, heads, head_dim]"}.get(layout)
    if want is None:
        raise InvalidArgumentError(f"layout={layout!r} is not 'bshd' or 'bhsd'")
    raise InvalidArgumentError(f"{name}.shape={tuple(sh)}: layout {layout!r} wants {want}")


def _shape_of(layout: str, b, s, h, d):
    if layout == "bshd":
        return (b, s, h, d)
    if layout == "bhsd":
        return (b, h, s, d)
    return (s, h, d)  # varlen


def alloc_out(ref: Arr, layout: str, b, s, h, d):
    """A new contiguous output in `layout` from ref's framework: (object, pointer, strides in
    [batch, seq, head, dim] order)."""
    if layout == "bshd":
        shape, st = (b, s, h, d), (s * h * d, h * d, d, 1)
    elif layout == "bhsd":
        shape, st = (b, h, s, d), (h * s * d, d, s * d, 1)
    else:
        shape, st = (s, h, d), (0, h * d, d, 1)
    kind = ref[KIND]
    if kind == NUMPY:
        o = _np_empty(shape, ref[OBJ].dtype)
        return o, np_data(o), st
    if kind == TORCH:
        o = ref[OBJ].new_empty(*shape)  # same device and dtype (torch.empty(shape, ...) is 3x slower)
        return o, o.data_ptr(), st
    o, a = empty_like_framework(ref, shape)
    return o, a[1], _split(a, "out", layout)[1]


def _out(given, ref: Arr, shape, name: str, dtype=None):
    """Adapts a caller-provided output (shape-, device- and dtype-checked) or allocates one:
    (object, adapted tuple)."""
    if given is None:
        return empty_like_framework(ref, shape, dtype)
    a = adapt(given, name)
    if tuple(a[SHAPE]) != tuple(shape):
        raise InvalidArgumentError(f"{name}.shape={tuple(a[SHAPE])} but the result is {tuple(shape)}")
    _same_device(a, ref[DEVICE], name)
    if dtype == "float32" and a[2] != _lib.DTYPE_F32:
        raise InvalidArgumentError(f"{name} must be float32, not {_lib.DTYPE_NAME[a[2]]}")
    return given, a


_f32 = None


def _torch_float32():
    global _f32
    if _f32 is None:  # torch is imported only once a torch tensor has come
        import torch
        _f32 = torch.float32
    return _f32


def lse_pointer(given, ref: Arr, shape, name="lse"):
    """The LSE array (allocated float32 when not given) and its pointer. libmfa reads it as a
    flat contiguous float array, so a given one must be contiguous."""
    if given is None:
        kind = ref[KIND]
        if kind == NUMPY:
            o = _np_empty(shape, _np_float32)
            return o, np_data(o)
        if kind == TORCH:
            o = ref[OBJ].new_empty(*shape, dtype=_torch_float32())
            return o, o.data_ptr()
    obj, a = _out(given, ref, shape, name, "float32")
    expect, acc = [], 1
    for n in reversed(shape):
        expect.append(acc)
        acc *= n
    if any(n > 1 and s != e for n, s, e in zip(shape, a[STRIDES], reversed(expect))):
        raise InvalidArgumentError(f"{name} must be contiguous {list(shape)} float32; its strides are {tuple(a[STRIDES])}")
    return obj, a[1]


def _check_like(dims, expect, name, what):
    if tuple(dims) != tuple(expect):
        raise InvalidArgumentError(f"{name} is {what} {list(dims)} but must be {list(expect)}")


def _cu_seqlens(x, name: str):
    """Host int32 offsets [batch + 1] from numpy / torch (a CUDA tensor is copied to the host,
    which synchronises) / any sequence of ints: (array kept alive, pointer, longest length)."""
    if is_torch(x):
        x = x.detach()
        if x.device.type != "cpu":
            x = x.cpu()
        x = x.numpy()
    a = np.ascontiguousarray(x, dtype=np.int32)
    if a.ndim != 1 or a.shape[0] < 1:
        raise InvalidArgumentError(f"{name}.shape={a.shape}: it must be [batch + 1] int32 offsets")
    longest = int((a[1:] - a[:-1]).max()) if a.shape[0] > 1 else 0
    return a, np_data(a), longest


def _varlen(cu_q, cu_kv, b, sq, skv):
    """The varlen offsets, if given: (batch, longest q, longest kv, cu) where cu = (q array, its
    pointer, kv array, its pointer), the arrays kept alive by the caller until the call returns;
    without offsets, (b, sq, skv, None). The longest lengths are the dense masks' extents."""
    if cu_q is None and cu_kv is None:
        return b, sq, skv, None
    cq, pq, mq = _cu_seqlens(cu_q, "cu_seqlens_q")
    ck, pk, mk = _cu_seqlens(cu_kv, "cu_seqlens_kv")
    if cq.shape[0] != ck.shape[0]:
        raise InvalidArgumentError(f"cu_seqlens_q has {cq.shape[0]} entries but cu_seqlens_kv has {ck.shape[0]}")
    return cq.shape[0] - 1, mq, mk, (cq, pq, ck, pk)


# ---- Forward and backward, for every layout ------------------------------------------------------
def _check_qkv(q: Arr, k: Arr, v: Arr, layout: str):
    """Sizes (batch, seq_q, seq_kv, heads_q, heads_kv, dim_qk, dim_v) and strides of q, k, v,
    after checking that they agree (the C API cannot see the shapes)."""
    (b, sq, hq, dqk), sQ = _split(q, "q", layout)
    (bk, skv, hkv, dk), sK = _split(k, "k", layout)
    (bv, sv, hv, dv), sV = _split(v, "v", layout)
    if bk != b or dk != dqk:
        _check_like((bk, hkv, dk), (b, hkv, dqk), "k", "[batch, heads, head_dim]")
    if bv != b or sv != skv or hv != hkv:
        _check_like((bv, sv, hv), (b, skv, hkv), "v", "[batch, seq, heads]")
    dev = q[DEVICE]
    if k[DEVICE] != dev:
        _same_device(k, dev, "k")
    if v[DEVICE] != dev:
        _same_device(v, dev, "v")
    return (b, sq, skv, hq, hkv, dqk, dv), sQ, sK, sV


def _forward(q, k, v, layout, cu_q, cu_kv, mspec, block_mask, block_size, attn_mask, scale, softcap,
             return_lse, out, lse, context, allow_tf32, check_only=False):
    """The forward for every array kind and layout. mspec: mask_fields(...)."""
    Q, K, V = adapt(q, "q"), adapt(k, "k"), adapt(v, "v")
    (b, sq, skv, hq, hkv, dqk, dv), sQ, sK, sV = _check_qkv(Q, K, V, layout)
    dev = Q[DEVICE]
    ctx = default_context(dev) if context is None else pick_context(context, dev)

    b, mq, mk, cu = _varlen(cu_q, cu_kv, b, sq, skv)
    if out is None:
        o_obj, o_ptr, sO = alloc_out(Q, layout, b, sq, hq, dv)
    else:
        o_obj, O = _out(out, Q, _shape_of(layout, b, sq, hq, dv), "out")
        o_ptr, sO = O[1], _split(O, "out", layout)[1]
    lse_obj, lse_ptr = None, 0
    if return_lse or lse is not None:
        lse_obj, lse_ptr = lse_pointer(lse, Q, (hq, sq) if layout == "varlen" else (b, hq, sq))
    mask, align, wl, wr = mspec

    buf = new_params()
    _pack_main(buf, _MAIN_AT, b, sq, skv, hq, hkv, dqk, dv,
               Q[1], 0, 0, Q[2], 0, sQ[0], sQ[1], sQ[2], sQ[3],
               K[1], 0, 0, K[2], 0, sK[0], sK[1], sK[2], sK[3],
               V[1], 0, 0, V[2], 0, sV[0], sV[1], sV[2], sV[3],
               o_ptr, 0, 0, Q[2], 0, sO[0], sO[1], sO[2], sO[3],
               lse_ptr, 0.0 if scale is None else scale_value(scale), float(softcap), mask, align, wl, wr)
    if cu is not None:
        _pack_cu(buf, _CU_AT, cu[1], cu[3])
    masks = None
    if attn_mask is not None or block_mask is not None or block_size is not None:
        masks = set_masks(buf, dev, b, hq, mq, mk, attn_mask, block_mask, block_size)
    if allow_tf32:
        _pack_flags(buf, _FLAGS_AT, 0, 1)
    execute(ctx, _lib.DIRECTION_FWD, buf, current_stream(Q[KIND], dev) if ctx.is_cuda else None, check_only)
    del cu, masks, K, V  # alive until here: the call has returned
    return (o_obj, lse_obj) if return_lse else o_obj


# ---- torch tensors: the drop-ins' hot path --------------------------------------------------------
# A job is a forward prepared from torch tensors q, k, v whose shapes were found regular: the
# params struct filled in except for the outputs' pointers, and what run_job needs to allocate
# the outputs (the tensors are read once, here; nothing is checked twice):
#     (ctx, buf, out_shape, lse_shape, keep)
# keep: the adapted masks, alive until the call returns.
#
# What a job holds besides the pointers depends only on the shapes, strides, dtypes and devices
# of q, k, v and the options, so it is planned once per such key and kept: a plan is
#     (params bytes without pointers, out_shape, (batch, heads_q, seq_q, seq_kv), device)
# Checking and packing from scratch runs about 100 lines of Python; a hit reads the tensors, looks
# the key up and copies the bytes (measured: 2.5 us less per drop-in call with autograd, 1.3
# without).
_plans: dict = {}
_PLANS_MAX = 256  # then the table starts over (a model has a handful of attention shapes)


def torch_job(q, k, v, layout, mspec, attn_mask, scale, softcap, context, gqa=True, allow_tf32=False):
    """A job for torch tensors q, k, v in layout "bhsd" or "bshd"; None for anything irregular
    (dtypes, ranks, devices, shapes, zero batch or heads), which the general _forward handles
    and raises its errors for. gqa: kv heads may be any divisor of the query heads; False: equal
    to them or 1 (PyTorch without enable_gqa)."""
    if type(k) is not type(q) or type(v) is not type(q):  # e.g. numpy k: the general path reads it
        return None
    key = (q.shape, q.stride(), k.shape, k.stride(), v.shape, v.stride(), q.dtype, k.dtype, v.dtype, q.device,
           k.device, v.device, layout, mspec, scale, softcap, gqa, allow_tf32)
    plan = _plans.get(key)
    if plan is None:
        plan = _torch_plan(q, k, v, layout, mspec, scale, softcap, gqa, allow_tf32)
        if plan is None:
            return None
        if len(_plans) >= _PLANS_MAX:
            _plans.clear()
        _plans[key] = plan
    template, out_shape, dims, dev = plan
    ctx = default_context(dev) if context is None else pick_context(context, dev)
    buf = _from_template(template)
    _pack_ptr(buf, _Q, q.data_ptr())
    _pack_ptr(buf, _K, k.data_ptr())
    _pack_ptr(buf, _V, v.data_ptr())
    keep = None
    if attn_mask is not None:
        keep = set_masks(buf, dev, *dims, attn_mask, None, None)
    return ctx, buf, out_shape, dims[:3], keep


def _torch_plan(q, k, v, layout, mspec, scale, softcap, gqa, allow_tf32):
    """The plan of torch_job (see above), or None when the tensors are irregular."""
    dt = q.dtype
    code = torch_dtype_code(dt)
    qs, ks, vs = q.shape, k.shape, v.shape
    dev = q.get_device()  # -1 on the cpu
    if (code is None or code == _lib.DTYPE_BOOL or k.dtype != dt or v.dtype != dt or len(qs) != 4
            or len(ks) != 4 or len(vs) != 4 or k.get_device() != dev or v.get_device() != dev
            or not (q.is_cuda if dev >= 0 else q.is_cpu)):
        return None
    qt, kt, vt = q.stride(), k.stride(), v.stride()
    if layout == "bhsd":  # libmfa's order is [batch, seq, heads, dim]
        (b, hq, sq, d), (bk, hkv, skv, dk), (bv, hv, sv, dv) = qs, ks, vs
        qt, kt, vt = (qt[0], qt[2], qt[1], qt[3]), (kt[0], kt[2], kt[1], kt[3]), (vt[0], vt[2], vt[1], vt[3])
        out_shape, so = (b, hq, sq, dv), (hq * sq * dv, dv, sq * dv, 1)
    else:
        (b, sq, hq, d), (bk, skv, hkv, dk), (bv, sv, hv, dv) = qs, ks, vs
        out_shape, so = (b, sq, hq, dv), (sq * hq * dv, hq * dv, dv, 1)
    if (bk != b or bv != b or dk != d or sv != skv or hv != hkv or not (b and hq and hkv) or hq % hkv
            or not (gqa or hkv == hq or hkv == 1)):
        return None
    buf = new_params()
    _pack_main(buf, _MAIN_AT, b, sq, skv, hq, hkv, d, dv,
               0, 0, 0, code, 0, *qt,
               0, 0, 0, code, 0, *kt,
               0, 0, 0, code, 0, *vt,
               0, 0, 0, code, 0, *so,
               0, 0.0 if scale is None else scale_value(scale), float(softcap), *mspec)
    if allow_tf32:
        _pack_flags(buf, _FLAGS_AT, 0, 1)
    return bytes(buf), out_shape, (b, hq, sq, skv), dev


def run_job(q, job, want_lse: bool):
    """Allocates a job's outputs (out like q, in the job's layout; the LSE when want_lse) and
    runs it: (out, lse or None)."""
    ctx, buf, out_shape, lse_shape, keep = job
    out = q.new_empty(*out_shape)  # (*shape: 1.3 us; a shape tuple takes 1.9)
    _pack_ptr(buf, _O, out.data_ptr())
    lse = None
    if want_lse:
        lse = q.new_empty(*lse_shape, dtype=_torch_float32())
        _pack_ptr(buf, _LSE, lse.data_ptr())
    execute(ctx, _lib.DIRECTION_FWD, buf, current_stream(TORCH, ctx.device) if ctx.is_cuda else None)
    return out, lse


def forward_torch(q, k, v, layout, mspec, attn_mask, scale, softcap, want_lse):
    """The forward for torch tensors q, k, v in layout "bhsd" or "bshd": a job when they are
    regular, else the general _forward (which raises the errors)."""
    job = torch_job(q, k, v, layout, mspec, attn_mask, scale, softcap, None)
    if job is None:
        return _forward(q, k, v, layout, None, None, mspec, None, None, attn_mask, scale, softcap, want_lse, None,
                        None, None, False)
    out, lse = run_job(q, job, want_lse)
    return (out, lse) if want_lse else out


def _backward(q, k, v, out, dout, lse, layout, cu_q, cu_kv, mspec, block_mask, block_size, attn_mask, scale,
              softcap, dq, dk, dv, deterministic, context, allow_tf32):
    Q, K, V = adapt(q, "q"), adapt(k, "k"), adapt(v, "v")
    O, DO = adapt(out, "out"), adapt(dout, "dout")
    (b, sq, skv, hq, hkv, dqk, dv_), sQ, sK, sV = _check_qkv(Q, K, V, layout)
    dims_o, sO = _split(O, "out", layout)
    dims_do, sDO = _split(DO, "dout", layout)
    _check_like(dims_o, (b, sq, hq, dv_), "out", "[batch, seq, heads, head_dim]")
    _check_like(dims_do, (b, sq, hq, dv_), "dout", "[batch, seq, heads, head_dim]")
    dev = Q[DEVICE]
    _same_device(O, dev, "out")
    _same_device(DO, dev, "dout")
    ctx = default_context(dev) if context is None else pick_context(context, dev)

    b, mq, mk, cu = _varlen(cu_q, cu_kv, b, sq, skv)
    _, lse_ptr = lse_pointer(_required(lse, "lse"), Q, (hq, sq) if layout == "varlen" else (b, hq, sq))
    mask, align, wl, wr = mspec

    buf = new_params()
    _pack_main(buf, _MAIN_AT, b, sq, skv, hq, hkv, dqk, dv_,
               Q[1], 0, 0, Q[2], 0, sQ[0], sQ[1], sQ[2], sQ[3],
               K[1], 0, 0, K[2], 0, sK[0], sK[1], sK[2], sK[3],
               V[1], 0, 0, V[2], 0, sV[0], sV[1], sV[2], sV[3],
               O[1], 0, 0, O[2], 0, sO[0], sO[1], sO[2], sO[3],
               lse_ptr, scale_value(scale), float(softcap), mask, align, wl, wr)
    set_tensor(buf, _DO, DO[1], DO[2], sDO)
    grads = []
    for given, ref, at, name in ((dq, Q, _DQ, "dq"), (dk, K, _DK, "dk"), (dv, V, _DV, "dv")):
        if given is None and ref[KIND] == TORCH:
            obj = ref[OBJ].new_empty(*ref[SHAPE])
            G = (obj, obj.data_ptr(), ref[2], obj.shape, obj.stride())
        else:
            obj, G = _out(given, ref, tuple(ref[SHAPE]), name)
        set_tensor(buf, at, G[1], G[2], _split(G, name, layout)[1])
        grads.append(obj)
    if cu is not None:
        _pack_cu(buf, _CU_AT, cu[1], cu[3])
    masks = set_masks(buf, dev, b, hq, mq, mk, attn_mask, block_mask, block_size)
    _pack_flags(buf, _FLAGS_AT, 1 if deterministic else 0, 1 if allow_tf32 else 0)
    execute(ctx, _lib.DIRECTION_BWD, buf, current_stream(Q[KIND], dev) if ctx.is_cuda else None)
    del cu, masks, K, V, O, DO
    return tuple(grads)


def _required(x, name):
    if x is None:
        raise NullPointerError(f"{name} is None: the backward needs the forward's {name}")
    return x


# ---- The public entry points ----------------------------------------------------------------------
def attention(q, k, v, *, layout="bshd", causal=False, causal_align="top_left", window=(-1, -1),
              block_mask=None, block_size=None, attn_mask=None, scale=None, softcap=0.0,
              return_lse=False, out=None, lse=None, context=None, allow_tf32=False):
    """Exact attention softmax(scale * q k^T [+ masks]) v, computed by libmfa without copying
    the inputs. See docs/python.md for the full contract.

    q: [batch, seq_q, heads_q, dim_qk] ("bshd") or [batch, heads_q, seq_q, dim_qk] ("bhsd");
    k, v alike with seq_kv and heads_kv (GQA/MQA: heads_q a multiple of heads_kv); v's dim may
    differ. numpy (float32/float16/bfloat16), torch (cpu/cuda), or any __dlpack__ object.
    causal, causal_align ("top_left" as PyTorch, "bottom_right" as FlashAttention);
    window=(left, right) (-1 = unbounded; with causal, right is clipped to 0);
    block_mask [..., rows, cols] bool (block size ceil(seq/rows), or block_size=(block_q, block_kv));
    attn_mask bool (True = keep) or additive float, broadcast to [batch, heads_q, seq_q, seq_kv];
    scale (default 1/sqrt(dim_qk)); softcap (0 = off).
    out / lse: optional preallocated outputs. Returns out, or (out, lse) when return_lse, lse
    float32 [batch, heads_q, seq_q] (natural log; -inf for a row that sees no key).
    No autograd here: use mfa.attention_backward, or the torch drop-ins for autograd.
    """
    mspec = mask_fields(causal, causal_align, window)
    if (type(q) is not _np_ndarray and out is None and lse is None and block_mask is None and block_size is None
            and (layout == "bshd" or layout == "bhsd") and is_torch(q)):
        job = torch_job(q, k, v, layout, mspec, attn_mask, scale, softcap, context, True, allow_tf32)
        if job is not None:
            o, l = run_job(q, job, return_lse)
            return (o, l) if return_lse else o
    return _forward(q, k, v, layout, None, None, mspec, block_mask, block_size, attn_mask, scale, softcap, return_lse,
                    out, lse, context, allow_tf32)


def attention_backward(q, k, v, out, dout, lse, *, layout="bshd", causal=False, causal_align="top_left",
                       window=(-1, -1), block_mask=None, block_size=None, attn_mask=None, scale=None,
                       softcap=0.0, dq=None, dk=None, dv=None, deterministic=False, context=None,
                       allow_tf32=False):
    """Gradients (dq, dk, dv) of mfa.attention for the upstream gradient dout. out and lse are
    the forward's (run it with return_lse=True); every mask/scale option must be the forward's.
    dq, dk, dv may be preallocated (they are overwritten, not accumulated)."""
    return _backward(q, k, v, out, dout, lse, layout, None, None, mask_fields(causal, causal_align, window),
                     block_mask, block_size, attn_mask, scale, softcap, dq, dk, dv, deterministic, context,
                     allow_tf32)


def attention_varlen(q, k, v, cu_seqlens_q, cu_seqlens_kv, *, causal=False, causal_align="top_left",
                     window=(-1, -1), block_mask=None, block_size=None, attn_mask=None, scale=None,
                     softcap=0.0, return_lse=False, out=None, lse=None, context=None, allow_tf32=False):
    """Attention over a packed batch of sequences of different lengths.

    q: [total_q, heads_q, dim_qk]; k, v: [total_kv, heads_kv, dim] (sequence b is tokens
    cu_seqlens[b] .. cu_seqlens[b+1]). cu_seqlens_*: int32 offsets [batch + 1] starting at 0
    (numpy, torch or a list; libmfa reads them from host memory, so CUDA tensors are copied to
    the host, which synchronises). Masks count rows and columns from each sequence's start;
    attn_mask / block_mask are [batch, heads_q, longest q, longest kv]. lse: float32
    [heads_q, total_q]."""
    return _forward(q, k, v, "varlen", _required(cu_seqlens_q, "cu_seqlens_q"),
                    _required(cu_seqlens_kv, "cu_seqlens_kv"), mask_fields(causal, causal_align, window),
                    block_mask, block_size, attn_mask, scale, softcap, return_lse, out, lse, context, allow_tf32)


def attention_varlen_backward(q, k, v, out, dout, lse, cu_seqlens_q, cu_seqlens_kv, *, causal=False,
                              causal_align="top_left", window=(-1, -1), block_mask=None, block_size=None,
                              attn_mask=None, scale=None, softcap=0.0, dq=None, dk=None, dv=None,
                              deterministic=False, context=None, allow_tf32=False):
    """Gradients (dq, dk, dv) of mfa.attention_varlen; shapes as there, lse [heads_q, total_q]."""
    return _backward(q, k, v, out, dout, lse, "varlen", _required(cu_seqlens_q, "cu_seqlens_q"),
                     _required(cu_seqlens_kv, "cu_seqlens_kv"), mask_fields(causal, causal_align, window),
                     block_mask, block_size, attn_mask, scale, softcap, dq, dk, dv, deterministic, context,
                     allow_tf32)


def supported(q, k, v, context=None, *, layout="bshd", causal=False, causal_align="top_left", window=(-1, -1),
              block_mask=None, block_size=None, attn_mask=None, scale=None, softcap=0.0, allow_tf32=False) -> bool:
    """True when mfa.attention(q, k, v, context=context, ...) would run: the same checks
    (mfa_attention_supported), nothing computed (an output is still allocated)."""
    try:
        _forward(q, k, v, layout, None, None, mask_fields(causal, causal_align, window), block_mask, block_size,
                 attn_mask, scale, softcap, False, None, None, context, allow_tf32, check_only=True)
    except Error:
        return False
    return True
