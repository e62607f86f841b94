#!/usr/bin/env python3
"""overhead.py — what the Python layer adds to one libmfa call on the CPU.

Times a tiny problem (batch 1, 1 head, seq 1, dim 8, float32, a 1-thread cpu context), where the
attention itself costs well under a microsecond, so the difference between
  - the C call (bench/overhead_c.c: params_init + fill + mfa_attention_fwd, compiled here), and
  - mfa.attention(q, k, v, context=ctx) on numpy arrays, and on torch CPU tensors, and
  - mfa.torch.scaled_dot_product_attention on torch CPU tensors, without and with autograd
    (inputs requiring grad: the forward through torch.autograd.Function), beside PyTorch's own,
is the Python-side overhead per call. Each figure is the best of many short repetitions, in
microseconds of the calling thread's CPU time per call (time.thread_time; the C program uses
CLOCK_THREAD_CPUTIME_ID), so that a shared, loaded machine disturbs the figures least.

Usage: python bindings/python/bench/overhead.py [--json out.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import mfa

HERE = Path(__file__).resolve().parent


def best_us(fn, n=2000, reps=100):
    """Best per-call time over `reps` runs of n calls, in this thread's CPU time (time spent
    descheduled on a shared machine does not count; the C side is timed the same way)."""
    best = float("inf")
    clock = time.thread_time
    for _ in range(reps):
        t = clock()
        for _ in range(n):
            fn()
        best = min(best, (clock() - t) / n)
    return best * 1e6


def c_call_us() -> float | None:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    lib = Path(mfa.library_path)
    inc = lib.parent / "include"
    if not (inc / "mfa.h").is_file():
        inc = HERE.parents[2] / "include"
    if not cc or not (inc / "mfa.h").is_file():
        return None
    with tempfile.TemporaryDirectory() as d:
        # Link against the very library the package loaded (it may be named plain libmfa.so).
        for name in ("libmfa.so", f"libmfa.so.{mfa.library_version[0]}"):  # the link name and the SONAME
            (Path(d) / name).symlink_to(lib)
        exe = Path(d) / "overhead_c"
        subprocess.run([cc, "-O2", "-I", str(inc), str(HERE / "overhead_c.c"), "-L", d, "-lmfa",
                        f"-Wl,-rpath,{d}", "-o", str(exe)], check=True)
        best = float("inf")
        for _ in range(5):
            out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
            best = min(best, float(out.split()[1]))
        return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()

    ctx = mfa.Context("cpu", threads=1)
    q = np.full((1, 1, 1, 8), 0.5, np.float32)
    k, v = q.copy(), q.copy()
    rows = {}
    c = c_call_us()
    rows["C call (params_init + fill + mfa_attention_fwd)"] = c
    rows["mfa.attention, numpy"] = best_us(lambda: mfa.attention(q, k, v, context=ctx))
    rows["mfa.attention, numpy, default context"] = best_us(lambda: mfa.attention(q, k, v))
    rows["mfa.attention, numpy, return_lse"] = best_us(lambda: mfa.attention(q, k, v, context=ctx, return_lse=True))
    try:
        import torch
        import mfa.torch as mt
        tq, tk, tv = (torch.from_numpy(a) for a in (q, k, v))
        t4 = [t.view(1, 1, 1, 8).transpose(1, 2) for t in (tq, tk, tv)]  # [B, H, L, E]
        rows["mfa.attention, torch cpu"] = best_us(lambda: mfa.attention(tq, tk, tv, context=ctx))
        with torch.no_grad():
            rows["mfa.torch.scaled_dot_product_attention (no grad)"] = best_us(
                lambda: mt.scaled_dot_product_attention(*t4))
            rows["torch's own scaled_dot_product_attention (reference)"] = best_us(
                lambda: mt._torch_sdpa(*t4))
        g4 = [t.clone().requires_grad_() for t in t4]
        rows["mfa.torch.scaled_dot_product_attention, requires_grad (autograd.Function)"] = best_us(
            lambda: mt.scaled_dot_product_attention(*g4), reps=50)
        rows["torch's own, requires_grad (reference)"] = best_us(lambda: mt._torch_sdpa(*g4), reps=50)
        torch_version = torch.__version__
    except ImportError:
        torch_version = None

    width = max(len(r) for r in rows)
    print(f"{'call':{width}}  us/call  overhead over C")
    for name, us in rows.items():
        if us is None:
            print(f"{name:{width}}  (no C compiler)")
            continue
        over = "" if c is None or name.startswith("C call") or "reference" in name else f"{us - c:8.2f}"
        print(f"{name:{width}}  {us:7.2f}  {over}")
    result = {
        "what": "Python-side overhead per libmfa call, tiny cpu problem (1,1,1,8) f32, 1 thread",
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": platform.machine(), "cpu": _cpu_name(), "cores": os.cpu_count(),
        "python": sys.version.split()[0], "numpy": np.__version__, "torch": torch_version,
        "libmfa": ".".join(map(str, mfa.library_version)), "us_per_call": rows,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
