#!/usr/bin/env python3
"""fp32_err.py — accuracy of the fp32 forward (3xTF32 and allow_tf32) against a float64 torch
reference, ||o - ref|| / ||ref|| and the largest |o - ref| / rms(ref), on random inputs.

    python3 bench/gpu/fp32_err.py --lib build-gpu
"""
import argparse
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mfa_ctypes import Mfa  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build-gpu")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    mfa = Mfa(args.lib)
    mfa.set_stream(torch.cuda.current_stream().cuda_stream)
    print(f"{'shape (B, S, H, D)':24} {'causal':6} {'scale*std':9} {'mode':6} {'rel.err':>9} {'max/rms':>9} {'torch fp32 rel.err':>18}")
    for (B, S, H, D), causal, std in (((1, 4096, 4, 128), False, 1.0), ((1, 4096, 4, 128), True, 1.0),
                                       ((1, 1024, 4, 64), False, 1.0), ((1, 1024, 4, 128), False, 4.0),
                                       ((1, 2048, 2, 256), False, 1.0)):
        g = torch.Generator(device="cuda").manual_seed(1)
        q, k, v = (torch.randn(B, S, H, D, device="cuda", generator=g) for _ in range(3))
        q = q * std
        ref = F.scaled_dot_product_attention(*(t.transpose(1, 2).double() for t in (q, k, v)),
                                             is_causal=causal).transpose(1, 2)
        t32 = F.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v)),
                                             is_causal=causal).transpose(1, 2).double()
        rms = ref.pow(2).mean().sqrt()
        terr = ((t32 - ref).norm() / ref.norm()).item()
        for tf32 in (False, True):
            o = torch.full_like(q, float("nan"))
            mfa.fwd(mfa.params(q, k, v, o, causal=causal, allow_tf32=tf32))
            torch.cuda.synchronize()
            d = o.double() - ref
            print(f"{str((B, S, H, D)):24} {str(causal):6} {std:9.1f} {'tf32' if tf32 else '3xtf32':6} "
                  f"{(d.norm() / ref.norm()).item():9.2e} {(d.abs().max() / rms).item():9.2e} {terr:18.2e}")


if __name__ == "__main__":
    main()
