"""mfa.torch — a drop-in torch.nn.functional.scaled_dot_product_attention backed by libmfa.

    import mfa.torch
    y = mfa.torch.scaled_dot_product_attention(q, k, v, is_causal=True)   # same call as PyTorch's
    mfa.torch.install()          # F.scaled_dot_product_attention is now this one, process-wide
    with mfa.torch.installed():  # ... or only inside a block
        model(x)
    mfa.torch.stats()            # how many calls ran on libmfa, how many fell back, and why

Semantics are PyTorch's: q [..., L, E] with k [..., S, E], v [..., S, Ev] (4-D [N, H, L, E] or
3-D [N, L, E]); is_causal is top-left aligned (row i sees keys 0..i); a bool attn_mask keeps
True; a float attn_mask is added to the scaled scores; attn_mask broadcasts to [N, H, L, S]
(broadcast axes are read with stride 0, never expanded); enable_gqa maps query head h to key
head h // (Hq / Hkv); scale defaults to 1/sqrt(E); a row that keeps no key gives 0.
Gradients flow through libmfa's backward (autograd.Function; a torch.library custom op under
torch.compile).

Whatever libmfa does not run falls back to PyTorch's own function, counted in stats():
dropout_p > 0, float64 or other dtypes, mixed dtypes, devices other than cpu/cuda, an attn_mask
that requires grad, attn_mask together with is_causal (PyTorch raises), scale <= 0, ranks other
than 3 and 4, shapes PyTorch would reject, zero batch or heads, nested tensors, a CUDA tensor
without the CUDA plugin, and any call libmfa refuses (e.g. a head dim beyond the backend's).
"""

from __future__ import annotations

import contextlib
import itertools
import threading

import torch
import torch.nn.functional as _F

from . import _autograd
from ._context import default_context
from ._core import CAUSAL_TOP_LEFT, NO_MASK, forward_torch, run_job, torch_job
from ._errors import DeviceNotSupportedError, Error

# PyTorch's own function, taken before anything can replace it.
_torch_sdpa = getattr(_F.scaled_dot_product_attention, "_mfa_original", _F.scaled_dot_product_attention)
_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_grad_enabled = torch.is_grad_enabled
_Attention = _autograd.AttentionFunction

_lock = threading.Lock()
# Calls run by libmfa: an itertools.count, whose next() is atomic under the GIL and costs 0.05 us
# (a lock around a dict costs 0.7 on every call). Fallbacks are rare: a lock and a dict.
_mfa_calls = itertools.count()
_mfa_base = 0  # the count at the last reset
_fallbacks: dict = {}
_cuda_missing: dict = {}  # device index -> reason the CUDA context could not be made


def _peek(counter) -> int:
    """The next value, without taking it: from repr, "count(n)" (itertools' pickle support, which
    __reduce__ was, goes in Python 3.14)."""
    return int(repr(counter)[len("count("):-1])


def stats(reset: bool = False) -> dict:
    """Counters since import (or the last reset): calls, mfa (run by libmfa), fallback (run by
    PyTorch's own function) and reasons {reason: count} for the fallbacks."""
    global _mfa_base
    with _lock:
        ran = _peek(_mfa_calls) - _mfa_base
        fell = sum(_fallbacks.values())
        out = {"calls": ran + fell, "mfa": ran, "fallback": fell, "reasons": dict(_fallbacks)}
        if reset:
            _mfa_base += ran
            _fallbacks.clear()
    return out


def reset_stats() -> None:
    stats(reset=True)


def _count_fallback(reason):
    with _lock:
        _fallbacks[reason] = _fallbacks.get(reason, 0) + 1


class _ShapeRejected(Exception):
    pass


def _why_not(q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa):
    """None when libmfa can run this call with PyTorch's semantics, else the reason."""
    T = torch.Tensor
    if not (isinstance(q, T) and isinstance(k, T) and isinstance(v, T)):
        return "inputs are not tensors"
    if dropout_p:
        return "dropout_p > 0"
    if q.is_nested or k.is_nested or v.is_nested:
        return "nested tensors"
    dt = q.dtype
    if dt not in _DTYPES:
        return f"dtype {dt}"
    if k.dtype != dt or v.dtype != dt:
        return "mixed dtypes"
    if not (q.is_cpu or q.is_cuda):
        return f"device {q.device.type}"
    # (k and v on q's device is checked by libmfa's binding, which raises: then PyTorch raises.)
    nd = q.dim()
    if nd not in (3, 4) or k.dim() != nd or v.dim() != nd:
        return f"rank {nd}" if nd not in (3, 4) else "inputs of different ranks"
    qs, ks, vs = q.shape, k.shape, v.shape
    if qs[-1] != ks[-1] or ks[-2] != vs[-2]:
        return "shapes PyTorch rejects"
    if qs[0] == 0 or (nd == 4 and qs[1] == 0):
        return "zero batch or heads"
    if scale is not None and not scale > 0:
        return "scale <= 0"
    if attn_mask is not None:
        reason = _mask_why_not(attn_mask, is_causal, dt, nd)
        if reason is not None:
            return reason
    if _cuda_missing and q.is_cuda and q.get_device() in _cuda_missing:
        return "no CUDA backend"
    return None


def _mask_why_not(attn_mask, is_causal, dt, nd):
    if is_causal:
        return "attn_mask with is_causal"
    if not isinstance(attn_mask, torch.Tensor):
        return "attn_mask is not a tensor"
    if attn_mask.requires_grad and torch.is_grad_enabled():
        return "attn_mask requires grad"
    if attn_mask.dtype != torch.bool and attn_mask.dtype != dt:
        return "attn_mask dtype"
    if attn_mask.dim() > nd:
        return "attn_mask rank"
    return None


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None, enable_gqa=False):
    """torch.nn.functional.scaled_dot_product_attention, computed by libmfa (see the module doc)."""
    try:
        job = _common_job(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
        if job is not None:
            if _grad_enabled() and (query.requires_grad or key.requires_grad or value.requires_grad):
                spec = ("bhsd", None, None, CAUSAL_TOP_LEFT if is_causal else NO_MASK, scale, 0.0, False)
                out = _Attention.apply(query, key, value, (spec, attn_mask, False, job))
            else:
                out = run_job(query, job, False)[0]
            next(_mfa_calls)
            return out
    except Error as e:
        reason = _refused(query, e)
    else:
        reason = _why_not(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
        if reason is None and _autograd._compiling():
            # Traced by Dynamo: the call becomes the mfa::attention_fwd custom op in the graph. The
            # counters are not touched here (they would be a side effect for Dynamo to replay).
            try:
                return _run(query, key, value, attn_mask, bool(is_causal), scale, enable_gqa, True)
            except _ShapeRejected:
                reason = "shapes PyTorch rejects or broadcasts in ways libmfa does not"
        if reason is None:
            try:
                out = _run(query, key, value, attn_mask, bool(is_causal), scale, enable_gqa, False)
                next(_mfa_calls)
                return out
            except _ShapeRejected:
                reason = "shapes PyTorch rejects or broadcasts in ways libmfa does not"
            except Error as e:
                reason = _refused(query, e)
    _count_fallback(reason)
    kw = {"enable_gqa": True} if enable_gqa else {}
    return _torch_sdpa(query, key, value, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal,
                       scale=scale, **kw)


def _common_job(q, k, v, attn_mask, dropout_p, is_causal, scale, enable_gqa):
    """The libmfa job (_core.torch_job) for the common call, made from one reading of the
    tensors: plain 4-D tensors without dropout, k and v with q's batch and kv heads PyTorch
    takes as they are (equal, 1, or a divisor with enable_gqa). None for anything else, which
    the general path sorts out (3-D inputs, broadcasting, the fallbacks and their reasons)."""
    T = torch.Tensor
    if (type(q) is not T or type(k) is not T or type(v) is not T or dropout_p or q.is_nested or k.is_nested
            or v.is_nested or (scale is not None and not scale > 0) or _cuda_missing or _autograd._compiling()):
        return None
    if attn_mask is not None and _mask_why_not(attn_mask, is_causal, q.dtype, 4) is not None:
        return None
    return torch_job(q, k, v, "bhsd", CAUSAL_TOP_LEFT if is_causal else NO_MASK, attn_mask, scale, 0.0, None,
                     gqa=enable_gqa)


def _refused(q, e: Error) -> str:
    """The fallback reason for a call libmfa refused (remembering a device without CUDA)."""
    if isinstance(e, DeviceNotSupportedError) and q.is_cuda:
        _cuda_missing[q.get_device()] = e.message
        return "no CUDA backend"
    return f"libmfa: {type(e).__name__}"


def _broadcast_kv(q, k, v, enable_gqa):
    """k and v shaped for libmfa under PyTorch's rules, as views (no copy): batch and head axes
    of size 1 broadcast (expand: stride 0; autograd sums their gradients), and kv heads that
    divide the query heads are GQA (with enable_gqa) or MQA (one kv head). None when PyTorch
    would reject the shapes."""
    qs, ks, vs = q.shape, k.shape, v.shape
    b, h, bk, hk, bv, hv = qs[0], qs[1], ks[0], ks[1], vs[0], vs[1]
    if bk not in (b, 1) or bv not in (b, 1):
        return None
    if hk == hv and (hk == h or hk == 1 or (enable_gqa and h % hk == 0)):
        hkv = hk  # GQA / MQA inside libmfa: q head i reads kv head i // (h // hk)
    elif hk in (h, 1) and hv in (h, 1):
        hkv = h   # one of them broadcasts its single head
    else:
        return None
    if bk != b or hk != hkv:
        k = k.expand(b, hkv, ks[2], ks[3])
    if bv != b or hv != hkv:
        v = v.expand(b, hkv, vs[2], vs[3])
    return k, v


def _run(q, k, v, attn_mask, is_causal, scale, enable_gqa, compiling):
    three = q.dim() == 3
    if three:  # [N, L, E] -> [N, 1, L, E]: views, no copy
        q, k, v = q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)
        if attn_mask is not None and attn_mask.dim() == 3:
            attn_mask = attn_mask.unsqueeze(1)
    kv = _broadcast_kv(q, k, v, enable_gqa)
    if kv is None:
        raise _ShapeRejected()
    k, v = kv
    mspec = CAUSAL_TOP_LEFT if is_causal else NO_MASK
    if not compiling:
        if q.is_cuda:
            default_context(q.get_device())  # raises DeviceNotSupportedError where there is no plugin
        if not (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)):
            out = forward_torch(q, k, v, "bhsd", mspec, attn_mask, scale, 0.0, False)  # no autograd
            return out.squeeze(1) if three else out
    out = _autograd.apply(q, k, v, attn_mask, ("bhsd", None, None, mspec, scale, 0.0, False), False)
    return out.squeeze(1) if three else out


scaled_dot_product_attention._mfa_original = _torch_sdpa

# ---- Replacing torch.nn.functional.scaled_dot_product_attention -----------------------------------
_installed = 0


def install() -> None:
    """Replaces torch.nn.functional.scaled_dot_product_attention with the libmfa drop-in,
    process-wide (also for torch.nn.MultiheadAttention and transformer layers, which look it up
    at call time). Code that imported the function itself before keeps PyTorch's."""
    global _installed
    with _lock:
        _installed += 1
        _F.scaled_dot_product_attention = scaled_dot_product_attention


def uninstall() -> None:
    """Restores PyTorch's own function (after as many calls as install())."""
    global _installed
    with _lock:
        _installed = max(0, _installed - 1)
        if _installed == 0:
            _F.scaled_dot_product_attention = _torch_sdpa


def is_installed() -> bool:
    return _F.scaled_dot_product_attention is scaled_dot_product_attention


@contextlib.contextmanager
def installed():
    """`with mfa.torch.installed():` — the drop-in replaces PyTorch's function inside the block."""
    install()
    try:
        yield
    finally:
        uninstall()


__all__ = ["scaled_dot_product_attention", "install", "uninstall", "installed", "is_installed", "stats",
           "reset_stats"]
