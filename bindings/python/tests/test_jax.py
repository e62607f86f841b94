"""JAX arrays through DLPack (skipped where jax is not installed): inputs read in place (DLPack
1.x capsules), outputs allocated by jax.numpy on the input's device, forward and backward."""

from __future__ import annotations

import numpy as np
import pytest

jnp = pytest.importorskip("jax.numpy")

import _naive  # noqa: E402

import mfa  # noqa: E402


def test_jax_forward_backward_in_place(rng, ref_ctx, calls):
    qn, kn, vn = (rng.standard_normal(s).astype(np.float32) for s in ((2, 9, 4, 16), (2, 12, 2, 16), (2, 12, 2, 8)))
    q, k, v = (jnp.asarray(a) for a in (qn, kn, vn))
    out, lse = mfa.attention(q, k, v, causal=True, return_lse=True)
    assert type(out) is type(q) and out.dtype == jnp.float32 and out.shape == (2, 9, 4, 8)
    p = calls[-1][1]
    assert (p.q.data, p.k.data, p.v.data) == (q.unsafe_buffer_pointer(), k.unsafe_buffer_pointer(),
                                              v.unsafe_buffer_pointer())
    assert p.o.data == out.unsafe_buffer_pointer()
    want, wl = mfa.attention(qn, kn, vn, causal=True, return_lse=True, context=ref_ctx)
    _naive.assert_close(np.asarray(out), want, what="jax out")
    _naive.assert_close(np.asarray(lse), wl, what="jax lse")
    do = jnp.asarray(rng.standard_normal(out.shape).astype(np.float32))
    dq, dk, dv = mfa.attention_backward(q, k, v, out, do, lse, causal=True)
    ng = _naive.backward(qn, kn, vn, np.asarray(do), causal=True)
    for got, nv, what in ((dq, ng[0], "dq"), (dk, ng[1], "dk"), (dv, ng[2], "dv")):
        assert type(got) is type(q)
        _naive.assert_close(np.asarray(got), nv, backward=True, what=what)


def test_jax_bfloat16_and_outputs_are_fresh(rng):
    a = [jnp.asarray(rng.standard_normal((1, 6, 2, 8)).astype(np.float32)).astype(jnp.bfloat16) for _ in range(2)]
    o1 = mfa.attention(a[0], a[0], a[0])
    keep = np.asarray(o1.astype(jnp.float32))
    o2 = mfa.attention(a[1], a[1], a[1])
    assert o1.dtype == jnp.bfloat16 and o1.unsafe_buffer_pointer() != o2.unsafe_buffer_pointer()
    np.testing.assert_array_equal(np.asarray(o1.astype(jnp.float32)), keep)
