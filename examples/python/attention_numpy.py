#!/usr/bin/env python3
"""attention_numpy.py — libmfa on numpy arrays: forward, LSE and backward, no framework.

    python examples/python/attention_numpy.py
"""

import numpy as np

import mfa

rng = np.random.default_rng(0)
# [batch, seq, heads, dim]; 8 query heads over 2 key/value heads (GQA).
q = rng.standard_normal((2, 100, 8, 64), dtype=np.float32)
k = rng.standard_normal((2, 120, 2, 64), dtype=np.float32)
v = rng.standard_normal((2, 120, 2, 64), dtype=np.float32)

out, lse = mfa.attention(q, k, v, causal=True, causal_align="bottom_right", return_lse=True)
dout = np.ones_like(out)
dq, dk, dv = mfa.attention_backward(q, k, v, out, dout, lse, causal=True, causal_align="bottom_right")

# The same call on libmfa's float64 reference backend, for comparison.
with mfa.Context("reference") as ref:
    want = mfa.attention(q, k, v, causal=True, causal_align="bottom_right", context=ref)
print(f"out {out.shape} {out.dtype}, lse {lse.shape}, dq {dq.shape}, dk {dk.shape}")
print(f"max |cpu - float64 reference| = {np.abs(out - want).max():.2e}")

# A sliding window and an additive bias broadcast over batch and heads (no copy is made).
bias = np.triu(np.full((100, 120), -1.0, np.float32), 30)
out2 = mfa.attention(q, k, v, window=(32, 0), causal_align="bottom_right", attn_mask=bias)
try:
    mfa.attention(q, k, v, softcap=-1.0)
except mfa.InvalidArgumentError as e:
    print("libmfa says:", e)
