"""PyTorch on CUDA, for the lent GPU (skipped without torch, a GPU, or libmfa's CUDA plugin):
the drop-in and flash_attn_func against PyTorch's math backend in float64 (forward and
gradients), zero-copy by pointer identity, the current (non-default) stream, CUDA-graph capture of
a forward call, and torch.compile (Inductor) of a module using the drop-in.

Run on the GPU machine from the repository root:
    pip install ./bindings/python && python -m pytest bindings/python/tests/test_torch_cuda.py -v
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
import mfa  # noqa: E402

if not torch.cuda.is_available():
    pytest.skip("no CUDA device for torch", allow_module_level=True)
if not mfa.cuda_available():
    pytest.skip("libmfa has no usable CUDA backend here (plugin missing or no driver)", allow_module_level=True)

import _naive  # noqa: E402
from _torchcheck import check_against_math, math_sdpa  # noqa: E402

import mfa.torch as mt  # noqa: E402

DEV = "cuda"
# Bounds: 4x tests/check/tolerance.h's (see _naive.tolerance). These tests check the plumbing
# (tensors, strides, streams, graphs, compile); the CUDA kernels' own accuracy is checked by the
# C case table on the GPU. Larger shapes and scales than the CPU tests' give fp32 scores of
# magnitude ~10, whose rounding exp() turns into relative errors past 1e-5.
TOL = 4.0
TDTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def rand(*shape, dtype=torch.float32):
    return torch.randn(*shape, device=DEV).to(dtype)


@pytest.fixture(autouse=True)
def _seed(rng):
    torch.manual_seed(int(rng.integers(2 ** 31)))


@pytest.mark.parametrize("name", list(TDTYPES))
@pytest.mark.parametrize("d", [64, 128])
@pytest.mark.parametrize("case", [dict(), dict(is_causal=True), dict(scale=0.3)], ids=str)
@pytest.mark.parametrize("lens", [(257, 301), (301, 257), (1, 64)], ids=str)
def test_sdpa_matches_math(name, d, case, lens):
    sq, skv = lens
    dt = TDTYPES[name]
    check_against_math(rand(2, 4, sq, d, dtype=dt), rand(2, 4, skv, d, dtype=dt), rand(2, 4, skv, d, dtype=dt),
                       name, tol=TOL, **case)


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_sdpa_masks_and_gqa(kind):
    shape = (2, 1, 200, 333)
    mask = torch.rand(shape, device=DEV) < 0.7 if kind == "bool" else torch.randn(shape, device=DEV)
    check_against_math(rand(2, 8, 200, 64, dtype=torch.bfloat16), rand(2, 2, 333, 64, dtype=torch.bfloat16),
                       rand(2, 2, 333, 64, dtype=torch.bfloat16), "bfloat16", attn_mask=mask.to(torch.bfloat16)
                       if kind == "float" else mask, enable_gqa=True, tol=TOL)


def test_zero_copy_and_device(calls):
    x = rand(2, 300, 3 * 8 * 64, dtype=torch.float16)
    q, k, v = x.view(2, 300, 3, 8, 64).permute(2, 0, 3, 1, 4).unbind(0)
    out = mt.scaled_dot_product_attention(q, k, v, is_causal=True)
    p = calls[-1][1]
    assert (p.q.data, p.k.data, p.v.data, p.o.data) == (q.data_ptr(), k.data_ptr(), v.data_ptr(), out.data_ptr())
    assert out.device == q.device and out.dtype == q.dtype
    o2 = mfa.attention(q, k, v, layout="bhsd")
    assert o2.is_cuda and o2.device == q.device


def test_runs_on_the_current_stream():
    # Inputs are produced on a side stream and consumed there with no synchronisation: a call
    # queued on any other stream could read them before they are written.
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        q, k, v = (torch.randn(4, 8, 1024, 128, device=DEV, dtype=torch.bfloat16) for _ in range(3))
        out = mt.scaled_dot_product_attention(q, k, v, is_causal=True)
        q2 = q * 2  # queued after the call on the same stream
    assert mfa._context.default_context(q.device.index)._stream == s.cuda_stream
    s.synchronize()
    want = math_sdpa(q.double(), k.double(), v.double(), is_causal=True)
    _naive.assert_close(out.double().cpu().numpy(), want.cpu().numpy(), "bfloat16", scale_tol=TOL)
    del q2
    # Back on the default stream: the context follows.
    out_default = mt.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out_default, out)


def test_cuda_graph_capture_of_a_forward():
    q, k, v = (torch.randn(2, 8, 512, 64, device=DEV, dtype=torch.float16) for _ in range(3))
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):  # warm up on the capture stream (the context's stream is then s)
        for _ in range(2):
            mt.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g, stream=s):
        out = mt.scaled_dot_product_attention(q, k, v, is_causal=True)
    for _ in range(2):
        for t in (q, k, v):
            t.copy_(torch.randn_like(t))
        g.replay()
        torch.cuda.synchronize()
        want = math_sdpa(q.double(), k.double(), v.double(), is_causal=True)
        _naive.assert_close(out.double().cpu().numpy(), want.cpu().numpy(), "float16", scale_tol=TOL)


def test_torch_compile_inductor_module():
    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = torch.nn.Linear(256, 768)
            self.proj = torch.nn.Linear(256, 256)

        def forward(self, x):
            b, n, _ = x.shape
            q, k, v = self.qkv(x).view(b, n, 3, 4, 64).permute(2, 0, 3, 1, 4).unbind(0)
            y = mt.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.proj(y.transpose(1, 2).reshape(b, n, 256))

    torch._dynamo.reset()
    m = Block().to(DEV, torch.bfloat16)
    x = torch.randn(2, 384, 256, device=DEV, dtype=torch.bfloat16, requires_grad=True)
    want = m(x)
    want.float().sum().backward()
    gw = m.qkv.weight.grad.clone()
    m.qkv.weight.grad = None
    cm = torch.compile(m)  # Inductor; a graph break would be acceptable, a wrong result is not
    got = cm(x)
    got.float().sum().backward()
    torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(m.qkv.weight.grad, gw, rtol=5e-2, atol=5e-2)


@pytest.mark.parametrize("case", [dict(causal=True), dict(window_size=(64, 0)), dict(softcap=20.0)], ids=str)
def test_flash_attn_func(case):
    q = rand(2, 300, 8, 128, dtype=torch.bfloat16).requires_grad_()
    k = rand(2, 400, 2, 128, dtype=torch.bfloat16).requires_grad_()
    v = rand(2, 400, 2, 128, dtype=torch.bfloat16).requires_grad_()
    out, lse, _ = mfa.flash_attn_func(q, k, v, return_attn_probs=True, **case)
    f = lambda t: t.detach().double().cpu().numpy()  # noqa: E731
    masks = dict(causal=case.get("causal", False), align="bottom_right", window=case.get("window_size", (-1, -1)))
    n, nl = _naive.forward(f(q), f(k), f(v), softcap=case.get("softcap", 0.0), **masks)
    _naive.assert_close(f(out), n, "bfloat16", what="out", scale_tol=TOL)
    _naive.assert_close(f(lse), nl, "float32", what="lse", scale_tol=100)  # lse from bf16 inputs' fp32 math
    g = torch.randn_like(out)
    out.backward(g)
    ng = _naive.backward(f(q), f(k), f(v), f(g), softcap=case.get("softcap", 0.0), **masks)
    for t, want, what in ((q, ng[0], "dq"), (k, ng[1], "dk"), (v, ng[2], "dv")):
        _naive.assert_close(f(t.grad), want, "bfloat16", backward=True, what=what, scale_tol=TOL)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="one GPU")
def test_second_device():
    with torch.cuda.device(1):
        q = torch.randn(1, 2, 128, 64, device="cuda:1", dtype=torch.float16)
        out = mt.scaled_dot_product_attention(q, q, q)
    assert out.device == q.device
    want = math_sdpa(q.double(), q.double(), q.double())
    _naive.assert_close(out.double().cpu().numpy(), want.cpu().numpy(), "float16", scale_tol=TOL)
