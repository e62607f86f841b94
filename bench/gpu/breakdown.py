#!/usr/bin/env python3
"""breakdown.py — where a libmfa forward+backward spends its GPU time, kernel by kernel, next to
torch's flash backend on the same inputs (torch.profiler's CUDA activity, averaged over runs).

    python3 bench/gpu/breakdown.py --lib build-gpu [--shapes 16,1024,16,128 1,16384,8,256 ...] [--causal]
"""
import argparse
import collections
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mfa_ctypes import Mfa  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--lib", default="build-gpu")
ap.add_argument("--shapes", nargs="+", default=["16,1024,16,128", "1,16384,16,128", "16,1024,8,256",
                                                 "1,16384,8,256", "16,1024,32,64", "1,16384,32,64"])
ap.add_argument("--causal", action="store_true")
ap.add_argument("--runs", type=int, default=10)
args = ap.parse_args()
mfa = Mfa(args.lib)
mfa.set_stream(torch.cuda.current_stream().cuda_stream)


def kernel_times(fn):
    """{short kernel name: microseconds per run}, and the sum."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(args.runs):
            fn()
        torch.cuda.synchronize()
    t = collections.defaultdict(float)
    for e in prof.events():
        if e.device_type == torch.autograd.DeviceType.CUDA:
            name = e.name.split("(")[0].split("<")[0].replace("void ", "")[:48]
            t[name] += e.device_time / args.runs
    return t


for shape in args.shapes:
    B, S, H, D = map(int, shape.split(","))
    q, k, v, do = (torch.randn(B, S, H, D, device="cuda", dtype=torch.bfloat16) for _ in range(4))
    o, dq, dk, dv = (torch.empty_like(q) for _ in range(4))
    lse = torch.empty(B, H, S, device="cuda", dtype=torch.float32)
    pf = mfa.params(q, k, v, o, lse=lse, causal=args.causal)
    pb = mfa.params(q, k, v, o, lse=lse, causal=args.causal, dout=do, dq=dq, dk=dk, dv=dv)
    mfa.fwd(pf)
    mine = kernel_times(lambda: mfa.bwd(pb))
    qt, kt, vt = (x.transpose(1, 2).detach().requires_grad_(True) for x in (q, k, v))
    dot = do.transpose(1, 2)

    def flash_bwd():
        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            out = F.scaled_dot_product_attention(qt, kt, vt, is_causal=args.causal)
        out.backward(dot)
    theirs = kernel_times(flash_bwd)
    for t in (qt, kt, vt):
        t.grad = None
    flash_bwd()
    err = max(((x.float() - y.grad.transpose(1, 2).float()).norm() / y.grad.float().norm()).item()
              for x, y in ((dq, qt), (dk, kt), (dv, vt)))
    pairs = S * (S + 1) / 2 if args.causal else S * S
    bwd_flops = 2.5 * 4 * B * H * pairs * D
    print(f"== {shape} {'causal' if args.causal else 'full'} backward (bf16)")
    for label, t in (("libmfa", mine), ("flash (fwd+bwd)", theirs)):
        for name, us in sorted(t.items(), key=lambda x: -x[1]):
            print(f"  {label:16s} {name:48s} {us:9.1f} us")
        print(f"  {label:16s} {'total':48s} {sum(t.values()):9.1f} us")
    main = max(mine.values())
    print(f"  libmfa main kernel {bwd_flops / main / 1e6:.1f} TFLOP/s over the backward's FLOPs; "
          f"max rel. diff of dq, dk, dv vs flash {err:.1e}")
