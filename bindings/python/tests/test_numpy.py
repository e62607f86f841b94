"""numpy on the cpu backend: every option against libmfa's float64 reference backend (through
the package) and against the independent numpy float64 implementation in _naive.py; outputs
poisoned (NaN) before each call; inputs shown to reach libmfa without a copy."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import dtypes

import _naive
import mfa

DTYPES = dtypes()
DT_IDS = [n for _, n in DTYPES]


def qkv(rng, dtype, b=2, sq=13, skv=17, hq=4, hkv=2, d=24, dv=None, layout="bshd"):
    dv = d if dv is None else dv
    shp = (lambda s, h, e: (b, s, h, e)) if layout == "bshd" else (lambda s, h, e: (b, h, s, e))
    return (_naive.randn(rng, shp(sq, hq, d), dtype), _naive.randn(rng, shp(skv, hkv, d), dtype),
            _naive.randn(rng, shp(skv, hkv, dv), dtype))


def to_bshd(x, layout):
    return x if layout == "bshd" else np.swapaxes(x, 1, 2)


CASES = [
    dict(),
    dict(causal=True),
    dict(causal=True, causal_align="bottom_right"),
    dict(window=(5, 2)),
    dict(window=(3, -1), causal_align="bottom_right"),
    dict(window=(4, 3), causal=True),
    dict(softcap=5.0),
    dict(scale=0.3),
]


@pytest.mark.parametrize("dtype,name", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("layout", ["bshd", "bhsd"])
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_forward(rng, ref_ctx, dtype, name, layout, case):
    q, k, v = qkv(rng, dtype, layout=layout, dv=16)
    out = np.full_like(to_bshd(q, layout)[..., :16], np.nan)
    out = to_bshd(out, layout) if layout == "bhsd" else out
    out = np.ascontiguousarray(out)
    lse = np.full((2, 4, 13), np.nan, dtype=np.float32)
    o, l = mfa.attention(q, k, v, layout=layout, return_lse=True, out=out, lse=lse, **case)
    assert o is out and l is lse
    r, rl = mfa.attention(q, k, v, layout=layout, return_lse=True, context=ref_ctx, **case)
    _naive.assert_close(o, r, name, what="out vs reference backend")
    _naive.assert_close(l, rl, "float32", what="lse vs reference backend")
    # The independent implementation, from the same (rounded) inputs.
    masks = {kk: vv for kk, vv in case.items() if kk in ("causal", "window")}
    if "causal_align" in case:
        masks["align"] = case["causal_align"]
    n, nl = _naive.forward(to_bshd(q, layout), to_bshd(k, layout), to_bshd(v, layout),
                           scale=case.get("scale"), softcap=case.get("softcap", 0.0), **masks)
    _naive.assert_close(to_bshd(o, layout), n, name, what="out vs numpy float64")
    _naive.assert_close(l, nl, "float32", what="lse vs numpy float64")


@pytest.mark.parametrize("dtype,name", DTYPES, ids=DT_IDS)
@pytest.mark.parametrize("case", [dict(), dict(causal=True), dict(window=(4, 1), causal_align="bottom_right"),
                                  dict(softcap=3.0, causal=True)], ids=str)
def test_backward(rng, ref_ctx, dtype, name, case):
    q, k, v = qkv(rng, dtype, sq=11, skv=14, dv=16)
    o, l = mfa.attention(q, k, v, return_lse=True, **case)
    do = _naive.randn(rng, o.shape, dtype)
    grads = [np.full_like(t, np.nan) for t in (q, k, v)]
    dq, dk, dv = mfa.attention_backward(q, k, v, o, do, l, dq=grads[0], dk=grads[1], dv=grads[2], **case)
    assert dq is grads[0] and dk is grads[1] and dv is grads[2]
    ro, rl = mfa.attention(q, k, v, return_lse=True, context=ref_ctx, **case)
    rdq, rdk, rdv = mfa.attention_backward(q, k, v, ro, do, rl, context=ref_ctx, **case)
    masks = {kk: vv for kk, vv in case.items() if kk in ("causal", "window")}
    if "causal_align" in case:
        masks["align"] = case["causal_align"]
    ndq, ndk, ndv = _naive.backward(q, k, v, do, softcap=case.get("softcap", 0.0), **masks)
    for got, want, nv, what in ((dq, rdq, ndq, "dq"), (dk, rdk, ndk, "dk"), (dv, rdv, ndv, "dv")):
        _naive.assert_close(got, want, name, backward=True, what=what + " vs reference backend")
        _naive.assert_close(got, nv, name, backward=True, what=what + " vs numpy float64")


MASK_SHAPES = [(17,), (13, 17), (1, 13, 17), (4, 13, 17), (2, 1, 13, 17), (2, 4, 13, 17), (2, 4, 1, 17)]


@pytest.mark.parametrize("shape", MASK_SHAPES, ids=str)
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_attn_mask_broadcasts_without_copy(rng, ref_ctx, calls, shape, kind):
    q, k, v = qkv(rng, np.float32)
    if kind == "bool":
        mask = rng.random(shape) < 0.7
    else:
        mask = np.where(rng.random(shape) < 0.2, -np.inf, rng.standard_normal(shape)).astype(np.float32)
    o, l = mfa.attention(q, k, v, attn_mask=mask, return_lse=True)
    p = calls[-1][1]
    assert p.attn_mask.data == mask.ctypes.data  # the mask itself, not a broadcast copy
    full = (2, 4, 13, 17)
    padded = (1,) * (4 - len(shape)) + shape
    assert [s for s, n, t in zip(p.attn_mask.stride, padded, full) if n != t] == [0] * sum(
        n != t for n, t in zip(padded, full))
    r, rl = mfa.attention(q, k, v, attn_mask=mask, return_lse=True, context=ref_ctx)
    _naive.assert_close(o, r, what="out vs reference")
    n, nl = _naive.forward(q, k, v, mask=mask)
    _naive.assert_close(o, n, what="out vs numpy float64")
    _naive.assert_close(l, nl, what="lse vs numpy float64")


def test_block_mask(rng, ref_ctx):
    q, k, v = qkv(rng, np.float32, sq=40, skv=50)
    bm = rng.random((4, 3, 4)) < 0.6  # [heads, rows, cols], blocks of 16 x 16 (inferred)
    bm[:, 0, 0] = True
    o = mfa.attention(q, k, v, block_mask=bm)
    r = mfa.attention(q, k, v, block_mask=bm, context=ref_ctx)
    _naive.assert_close(o, r, what="block mask vs reference")
    n, _ = _naive.forward(q, k, v, block_mask=bm, block=(14, 13))
    _naive.assert_close(o, n, what="block mask vs numpy float64")
    o2 = mfa.attention(q, k, v, block_mask=bm, block_size=(14, 13))
    _naive.assert_close(o2, n, what="explicit block size")


def test_fully_masked_rows_give_zero_and_minus_inf(rng):
    q, k, v = qkv(rng, np.float32, sq=5, skv=3)
    o, l = mfa.attention(q, k, v, causal=True, causal_align="bottom_right", return_lse=True)
    # bottom-right with 5 queries over 3 keys: rows 0 and 1 see no key.
    assert np.all(o[:, :2] == 0) and np.all(np.isneginf(l[:, :, :2]))
    assert np.all(np.isfinite(o)) and np.all(np.isfinite(l[:, :, 2:]))


def test_strided_inputs_pass_without_copy(rng, ref_ctx, calls):
    base = rng.standard_normal((2, 20, 4, 3, 48)).astype(np.float32)
    q = base[:, 3:16, :, 0, :24]          # non-contiguous slices of a bigger tensor
    k = base[:, :17, ::2, 1, 24:]         # every other head
    v = base[:, ::-1][:, :17, 1::2, 2, :]  # reversed sequence (negative stride), dim 48
    o = mfa.attention(q, k, v)
    p = calls[-1][1]
    assert (p.q.data, p.k.data, p.v.data) == (q.ctypes.data, k.ctypes.data, v.ctypes.data)
    assert list(p.v.stride)[1] < 0
    _naive.assert_close(o, mfa.attention(q, k, v, context=ref_ctx), what="strided")
    _naive.assert_close(o, _naive.forward(q, k, v)[0], what="strided vs numpy")


def test_gqa_and_mqa(rng, ref_ctx):
    for hkv in (1, 2, 4):
        q, k, v = qkv(rng, np.float32, hq=4, hkv=hkv)
        _naive.assert_close(mfa.attention(q, k, v, causal=True), _naive.forward(q, k, v, causal=True)[0],
                            what=f"hkv={hkv}")


def test_varlen(rng, ref_ctx):
    lens_q, lens_k = [3, 0, 7, 5], [4, 2, 7, 9]
    cq, ck = np.cumsum([0] + lens_q).astype(np.int32), np.cumsum([0] + lens_k).astype(np.int32)
    q = _naive.randn(rng, (cq[-1], 4, 16), np.float32)
    k = _naive.randn(rng, (ck[-1], 2, 16), np.float32)
    v = _naive.randn(rng, (ck[-1], 2, 8), np.float32)
    kw = dict(causal=True, causal_align="bottom_right")
    out = np.full((cq[-1], 4, 8), np.nan, np.float32)
    lse = np.full((4, cq[-1]), np.nan, np.float32)
    o, l = mfa.attention_varlen(q, k, v, cq, ck, return_lse=True, out=out, lse=lse, **kw)
    do = _naive.randn(rng, o.shape, np.float32)
    dq, dk, dv = mfa.attention_varlen_backward(q, k, v, o, do, l, cq, ck, **kw)
    for bi in range(4):
        a, z, ka, kz = cq[bi], cq[bi + 1], ck[bi], ck[bi + 1]
        sl = lambda x, s, e: x[s:e][None]  # noqa: E731
        n, nl = _naive.forward(sl(q, a, z), sl(k, ka, kz), sl(v, ka, kz), causal=True, align="bottom_right")
        _naive.assert_close(o[a:z][None], n, what=f"varlen out seq {bi}")
        _naive.assert_close(l[:, a:z][None], nl, what=f"varlen lse seq {bi}")
        g = _naive.backward(sl(q, a, z), sl(k, ka, kz), sl(v, ka, kz), sl(do, a, z), causal=True, align="bottom_right")
        for got, want, what in ((dq[a:z], g[0], "dq"), (dk[ka:kz], g[1], "dk"), (dv[ka:kz], g[2], "dv")):
            _naive.assert_close(got[None], want, backward=True, what=f"varlen {what} seq {bi}")


def test_head_dim_v_differs_and_fp16_output(rng, ref_ctx):
    q, k, v = qkv(rng, np.float16, d=32, dv=8)
    o = mfa.attention(q, k, v)
    assert o.dtype == np.float16 and o.shape == (2, 13, 4, 8)
    _naive.assert_close(o, mfa.attention(q, k, v, context=ref_ctx), "float16")


def test_dlpack_only_objects(rng, ref_ctx, calls):
    class OnlyDLPack:  # what a JAX / CuPy host array looks like to us
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    q, k, v = qkv(rng, np.float32)
    qs = q[:, ::2]  # strided: DLPack carries strides
    o = mfa.attention(OnlyDLPack(qs), OnlyDLPack(k), OnlyDLPack(v))
    assert isinstance(o, np.ndarray)
    assert calls[-1][1].q.data == qs.ctypes.data
    _naive.assert_close(o, mfa.attention(qs, k, v, context=ref_ctx), what="dlpack")


def test_context_object(rng, ref_ctx):
    q, k, v = qkv(rng, np.float32)
    with mfa.Context("cpu", threads=1) as ctx:
        assert ctx.backend == "cpu" and ctx.num_threads == 1 and "cpu" in ctx.description
        _naive.assert_close(ctx.attention(q, k, v), mfa.attention(q, k, v, context=ref_ctx))
        assert ctx.supported(q, k, v)
        assert not ctx.supported(q, k, v, softcap=-1.0)
    with pytest.raises(mfa.InvalidArgumentError, match="closed"):
        mfa.attention(q, k, v, context=ctx)
    assert ref_ctx.backend == "reference"


def test_threads_share_nothing(rng):
    # Default contexts are per thread; an explicit one is locked per call. Both give the answer.
    import concurrent.futures as cf
    q, k, v = qkv(rng, np.float32)
    want = mfa.attention(q, k, v)
    shared = mfa.Context("cpu", threads=1)
    with cf.ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(lambda i: mfa.attention(q, k, v, context=shared if i % 2 else None), range(16)))
    for o in outs:
        np.testing.assert_array_equal(o, want)


def test_backward_softcap_causal_ignores_stale_scratch(rng):
    # Scratch memory the library mallocs may hold anything; NaN left in freed heap memory must
    # not reach the gradients. (Found by the poisoned-output tests, which failed intermittently.)
    q, k, v = qkv(rng, np.float32, sq=11, skv=14)
    kw = dict(softcap=3.0, causal=True)
    o, l = mfa.attention(q, k, v, return_lse=True, **kw)
    do = _naive.randn(rng, o.shape, np.float32)
    for size in (1 << 10, 1 << 12, 1 << 14, 1 << 16, 1 << 18, 1 << 20):
        junk = np.full(size, np.nan, np.float32)  # freed: malloc may hand this memory out next
        del junk
    dq, dk, dv = mfa.attention_backward(q, k, v, o, do, l, **kw)
    assert np.isfinite(dq).all() and np.isfinite(dk).all() and np.isfinite(dv).all()
