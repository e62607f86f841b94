#!/usr/bin/env python3
"""compare.py — libmfa's cpu backend against PyTorch's CPU scaled_dot_product_attention,
in the same run on the same machine, with the machine's measured FMA peak.

What it runs: for every shape, mask, dtype and direction of the grid, `build/mfa bench --json`
(libmfa) and torch.nn.functional.scaled_dot_product_attention (when torch imports), both on the
same number of threads. FLOPs: 4*B*H*S*S*D forward (half for causal, visited pairs for a
window), backward 2.5x forward; "fwd+bwd" times are forward plus backward. It prints a table
(GFLOP/s, % of peak, ratio to torch) and writes bench/results/<date>-<cpu>.json and a PNG plot.

Usage: python3 bench/cpu/compare.py [--build build] [--threads 2] [--quick] [--tag n]
It is a benchmark program, not a test: nothing here asserts.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown-cpu"


def fma_peak(threads):
    exe = os.path.join("/tmp", "mfa_fma_peak")
    src = os.path.join(ROOT, "bench", "cpu", "fma_peak.c")
    subprocess.run(["gcc", "-O2", "-march=native", "-pthread", src, "-o", exe], check=True)
    return json.loads(subprocess.run([exe, str(threads)], check=True, capture_output=True, text=True).stdout)


def mfa_bench(build, shape, mask, dtype, direction, threads, repeats):
    b, h, s, d = shape
    cmd = [os.path.join(build, "mfa"), "bench", "--backend", "cpu", "--batch", str(b), "--heads", str(h),
           "--seq", str(s), "--dim", str(d), "--dtype", dtype, "--mask", mask, "--dir", direction,
           "--threads", str(threads), "--repeats", str(repeats), "--warmup", "1", "--json"]
    rows = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    return {r["direction"]: r["ms"] for r in rows}


def torch_bench(torch, shape, mask, dtype, backward, repeats):
    """Median ms of torch SDPA forward, and of forward+backward when `backward`."""
    b, h, s, d = shape
    dt = {"f32": torch.float32, "bf16": torch.bfloat16}[dtype]
    q, k, v = (torch.randn(b, h, s, d, dtype=dt, requires_grad=backward) for _ in range(3))
    kwargs = {}
    if mask == "causal":
        kwargs["is_causal"] = True
    elif mask.startswith("window:"):
        left = int(mask.split(":")[1].split(",")[0])
        i = torch.arange(s)[:, None]
        j = torch.arange(s)[None, :]
        kwargs["attn_mask"] = (j <= i) & (j >= i - left)
    f = torch.nn.functional.scaled_dot_product_attention

    def once():
        out = f(q, k, v, **kwargs)
        if backward:
            out.backward(torch.ones_like(out))

    once()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        once()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


def pairs(s, mask):
    if mask == "causal":
        return s * (s + 1) / 2
    if mask.startswith("window:"):
        left = int(mask.split(":")[1].split(",")[0])
        return sum(min(i, left) + 1 for i in range(s))
    return s * s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="one shape, for a smoke run")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--tag", default="", help="appended to the date in the file names (a second run that day)")
    args = ap.parse_args()

    try:
        import torch
        torch.set_num_threads(args.threads)
        torch_version = torch.__version__
    except ImportError:
        torch, torch_version = None, None
        print("torch is not importable: libmfa only", file=sys.stderr)

    peak = fma_peak(args.threads)
    shapes = [(1, 8, 2048, 128)] if args.quick else [(1, 8, 2048, 64), (1, 8, 2048, 128), (1, 16, 4096, 128)]
    grid = [(sh, m, dt, dr) for sh in shapes for m in ("none", "causal") for dt in ("f32", "bf16")
            for dr in ("fwd", "fwd+bwd")]
    if not args.quick:
        grid.append(((1, 8, 4096, 128), "window:256,0", "f32", "fwd"))
        grid.append(((1, 8, 4096, 128), "none", "f32", "fwd"))

    rows = []
    for shape, mask, dtype, direction in grid:
        b, h, s, d = shape
        fwd_flops = 4.0 * b * h * pairs(s, mask) * d
        flops = fwd_flops * (3.5 if direction == "fwd+bwd" else 1.0)
        print(f"{shape} {mask} {dtype} {direction} ...", file=sys.stderr)
        t = mfa_bench(args.build, shape, mask, dtype, "both" if direction == "fwd+bwd" else "fwd", args.threads,
                      args.repeats)
        mfa_ms = t["fwd"] + (t.get("bwd", 0.0) if direction == "fwd+bwd" else 0.0)
        row = {"shape": list(shape), "mask": mask, "dtype": dtype, "direction": direction, "threads": args.threads,
               "mfa_ms": mfa_ms, "mfa_gflops": flops / mfa_ms * 1e-6,
               "pct_peak": 100.0 * flops / mfa_ms * 1e-6 / peak["gflops"]}
        if torch is not None:
            tms = torch_bench(torch, shape, mask, dtype, direction == "fwd+bwd", args.repeats)
            row.update(torch_ms=tms, torch_gflops=flops / tms * 1e-6, ratio=tms / mfa_ms)
        rows.append(row)

    if not args.quick: # thread scaling on one shape
        one = mfa_bench(args.build, (1, 8, 2048, 128), "none", "f32", "fwd", 1, args.repeats)["fwd"]
        many = next(r["mfa_ms"] for r in rows if r["shape"] == [1, 8, 2048, 128] and r["mask"] == "none"
                    and r["dtype"] == "f32" and r["direction"] == "fwd")
        scaling = {"shape": [1, 8, 2048, 128], "one_thread_ms": one, "threads": args.threads, "ms": many,
                   "speedup": one / many}
    else:
        scaling = None

    print(f"\n{cpu_model()}, {args.threads} threads, measured fp32 FMA peak {peak['gflops']:.0f} GFLOP/s "
          f"({peak['isa']}); torch {torch_version}")
    print(f"{'shape':<20} {'mask':<13} {'dtype':<5} {'dir':<8} {'mfa ms':>9} {'GFLOP/s':>8} {'%peak':>6} "
          f"{'torch ms':>9} {'GFLOP/s':>8} {'mfa/torch':>9}")
    for r in rows:
        line = (f"{str(tuple(r['shape'])):<20} {r['mask']:<13} {r['dtype']:<5} {r['direction']:<8} "
                f"{r['mfa_ms']:9.1f} {r['mfa_gflops']:8.1f} {r['pct_peak']:6.1f}")
        if "torch_ms" in r:
            line += f" {r['torch_ms']:9.1f} {r['torch_gflops']:8.1f} {r['ratio']:8.2f}x"
        print(line)
    if scaling:
        print(f"threads: 1 -> {args.threads}: {scaling['speedup']:.2f}x on (1, 8, 2048, 128) fp32 forward")

    date = datetime.date.today().isoformat()
    machine = "".join(c if c.isalnum() or c in "-_." else "-" for c in cpu_model()).strip("-")
    os.makedirs(args.out, exist_ok=True)
    stem = os.path.join(args.out, f"{date}{args.tag}-cpu-{machine}{'-quick' if args.quick else ''}")
    report = {"date": date, "cpu": cpu_model(), "threads": args.threads, "fma_peak": peak,
              "torch": torch_version, "mfa": subprocess.run([os.path.join(args.build, "mfa"), "info"],
                                                            capture_output=True, text=True).stdout,
              "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                       text=True).stdout.strip(),
              "rows": rows, "thread_scaling": scaling}
    with open(stem + ".json", "w") as f:
        json.dump(report, f, indent=1)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        labels = [f"{r['shape'][3]}/{r['shape'][2]} {r['mask'][:6]} {r['dtype']} {r['direction']}" for r in rows]
        x = range(len(rows))
        fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.5), 5))
        ax.bar([i - 0.2 for i in x], [r["mfa_gflops"] for r in rows], 0.4, label="libmfa")
        if torch is not None:
            ax.bar([i + 0.2 for i in x], [r.get("torch_gflops", 0) for r in rows], 0.4, label=f"torch {torch_version}")
        ax.axhline(peak["gflops"], color="gray", linestyle="--", label="measured FMA peak")
        ax.set_xticks(list(x))
        ax.set_xticklabels(labels, rotation=70, ha="right", fontsize=7)
        ax.set_ylabel("GFLOP/s")
        ax.set_title(f"CPU attention, {cpu_model()}, {args.threads} threads, {date}")
        ax.legend()
        fig.tight_layout()
        fig.savefig(stem + ".png", dpi=110)
    except ImportError:
        print("matplotlib is not importable: no plot", file=sys.stderr)
    print(f"wrote {stem}.json")


if __name__ == "__main__":
    main()
