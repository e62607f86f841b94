"""Error paths: each raises the mfa.Error subclass of its status code, carrying libmfa's own
message (which names the argument and the value), or, for shapes only Python sees, a message in
the same style. Nothing is written to a preallocated output when a call is refused."""

from __future__ import annotations

import numpy as np
import pytest

import mfa


@pytest.fixture
def qkv(rng):
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    return f(2, 5, 4, 8), f(2, 7, 2, 8), f(2, 7, 2, 8)


def test_c_messages_are_raised(qkv):
    q, k, v = qkv
    with pytest.raises(mfa.InvalidArgumentError, match=r"^softcap=-1 must be 0 \(off\) or a positive finite value$") as e:
        mfa.attention(q, k, v, softcap=-1.0)
    assert e.value.code == 1 and isinstance(e.value, ValueError)
    with pytest.raises(mfa.InvalidArgumentError, match="heads_q=4 is not a multiple of heads_kv=3"):
        mfa.attention(q, np.zeros((2, 7, 3, 8), np.float32), np.zeros((2, 7, 3, 8), np.float32))
    with pytest.raises(mfa.InvalidArgumentError, match=r"window_left=-2 is below -1"):
        mfa.attention(q, k, v, window=(-2, 3))


def test_unsupported_head_dim_names_the_backend(rng):
    q = np.zeros((1, 2, 1, 640), np.float32)
    with pytest.raises(mfa.UnsupportedError, match="head_dim_qk=640 exceeds the cpu backend's maximum") as e:
        mfa.attention(q, q, q)
    assert e.value.code == 7 and isinstance(e.value, NotImplementedError)


def test_block_mask_shape_from_c(qkv):
    q, k, v = qkv
    with pytest.raises(mfa.InvalidArgumentError, match=r"block_mask shape \[2, 2\] does not match"):
        mfa.attention(q, k, v, block_mask=np.ones((2, 2), bool), block_size=(2, 2))


def test_nothing_written_on_error(qkv):
    q, k, v = qkv
    out = np.full((2, 5, 4, 8), 7.0, np.float32)
    with pytest.raises(mfa.Error):
        mfa.attention(q, k, v, out=out, softcap=-1.0)
    assert np.all(out == 7.0)


def test_python_side_shape_checks(qkv):
    q, k, v = qkv
    with pytest.raises(mfa.InvalidArgumentError, match=r"v is \[batch, seq, heads\] \[2, 6, 2\] but must be \[2, 7, 2\]"):
        mfa.attention(q, k, v[:, :6])
    with pytest.raises(mfa.InvalidArgumentError, match=r"k is \[batch, heads, head_dim\]"):
        mfa.attention(q, k[..., :4], v)
    with pytest.raises(mfa.InvalidArgumentError, match=r"q.shape=\(5, 4, 8\): layout 'bshd' wants 4 dims"):
        mfa.attention(q[0], k, v)
    with pytest.raises(mfa.InvalidArgumentError, match=r"layout='sbhd' is not"):
        mfa.attention(q, k, v, layout="sbhd")
    with pytest.raises(mfa.InvalidArgumentError, match=r"out.shape=\(2, 5, 4, 4\) but the result is \(2, 5, 4, 8\)"):
        mfa.attention(q, k, v, out=np.empty((2, 5, 4, 4), np.float32))
    with pytest.raises(mfa.InvalidArgumentError, match="does not broadcast to"):
        mfa.attention(q, k, v, attn_mask=np.ones((3, 7), bool))
    with pytest.raises(mfa.InvalidArgumentError, match="scale=0.0 must be positive"):
        mfa.attention(q, k, v, scale=0.0)
    with pytest.raises(mfa.InvalidArgumentError, match="causal_align='left'"):
        mfa.attention(q, k, v, causal=True, causal_align="left")
    with pytest.raises(mfa.InvalidArgumentError, match="lse must be contiguous"):
        mfa.attention(q, k, v, lse=np.empty((2, 5, 4), np.float32).transpose(0, 2, 1))


def test_dtypes(qkv):
    q, k, v = qkv
    with pytest.raises(mfa.UnsupportedError, match=r"q.dtype=float64 is not supported"):
        mfa.attention(q.astype(np.float64), k, v)
    with pytest.raises(mfa.UnsupportedError, match=r"k.dtype=bool"):
        mfa.attention(q, k.astype(bool), v)
    with pytest.raises(mfa.InvalidArgumentError, match="libmfa takes numpy arrays"):
        mfa.attention(q.tolist(), k, v)
    with pytest.raises(mfa.InvalidArgumentError, match="block_mask has dtype float32"):
        mfa.attention(q, k, v, block_mask=np.ones((1, 1), np.float32))


def test_backward_needs_lse(qkv):
    q, k, v = qkv
    o = mfa.attention(q, k, v)
    with pytest.raises(mfa.NullPointerError, match="lse is None"):
        mfa.attention_backward(q, k, v, o, o, None)
    with pytest.raises(mfa.InvalidArgumentError, match=r"lse.shape=\(2, 5, 4\) but the result is \(2, 4, 5\)"):
        mfa.attention_backward(q, k, v, o, o, np.zeros((2, 5, 4), np.float32))


def test_varlen_offsets_checked_by_c(rng):
    q = rng.standard_normal((6, 2, 8)).astype(np.float32)
    with pytest.raises(mfa.InvalidArgumentError, match=r"cu_seqlens_q\[batch=2\]=5 does not match the packed total seqlen_q=6"):
        mfa.attention_varlen(q, q, q, [0, 2, 5], [0, 3, 6])
    with pytest.raises(mfa.InvalidArgumentError, match="cu_seqlens_kv is not non-decreasing"):
        mfa.attention_varlen(q, q, q, [0, 2, 6], [0, 4, 3])


def test_contexts():
    with pytest.raises(mfa.InvalidArgumentError, match="backend='tpu' is not one of"):
        mfa.Context("tpu")
    with pytest.raises(mfa.InvalidArgumentError, match=r"options->backend=9 is not a backend"):
        mfa.Context(9)
    with pytest.raises(mfa.InvalidArgumentError, match=r"options->num_threads=-1 is negative"):
        mfa.Context("cpu", threads=-1)
    if not mfa.cuda_available():
        with pytest.raises(mfa.DeviceNotSupportedError, match="cuda|libmfa_cuda") as e:
            mfa.Context("cuda")
        assert e.value.code == 3


def test_error_hierarchy():
    for cls, code in ((mfa.InvalidArgumentError, 1), (mfa.MemoryAllocationError, 2), (mfa.DeviceNotSupportedError, 3),
                      (mfa.KernelCompilationError, 4), (mfa.ExecutionError, 5), (mfa.NullPointerError, 6),
                      (mfa.UnsupportedError, 7), (mfa.OutOfBoundsError, 8), (mfa.WrongContextError, 9)):
        assert issubclass(cls, mfa.Error) and cls.code == code
    from mfa._errors import from_code
    e = from_code(99, "from the future")
    assert type(e) is mfa.Error and e.code == 99 and str(e) == "from the future"
