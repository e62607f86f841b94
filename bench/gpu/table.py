#!/usr/bin/env python3
"""table.py — a markdown table of a bench.py result file (TFLOP/s and libmfa's ratio to each peer).

    python3 bench/gpu/table.py bench/results/<date>-<gpu>.json
"""
import json
import sys

data = json.load(open(sys.argv[1]))
m = data["meta"]
print(f"{m['gpu']}, {m['date']}, torch {m['torch']}, cuDNN {m['cudnn']}, triton {m.get('triton', '?')}; "
      f"{m['timing']}; {m['flops']}\n")
peers = ["flash", "cudnn", "efficient", "flex"]
print("| case | libmfa | " + " | ".join(peers) + " | vs flash | vs cudnn | vs efficient | vs flex |")
print("|---|" + "---|" * (1 + 2 * len(peers)))
for r in data["rows"]:
    case = f"{r['dtype']} D{r['D']} S{r['S'] // 1024}k B{r['B']} H{r['H']}"
    if r["causal"]:
        case += " causal"
    if r["window"]:
        case += f" window {r['window'][0] + 1}"
    case += " fwd+bwd" if r["bwd"] else " fwd"
    if r["allow_tf32"]:
        case += " (tf32 allowed)"
    t = r["tflops"]
    vals = [f"{t[n]:.1f}" if n in t else "-" for n in ["libmfa"] + peers]
    ratios = [f"{t['libmfa'] / t[n]:.2f}x" if n in t and "libmfa" in t else "-" for n in peers]
    print(f"| {case} | " + " | ".join(vals) + " | " + " | ".join(ratios) + " |")
