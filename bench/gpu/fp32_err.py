#!/usr/bin/env python3
"""fp32_err.py — accuracy of the fp32 forward (exact: 3xTF32, or on Hopper at d <= 128 the fp16
split; and allow_tf32) against a float64 torch reference, ||o - ref|| / ||ref|| and the largest
|o - ref| / rms(ref), on random inputs: normal, with row / column magnitudes spread over 1e-3..1e3
(q and k rows, v columns: the split's scales), and with v near the ends of fp32's range.

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
    print(f"{'shape (B, S, H, D)':24} {'causal':6} {'scale*std':9} {'inputs':8} {'mode':6} {'rel.err':>9} "
          f"{'max/rms':>9} {'worst row':>9} {'torch fp32 rel.err':>18} {'worst row':>9}")
    for (B, S, H, D), causal, std, kind in (((1, 4096, 4, 128), False, 1.0, "normal"),
                                            ((1, 4096, 4, 128), True, 1.0, "normal"),
                                            ((1, 1024, 4, 64), False, 1.0, "normal"),
                                            ((1, 1024, 4, 128), False, 4.0, "normal"),
                                            ((1, 2048, 2, 256), False, 1.0, "normal"),
                                            ((1, 2048, 4, 128), False, 1.0, "spread"),
                                            ((1, 2048, 4, 64), True, 1.0, "spread"),
                                            ((1, 2048, 4, 128), False, 1.0, "v 1e30"),
                                            ((1, 2048, 4, 128), False, 1.0, "v 1e-30"),
                                            ((1, 2048, 4, 128), False, 1.0, "rows 1e4"),
                                            ((1, 2048, 4, 128), False, 1.0, "rows 1e6"),
                                            ((1, 2048, 4, 128), False, 1.0, "rows 1e8")):
        g = torch.Generator(device="cuda").manual_seed(1)
        q, k, v = (torch.randn(B, S, H, D, device="cuda", generator=g) for _ in range(3))
        q = q * std
        if kind == "spread":  # rows of q and k, columns of v, 10^U(-3, 3) apart
            spread = lambda *shape: 10.0 ** (6 * torch.rand(*shape, device="cuda", generator=g) - 3)
            q = q * spread(B, S, H, 1) / 30
            k = k * spread(B, S, H, 1) / 30
            v = v * spread(B, 1, H, D)
        elif kind.startswith("v "):
            v = v * float(kind[2:])
        elif kind.startswith("rows "):  # one key and value row in 64 `big` times the rest, with
            # scores so low that their weight is 0: the other rows of each 64-key tile carry the
            # output, at 1/big of the tile's largest element (the split scales k, v per tile)
            big = float(kind[5:])
            c = torch.randn(D, device="cuda", generator=g)
            c = c / c.norm()
            q = q + 3 * c  # every query leans on c ...
            k[:, ::64] = -big * c  # ... so q . k_outlier ~ -3 big: weight exp(-big) = 0
            v[:, ::64] *= big
        ref = F.scaled_dot_product_attention(*(t.transpose(1, 2).double() for t in (q, k, v)),
                                             is_causal=causal).transpose(1, 2)
        t32 = F.scaled_dot_product_attention(*(t.transpose(1, 2) for t in (q, k, v)),
                                             is_causal=causal).transpose(1, 2).double()
        rms = ref.pow(2).mean().sqrt()
        terr = ((t32 - ref).norm() / ref.norm()).item()
        # the worst query row, each against its own size (rows of very different sizes hide in
        # the whole tensor's norm)
        row_err = lambda x: ((x - ref).norm(dim=-1) / ref.norm(dim=-1).clamp_min(1e-30)).max().item()  # noqa: E731
        trow = row_err(t32)
        for tf32 in (False, True):
            o = torch.full_like(q, float("nan"))
            mfa.fwd(mfa.params(q, k, v, o, causal=causal, allow_tf32=tf32))
            torch.cuda.synchronize()
            d = o.double() - ref
            print(f"{str((B, S, H, D)):24} {str(causal):6} {std:9.1f} {kind:8} {'tf32' if tf32 else 'exact':6} "
                  f"{(d.norm() / ref.norm()).item():9.2e} {(d.abs().max() / rms).item():9.2e} "
                  f"{row_err(o.double()):9.2e} {terr:18.2e} {trow:9.2e}")


if __name__ == "__main__":
    main()
