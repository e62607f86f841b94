#!/usr/bin/env python3
"""sdpa_gpu.py — the drop-in against PyTorch's default scaled_dot_product_attention on the GPU,
over the anchor grid of the CUDA issue (shared/ANCHORS.md): bf16, batch * seq = 16k tokens,
heads * head_dim = 2048, forward; forward + backward at D=128 S=16k; the fp32 forward.

For each shape it times, in the same process on the same GPU:
  torch   torch.nn.functional.scaled_dot_product_attention as PyTorch picks its backend
  mfa     mfa.torch.scaled_dot_product_attention (libmfa's CUDA backend, through the package)
and, with --backends, each PyTorch backend alone (flash, cuDNN, efficient, math where it fits).
It checks that the drop-in really ran on libmfa (no fallback) and how far its output is from
PyTorch's, prints a table (ms, TFLOP/s, mfa / torch speed ratio) and writes JSON with the device,
versions, clocks and date.

FLOPs = 4 * B * H * S^2 * D forward (half for causal), backward 2.5x forward. Times: median of
triton.testing.do_bench when triton is installed (as the anchors were measured), else of CUDA
events over --iters runs after warm-up.

Usage (GPU machine, repository root, after `pip install ./bindings/python`):
    python bindings/python/bench/sdpa_gpu.py [--backends] [--json results.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
from pathlib import Path

import torch

import mfa
import mfa.torch as mt

TOKENS, WIDTH = 16384, 2048
# (head_dim, seq, causal, direction, dtype): the anchor grid.
GRID = [(64, 1024, False, "fwd", "bf16"), (64, 16384, False, "fwd", "bf16"), (64, 16384, True, "fwd", "bf16"),
        (128, 1024, False, "fwd", "bf16"), (128, 4096, False, "fwd", "bf16"), (128, 16384, False, "fwd", "bf16"),
        (128, 16384, True, "fwd", "bf16"), (256, 16384, False, "fwd", "bf16"), (256, 16384, True, "fwd", "bf16"),
        (128, 16384, False, "fwd+bwd", "bf16"), (128, 16384, True, "fwd+bwd", "bf16"),
        (128, 4096, False, "fwd", "fp32")]
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def timer(iters):
    try:
        from triton.testing import do_bench
        return lambda fn: do_bench(fn, warmup=25, rep=100, return_mode="median"), "triton.testing.do_bench (median)"
    except ImportError:
        pass

    def events(fn):
        for _ in range(3):
            fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(iters):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
        times.sort()
        return times[len(times) // 2]
    return events, f"CUDA events, median of {iters}"


def shape_of(d, s, dtype):
    b, h = (TOKENS // s, WIDTH // d) if dtype != "fp32" else (4, 16)  # fp32 anchor: (4, 16, 4096, 128)
    return b, h, s, d


def flops(b, h, s, d, causal, direction):
    f = 4.0 * b * h * s * s * d * (0.5 if causal else 1.0)
    return f * (3.5 if direction == "fwd+bwd" else 1.0)


def run_one(fn, q, k, v, causal, direction):
    if direction == "fwd":
        return lambda: fn(q, k, v, is_causal=causal)
    g = torch.randn_like(q)

    def step():
        q.grad = k.grad = v.grad = None
        fn(q, k, v, is_causal=causal).backward(g)
    return step


def torch_backend(name):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    be = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
          "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}[name]

    def fn(q, k, v, is_causal):
        with sdpa_kernel(be):
            return mt._torch_sdpa(q, k, v, is_causal=is_causal)
    return fn


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", action="store_true", help="also time each PyTorch backend alone")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--json", help="where to write the results (default: bench/results/ beside this script)")
    args = ap.parse_args()
    if not torch.cuda.is_available() or not mfa.cuda_available():
        sys.exit("sdpa_gpu: needs a CUDA GPU for torch and libmfa's CUDA backend (mfa.cuda_available())")
    bench, how = timer(args.iters)
    dev = torch.device("cuda")
    torch.manual_seed(0)
    peers = {"torch": mt._torch_sdpa, "mfa": mt.scaled_dot_product_attention}
    if args.backends:
        peers.update({f"torch {n}": torch_backend(n) for n in ("flash", "cudnn", "efficient")})

    rows = []
    print(f"{torch.cuda.get_device_name()} | torch {torch.__version__} | libmfa {mfa.library_version} | {how}")
    head = f"{'shape (B, H, S, D)':22} {'causal':6} {'dir':8} {'dtype':5}"
    for name in peers:
        head += f" | {name + ' ms':>12} {'TFLOP/s':>7}"
    print(head + " | mfa/torch | max|mfa-torch|")
    for d, s, causal, direction, dt in GRID:
        b, h, s, d = shape_of(d, s, dt)
        dtype = DTYPES[dt]
        grad = direction == "fwd+bwd"
        q, k, v = (torch.randn(b, h, s, d, device=dev, dtype=dtype, requires_grad=grad) for _ in range(3))
        f = flops(b, h, s, d, causal, direction)
        row = {"shape": [b, h, s, d], "causal": causal, "direction": direction, "dtype": dt, "flops": f}
        with torch.no_grad():
            ref = mt._torch_sdpa(q, k, v, is_causal=causal)
            mt.reset_stats()
            got = mt.scaled_dot_product_attention(q, k, v, is_causal=causal)
            row["max_abs_diff"] = (got.float() - ref.float()).abs().max().item()
        line = f"{str((b, h, s, d)):22} {str(causal):6} {direction:8} {dt:5}"
        for name, fn in peers.items():
            try:
                ms = bench(run_one(fn, q, k, v, causal, direction))
                row[name] = {"ms": ms, "tflops": f / ms / 1e9}
                line += f" | {ms:12.3f} {f / ms / 1e9:7.1f}"
            except RuntimeError as e:  # a PyTorch backend that refuses this shape / dtype
                row[name] = {"error": str(e).splitlines()[0]}
                line += f" | {'refused':>12} {'':>7}"
        st = mt.stats()
        row["mfa_fallbacks"] = st["fallback"]
        ratio = row["torch"]["ms"] / row["mfa"]["ms"] if "ms" in row["torch"] and "ms" in row["mfa"] else None
        row["speed_ratio_mfa_over_torch"] = ratio
        flag = "  FALLBACK: " + ", ".join(st["reasons"]) if st["fallback"] else ""
        print(line + f" | {ratio:9.2f} | {row['max_abs_diff']:.2e}{flag}" if ratio else line + flag)
        rows.append(row)
        del q, k, v, ref, got
        torch.cuda.empty_cache()

    result = {"what": "mfa.torch.scaled_dot_product_attention vs torch's default SDPA, anchor grid",
              "date": datetime.datetime.now().isoformat(timespec="seconds"),
              "device": torch.cuda.get_device_name(), "clocks": _clocks(), "torch": torch.__version__,
              "cuda": torch.version.cuda, "libmfa": ".".join(map(str, mfa.library_version)), "timer": how,
              "rows": rows}
    out = Path(args.json) if args.json else Path(__file__).resolve().parent / "results" / \
        f"sdpa_gpu-{datetime.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    slower = [r for r in rows if r["speed_ratio_mfa_over_torch"] is not None and r["speed_ratio_mfa_over_torch"] < 1.0]
    print(f"drop-in at least as fast as torch's default on {len(rows) - len(slower)} of {len(rows)} shapes")


def _clocks():
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=clocks.sm,clocks.mem,clocks.max.sm,power.limit",
                               "--format=csv,noheader"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    main()
