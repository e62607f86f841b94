#!/usr/bin/env python3
"""profile_one.py — one libmfa forward and backward on one shape, for ncu / compute-sanitizer.

    ncu --kernel-name regex:fwd_kernel --launch-count 1 python3 bench/gpu/profile_one.py --lib build-gpu
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mfa_ctypes import Mfa  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--lib", default="build")
ap.add_argument("--shape", default="4,4096,16,128", help="B,S,H,D")
ap.add_argument("--causal", action="store_true")
ap.add_argument("--determinism", action="store_true",
                help="also check that deterministic=1 gives bitwise-equal gradients twice and matches the default")
args = ap.parse_args()
B, S, H, D = map(int, args.shape.split(","))
mfa = Mfa(args.lib)
mfa.set_stream(torch.cuda.current_stream().cuda_stream)
q, k, v, do = (torch.randn(B, S, H, D, device="cuda", dtype=torch.bfloat16) for _ in range(4))
o, dq, dk, dv = (torch.empty_like(q) for _ in range(4))
lse = torch.empty(B, H, S, device="cuda", dtype=torch.float32)
mfa.fwd(mfa.params(q, k, v, o, lse=lse, causal=args.causal))
mfa.bwd(mfa.params(q, k, v, o, lse=lse, causal=args.causal, dout=do, dq=dq, dk=dk, dv=dv))
torch.cuda.synchronize()
print("ok", o.float().abs().mean().item(), dq.float().abs().mean().item())
if args.determinism:
    runs = []
    for _ in range(2):
        g = [torch.full_like(q, float("nan")) for _ in range(3)]
        p = mfa.params(q, k, v, o, lse=lse, causal=args.causal, dout=do, dq=g[0], dk=g[1], dv=g[2])
        p.deterministic = 1
        mfa.bwd(p)
        torch.cuda.synchronize()
        runs.append(g)
    same = all(torch.equal(x, y) for x, y in zip(runs[0], runs[1]))
    err = max(((x.float() - y.float()).norm() / y.float().norm()).item() for x, y in zip(runs[0], (dq, dk, dv)))
    print(f"deterministic backward: bitwise equal across runs: {same}; max rel. diff vs default: {err:.2e}")
