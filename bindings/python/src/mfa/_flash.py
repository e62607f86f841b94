"""_flash.py — mfa.flash_attn_func and mfa.flash_attn_varlen_func: FlashAttention-2's Python
interface (flash_attn.flash_attn_interface) with libmfa underneath.

Semantics are FlashAttention-2's: q [batch, seqlen_q, heads, dim], k/v [batch, seqlen_k,
heads_k, dim] (GQA/MQA when heads_k < heads); causal is aligned to the bottom right (the last
query sees the last key); window_size=(left, right) keeps keys i + seqlen_k - seqlen_q - left ..
i + seqlen_k - seqlen_q + right (-1 = unbounded), and with causal the right side is 0; softcap
caps scores as softcap * tanh(scores / softcap); softmax_scale defaults to 1/sqrt(dim). The LSE
(natural log, float32 [batch, heads, seqlen_q]; varlen [heads, total_q]) comes back with
return_attn_probs=True as (out, lse, None): libmfa never forms the probability matrix. Torch
tensors get gradients through libmfa's backward; numpy and DLPack arrays are forward-only.

Differences, raised as mfa.UnsupportedError rather than ignored: dropout_p > 0, alibi_slopes,
block_table (paged KV). A row that sees no key gets LSE -inf here (FlashAttention-2 writes +inf).
Beyond FlashAttention-2: float32 inputs, head dims up to the backend's limit, and the CPU.
"""

from __future__ import annotations

from . import _core
from ._errors import UnsupportedError
from ._tensor import is_torch


def _refuse(fn: str, dropout_p, alibi_slopes, block_table=None):
    if dropout_p:
        raise UnsupportedError(f"{fn}: dropout_p={dropout_p} is not supported (libmfa computes exact "
                               "attention without dropout); pass dropout_p=0.0")
    if alibi_slopes is not None:
        raise UnsupportedError(f"{fn}: alibi_slopes is not supported by libmfa; pass an additive attn_mask "
                               "to mfa.attention instead")
    if block_table is not None:
        raise UnsupportedError(f"{fn}: block_table (paged KV cache) is not supported by libmfa")


def _window(window_size):
    return (-1, -1) if window_size is None else (int(window_size[0]), int(window_size[1]))


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1),
                    softcap=0.0, alibi_slopes=None, deterministic=False, return_attn_probs=False):
    """flash_attn.flash_attn_func on libmfa. Returns out, or (out, lse, None) when
    return_attn_probs."""
    _refuse("flash_attn_func", dropout_p, alibi_slopes)
    mspec = _core.mask_fields(bool(causal), "bottom_right", _window(window_size))
    if is_torch(q):
        from . import _autograd
        spec = ("bshd", None, None, mspec, softmax_scale, float(softcap), bool(deterministic))
        res = _autograd.apply(q, k, v, None, spec, bool(return_attn_probs))
    else:
        res = _core._forward(q, k, v, "bshd", None, None, mspec, None, None, None, softmax_scale, float(softcap),
                             bool(return_attn_probs), None, None, None, False)
    if return_attn_probs:
        return res[0], res[1], None
    return res


def flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q=None, max_seqlen_k=None,
                           dropout_p=0.0, softmax_scale=None, causal=False, window_size=(-1, -1), softcap=0.0,
                           alibi_slopes=None, deterministic=False, return_attn_probs=False, block_table=None):
    """flash_attn.flash_attn_varlen_func on libmfa: q [total_q, heads, dim], k/v [total_k,
    heads_k, dim], cu_seqlens_* int32 [batch + 1]. libmfa reads the offsets from host memory:
    CUDA offsets are copied to the host once per call (a synchronisation). max_seqlen_* are
    accepted for compatibility and checked against the offsets."""
    _refuse("flash_attn_varlen_func", dropout_p, alibi_slopes, block_table)
    cq, _, longest_q = _core._cu_seqlens(cu_seqlens_q, "cu_seqlens_q")
    ck, _, longest_k = _core._cu_seqlens(cu_seqlens_k, "cu_seqlens_k")
    for given, longest, name in ((max_seqlen_q, longest_q, "max_seqlen_q"), (max_seqlen_k, longest_k, "max_seqlen_k")):
        if given is not None and int(given) < longest:
            raise _core.InvalidArgumentError(f"{name}={int(given)} is less than the longest sequence, {longest}")
    mspec = _core.mask_fields(bool(causal), "bottom_right", _window(window_size))
    if is_torch(q):
        from . import _autograd
        spec = ("varlen", cq, ck, mspec, softmax_scale, float(softcap), bool(deterministic))
        res = _autograd.apply(q, k, v, None, spec, bool(return_attn_probs))
    else:
        res = _core._forward(q, k, v, "varlen", cq, ck, mspec, None, None, None, softmax_scale, float(softcap),
                             bool(return_attn_probs), None, None, None, False)
    if return_attn_probs:
        return res[0], res[1], None
    return res
