"""Helpers shared by the torch CPU and CUDA tests: PyTorch's math backend in float64 as the
oracle, and one function that checks the drop-in's output and gradients against it."""

from __future__ import annotations

import torch

import _naive
import mfa.torch as mt


def math_sdpa(q, k, v, **kw):
    """PyTorch's own function (never the drop-in) on float64 copies, with the math backend."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel(SDPBackend.MATH):
        return mt._torch_sdpa(q, k, v, **kw)


def leaf(x, dtype):
    return x.to(dtype).detach().requires_grad_()


def check_against_math(q, k, v, name, grads=True, tol=1.0, grad_tol=None, **kw):
    """Runs the drop-in on (q, k, v) and PyTorch math on their float64 copies; compares the
    outputs and the gradients for one random upstream gradient. tol multiplies every bound,
    grad_tol (default tol) the gradients'."""
    q, k, v = (leaf(t, t.dtype) for t in (q, k, v))
    q64, k64, v64 = (leaf(t, torch.float64) for t in (q, k, v))
    before = mt.stats()["mfa"]
    out = mt.scaled_dot_product_attention(q, k, v, **kw)
    assert mt.stats()["mfa"] == before + 1, mt.stats()
    kw64 = dict(kw)
    m = kw.get("attn_mask")
    if m is not None and m.is_floating_point():
        kw64["attn_mask"] = m.double()  # the reference runs wholly in float64
    ref = math_sdpa(q64, k64, v64, **kw64)
    assert out.dtype == q.dtype and out.device == q.device and out.shape == ref.shape
    _naive.assert_close(out.detach().double().cpu().numpy(), ref.detach().cpu().numpy(), name, what="out",
                        scale_tol=tol)
    if grads:
        g = torch.randn_like(out)
        out.backward(g)
        ref.backward(g.double())
        slack = tol if grad_tol is None else grad_tol  # (16-bit gradient bounds: see _naive.tolerance)
        for a, b, n in ((q, q64, "dq"), (k, k64, "dk"), (v, v64, "dv")):
            _naive.assert_close(a.grad.double().cpu().numpy(), b.grad.cpu().numpy(), name, backward=True, what=n,
                                scale_tol=slack)
    return out
