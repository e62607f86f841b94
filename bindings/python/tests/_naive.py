"""_naive.py — an independent float64 attention in numpy (forward and backward), the tests' second
oracle beside libmfa's own float64 reference backend, plus the tolerance rule of
tests/check/tolerance.h and small helpers.

Layout: [batch, seq, heads, dim] ("bshd"); lse [batch, heads_q, seq_q]. Written from the math,
materialising the whole score matrix, with no code shared with the library.
"""

from __future__ import annotations

import numpy as np

EPS = {"float32": 0.0, "float16": 2.0 ** -10, "bfloat16": 2.0 ** -7}


def tolerance(dtype_name: str, backward: bool = False):
    """(rtol, atol in units of rms(ref)) as tests/check/tolerance.h states them, except for
    16-bit gradients: those go through the forward's rounded out (D = rowsum(dO * out), as in
    FlashAttention), an error that a sharp softmax amplifies past tolerance.h's 4 eps on some
    random inputs (up to ~8 eps causal, ~20 eps causal with scale 1.5: the sixteenth session's
    1500 seeds of each 16-bit case of test_sdpa_matches_math). The kernels' own precision is
    the C tests' business (tests/check); these tests must catch plumbing mistakes (a wrong tensor,
    stride, head or layout), errors of the order of rms, so 16-bit gradients get 4x the C bound."""
    if dtype_name == "float32":
        return (1e-4 if backward else 1e-5), 1e-5
    eps = EPS[dtype_name]
    return (4 * eps, 16 * eps) if backward else (eps, 2 * eps)


def assert_close(x, ref, dtype_name="float32", backward=False, what="", scale_tol=1.0):
    """|x - ref| <= atol * rms(ref) + rtol * |ref|, elementwise; infinities must match exactly;
    NaN never passes. Prints the first mismatches with their indices."""
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    assert x.shape == ref.shape, f"{what}: shape {x.shape} != {ref.shape}"
    rtol, atol = tolerance(dtype_name, backward)
    rtol, atol = rtol * scale_tol, atol * scale_tol
    fin = np.isfinite(ref)
    rms = float(np.sqrt(np.mean(ref[fin] ** 2))) if fin.any() else 0.0
    if rms == 0.0:  # an all-zero reference (e.g. dq of a single key): measure in units of the
        rms = 1.0   # inputs, which are standard normal
    with np.errstate(invalid="ignore"):
        ok = np.where(fin, np.abs(x - ref) <= atol * rms + rtol * np.abs(ref) + 1e-300, x == ref)
    ok &= ~np.isnan(x)
    if not ok.all():
        bad = np.argwhere(~ok)[:5]
        lines = [f"  at {tuple(int(j) for j in i)}: got {x[tuple(i)]!r}, want {ref[tuple(i)]!r}" for i in bad]
        raise AssertionError(f"{what}: {int((~ok).sum())} of {ok.size} elements differ "
                             f"(rtol {rtol:g}, atol {atol:g} * rms {rms:g})\n" + "\n".join(lines))


def keep_mask(b, hq, sq, skv, causal=False, align="top_left", window=(-1, -1), mask=None,
              block_mask=None, block=None):
    """bool [b, hq, sq, skv]: the pairs every mask keeps; and the additive float bias (or 0)."""
    i = np.arange(sq)[:, None]
    j = np.arange(skv)[None, :]
    diag = i + (skv - sq if align == "bottom_right" else 0)
    keep = np.ones((sq, skv), dtype=bool)
    wl, wr = window
    if causal and (wl, wr) == (-1, -1):
        keep &= j <= diag
    elif (wl, wr) != (-1, -1) or causal:
        if causal:
            wr = 0
        if wl >= 0:
            keep &= j >= diag - wl
        if wr >= 0:
            keep &= j <= diag + wr
    keep = np.broadcast_to(keep, (b, hq, sq, skv)).copy()
    bias = 0.0
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype == bool:
            keep &= np.broadcast_to(m, keep.shape)
        else:
            bias = np.broadcast_to(m.astype(np.float64), keep.shape)
    if block_mask is not None:
        bq, bkv = block
        bm = np.broadcast_to(np.asarray(block_mask, dtype=bool),
                             (b, hq) + np.asarray(block_mask).shape[-2:])
        keep &= bm[:, :, i[:, 0] // bq][:, :, :, j[0] // bkv]
    return keep, bias


def forward(q, k, v, scale=None, softcap=0.0, **masks):
    """out [b, sq, hq, dv], lse [b, hq, sq] in float64."""
    q, k, v = (np.asarray(t, dtype=np.float64) for t in (q, k, v))
    b, sq, hq, d = q.shape
    skv, hkv = k.shape[1], k.shape[2]
    g = hq // hkv
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    kk, vv = np.repeat(k, g, axis=2), np.repeat(v, g, axis=2)
    s = np.einsum("bqhd,bkhd->bhqk", q, kk) * scale
    if softcap:
        s = softcap * np.tanh(s / softcap)
    keep, bias = keep_mask(b, hq, sq, skv, **masks)
    with np.errstate(invalid="ignore"):
        s = np.where(keep, s + bias, -np.inf)
    m = s.max(axis=-1, keepdims=True) if skv else np.full((b, hq, sq, 1), -np.inf)
    msafe = np.where(np.isfinite(m), m, 0.0)
    p = np.exp(s - msafe)
    l = p.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        pn = np.where(l > 0, p / np.where(l > 0, l, 1), 0.0)
        lse = np.where(l[..., 0] > 0, msafe[..., 0] + np.log(np.where(l[..., 0] > 0, l[..., 0], 1)), -np.inf)
    out = np.einsum("bhqk,bkhd->bqhd", pn, vv)
    return out, lse


def backward(q, k, v, dout, scale=None, softcap=0.0, **masks):
    """(dq, dk, dv) in float64 for the upstream gradient dout [b, sq, hq, dv]."""
    q, k, v, dout = (np.asarray(t, dtype=np.float64) for t in (q, k, v, dout))
    b, sq, hq, d = q.shape
    skv, hkv = k.shape[1], k.shape[2]
    g = hq // hkv
    scale = 1.0 / np.sqrt(d) if scale is None else scale
    kk, vv = np.repeat(k, g, axis=2), np.repeat(v, g, axis=2)
    raw = np.einsum("bqhd,bkhd->bhqk", q, kk) * scale
    t = np.tanh(raw / softcap) if softcap else None
    s = softcap * t if softcap else raw
    keep, bias = keep_mask(b, hq, sq, skv, **masks)
    with np.errstate(invalid="ignore"):
        s = np.where(keep, s + bias, -np.inf)
    m = s.max(axis=-1, keepdims=True)
    msafe = np.where(np.isfinite(m), m, 0.0)
    p = np.exp(s - msafe)
    l = p.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        P = np.where(l > 0, p / np.where(l > 0, l, 1), 0.0)
    do = dout.transpose(0, 2, 1, 3)                       # [b, hq, sq, dv]
    dv_h = np.einsum("bhqk,bhqd->bhkd", P, do)            # per q head
    dP = np.einsum("bhqd,bkhd->bhqk", do, vv)
    D = (P * dP).sum(axis=-1, keepdims=True)
    dS = P * (dP - D)
    if softcap:
        dS = dS * (1 - t * t)
    dq = scale * np.einsum("bhqk,bkhd->bqhd", dS, kk)
    dk_h = scale * np.einsum("bhqk,bqhd->bhkd", dS, q)
    dk = dk_h.reshape(b, hkv, g, skv, d).sum(axis=2).transpose(0, 2, 1, 3)
    dv = dv_h.reshape(b, hkv, g, skv, -1).sum(axis=2).transpose(0, 2, 1, 3)
    return dq, dk, dv


def randn(rng, shape, dtype):
    """Standard normal values of `shape` in dtype (np.float32, np.float16 or ml_dtypes.bfloat16)."""
    return rng.standard_normal(shape).astype(dtype)
