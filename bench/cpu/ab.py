#!/usr/bin/env python3
"""ab.py — A/B timing of two builds of `mfa bench` on a shared, noisy machine.

Runs A and B in turn (A B A B ...) `--runs` times on the same `mfa bench` arguments and prints,
per row of the bench grid, the median GFLOP/s of each and the median of the pairwise ratios
A/B (pairing keeps the ratio meaningful while the machine's speed drifts). A figure from one
run is never quoted; min and max of the ratio show how noisy the call was.

Usage: python3 bench/cpu/ab.py build /tmp/base/build [--runs 7] -- --dim 128 --mask none --threads 1
"""
import argparse
import json
import statistics
import subprocess
import sys


def bench(build, args):
    out = subprocess.run([f"{build}/mfa", "bench", "--json", *args], check=True, capture_output=True, text=True)
    return [(f"D{r['head_dim']} S{r['seqlen_q']} H{r['heads_q']} {r['mask']} {r['direction']} {r['dtype']} "
             f"t{r['threads']}", r["gflops"]) for r in json.loads(out.stdout)]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--runs", type=int, default=7)
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    o = ap.parse_args(argv[:cut])
    args = argv[cut + 1:]
    runs = {}
    for _ in range(o.runs):
        for side in ("a", "b"):
            for name, g in bench(getattr(o, side), args):
                runs.setdefault(name, {"a": [], "b": []})[side].append(g)
    print(f"{'case':40s} {'A GFLOP/s':>10s} {'B GFLOP/s':>10s} {'A/B':>6s} {'min':>6s} {'max':>6s}")
    for name, r in runs.items():
        ratios = [a / b for a, b in zip(r["a"], r["b"])]
        print(f"{name:40s} {statistics.median(r['a']):10.1f} {statistics.median(r['b']):10.1f} "
              f"{statistics.median(ratios):6.3f} {min(ratios):6.3f} {max(ratios):6.3f}")


if __name__ == "__main__":
    main()
