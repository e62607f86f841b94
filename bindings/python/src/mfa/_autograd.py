"""_autograd.py — libmfa's forward and backward as PyTorch autograd: one autograd.Function for
eager mode, and the same pair registered as torch.library custom ops for torch.compile.

Both are thin: the forward runs mfa's forward with the LSE kept for the backward, the backward
runs libmfa's backward (mfa_attention_bwd) on the saved q, k, v, out and LSE. Nothing here does
math. The backward is once-differentiable (no double backward).

Why two forms: torch.autograd.Function costs least in eager mode (the drop-in's overhead
matters), while under torch.compile a custom op with a fake (shape-only) implementation lets
Dynamo put the call into the graph instead of breaking the graph at ctypes.

`spec` is the tuple of options the forward and backward share:
    (layout, cu_seqlens_q, cu_seqlens_kv, mspec, scale, softcap, deterministic)
with cu_seqlens as host int32 numpy arrays (or None) and mspec = _core.mask_fields(...).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch.autograd.function import once_differentiable

from . import _core


def forward(q, k, v, attn_mask, spec, want_lse: bool):
    """The forward without autograd: out, or (out, lse)."""
    layout, cu_q, cu_kv, mspec, scale, softcap, _ = spec
    if cu_q is None:
        return _core.forward_torch(q, k, v, layout, mspec, attn_mask, scale, softcap, want_lse)
    return _core._forward(q, k, v, layout, cu_q, cu_kv, mspec, None, None, attn_mask, scale, softcap, want_lse,
                          None, None, None, False)


def backward(q, k, v, out, dout, lse, attn_mask, spec):
    layout, cu_q, cu_kv, mspec, scale, softcap, deterministic = spec
    return _core._backward(q, k, v, out, dout, lse, layout, cu_q, cu_kv, mspec, None, None, attn_mask, scale,
                           softcap, None, None, None, deterministic, None, False)


class AttentionFunction(torch.autograd.Function):
    """out (and lse when want_lse, not differentiable) = attention(q, k, v); gradients for q, k, v.

    Called as AttentionFunction.apply(q, k, v, (spec, attn_mask, want_lse, job)): the options
    travel as one argument (each argument of apply costs about 0.2 us; attn_mask never requires
    grad here). job: a _core.torch_job the caller already made from q, k, v, or None to make
    the forward from scratch."""

    @staticmethod
    def forward(ctx, q, k, v, call):
        spec, attn_mask, want_lse, job = call
        if job is not None:
            out, lse = _core.run_job(q, job, True)
        else:
            out, lse = forward(q, k, v, attn_mask, spec, True)
        if attn_mask is None:
            ctx.save_for_backward(q, k, v, out, lse)
        else:
            ctx.save_for_backward(q, k, v, out, lse, attn_mask)
        ctx.spec = spec
        if want_lse:
            ctx.mark_non_differentiable(lse)
            return out, lse
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, *_):
        saved = ctx.saved_tensors
        q, k, v, out, lse = saved[:5]
        attn_mask = saved[5] if len(saved) > 5 else None
        dq, dk, dv = backward(q, k, v, out, dout, lse, attn_mask, ctx.spec)
        return dq, dk, dv, None


def apply(q, k, v, attn_mask, spec, want_lse: bool):
    """Runs attention with autograd when it is needed, else the plain forward. Under
    torch.compile it goes through the custom op (no graph break)."""
    if _HAVE_OPS and _compiling():
        if spec[1] is not None:
            raise _core.UnsupportedError("varlen attention under torch.compile is not supported; "
                                         "wrap the call in torch.compiler.disable")
        layout, _, _, (mask, align, wl, wr), scale, softcap, deterministic = spec
        out, lse = torch.ops.mfa.attention_fwd(q, k, v, attn_mask, layout, mask, align, wl, wr, scale,
                                                float(softcap), bool(deterministic))
        return (out, lse) if want_lse else out
    if torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad):
        return AttentionFunction.apply(q, k, v, (spec, attn_mask, want_lse, None))
    return forward(q, k, v, attn_mask, spec, want_lse)


_is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
# torch.library.custom_op (PyTorch >= 2.4). Without it, Dynamo meets the ctypes call itself and
# breaks the graph there: slower, still right.
_HAVE_OPS = hasattr(torch, "library") and hasattr(torch.library, "custom_op")


def _compiling() -> bool:
    return _is_compiling is not None and _is_compiling()


# ---- Custom ops for torch.compile --------------------------------------------------------------------
def _spec(layout, mask, align, wl, wr, scale, softcap, deterministic):
    return (layout, None, None, (mask, align, wl, wr), scale, softcap, deterministic)


def _lse_shape(q, layout):
    if layout == "bhsd":
        return (q.shape[0], q.shape[1], q.shape[2])
    return (q.shape[0], q.shape[2], q.shape[1])


if _HAVE_OPS:

    @torch.library.custom_op("mfa::attention_fwd", mutates_args=())
    def _op_fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Optional[torch.Tensor],
                layout: str, mask: int, align: int, wl: int, wr: int, scale: Optional[float],
                softcap: float, deterministic: bool) -> tuple[torch.Tensor, torch.Tensor]:
        return forward(q, k, v, attn_mask, _spec(layout, mask, align, wl, wr, scale, softcap, deterministic), True)

    @_op_fwd.register_fake
    def _(q, k, v, attn_mask, layout, mask, align, wl, wr, scale, softcap, deterministic):
        out = q.new_empty(tuple(q.shape[:-1]) + (v.shape[-1],))  # contiguous, as forward_torch's
        return out, q.new_empty(_lse_shape(q, layout), dtype=torch.float32)

    @torch.library.custom_op("mfa::attention_bwd", mutates_args=())
    def _op_bwd(dout: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                lse: torch.Tensor, attn_mask: Optional[torch.Tensor], layout: str, mask: int, align: int,
                wl: int, wr: int, scale: Optional[float], softcap: float,
                deterministic: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return backward(q, k, v, out, dout, lse, attn_mask,
                        _spec(layout, mask, align, wl, wr, scale, softcap, deterministic))

    @_op_bwd.register_fake
    def _(dout, q, k, v, out, lse, attn_mask, layout, mask, align, wl, wr, scale, softcap, deterministic):
        return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)

    def _setup(ctx, inputs, output):
        q, k, v, attn_mask = inputs[:4]
        out, lse = output
        ctx.save_for_backward(q, k, v, out, lse, attn_mask)
        ctx.cfg = inputs[4:]

    def _op_backward(ctx, dout, _dlse):
        q, k, v, out, lse, attn_mask = ctx.saved_tensors
        dq, dk, dv = torch.ops.mfa.attention_bwd(dout, q, k, v, out, lse, attn_mask, *ctx.cfg)
        return (dq, dk, dv) + (None,) * 9

    _op_fwd.register_autograd(_op_backward, setup_context=_setup)
