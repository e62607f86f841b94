#!/usr/bin/env python3
"""sass_stalls.py — where a kernel's warps wait, from the SASS page `run.sh ncu-src` writes.

    python3 bench/gpu/sass_stalls.py ncu-src-sass.csv [--top 30] [--listing out.txt]

Prints the stall reasons summed over the kernel, the instructions with the most warp samples (each
with its two largest reasons), and the samples between consecutive markers: the first instruction
of each kind below, so that the wgmma phases, barriers and the end of the block fall into ranges
one can name. Then the samples by how many times an instruction ran: a loop's body shares one
count (per warp: its trips times the warps), so a kernel's steady loop, the code each warp runs
once per work item and the producer's per-tile code fall into separate rows, each with the
instructions it issues per run. --listing writes every instruction with its share of the samples,
to read a phase in order. Shares are of all warps' samples: warps that wait for work (a consumer
on an empty mbarrier) count as much as warps on the critical path.
"""
import argparse
import csv
import re

MARKERS = re.compile(r"HGMMA\.\S+|BAR\.SYNC\S*|SYNCS\.\S+|EXIT|UBLKRED\S*")


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--listing")
    args = ap.parse_args()
    rows = list(csv.reader(open(args.csv)))
    head = next(i for i, r in enumerate(rows) if r and r[0] == "Address")
    hdr, data = rows[head], rows[head + 1:]
    col = {h: i for i, h in enumerate(hdr)}
    samples_col = col["Warp Stall Sampling (All Samples)"]
    reasons = [h for h in hdr if h.startswith("stall_") and "Not Issued" not in h]
    samples = [number(r[samples_col]) for r in data]
    total = sum(samples) or 1.0
    print(f"{rows[0][1] if rows[0] else ''}\n{len(data)} instructions, {total:.0f} warp samples\n")
    print("stall reasons over the kernel:")
    sums = {x: sum(number(r[col[x]]) for r in data) for x in reasons}
    for x, v in sorted(sums.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {x[6:]:20s} {100 * v / total:5.1f} %")
    print(f"\nthe {args.top} instructions with the most samples:")
    order = sorted(range(len(data)), key=lambda i: -samples[i])[: args.top]
    for i in order:
        r = data[i]
        why = sorted(((number(r[col[x]]), x[6:]) for x in reasons), reverse=True)[:2]
        why = ", ".join(f"{n} {int(v)}" for v, n in why if v)
        print(f"  #{i:5d} {100 * samples[i] / total:5.2f} %  {r[col['Source']][:64]:64s} {why}")
    print("\nsamples between markers (index: first instruction of the range):")
    start, label = 0, "start"
    for i, r in enumerate(data + [None]):
        m = MARKERS.search(r[col["Source"]]) if r else None
        if r is None or (m and m.group(0) != label):
            part = sum(samples[start:i])
            if part / total >= 0.005:
                print(f"  #{start:5d}-{i - 1:5d} {100 * part / total:5.1f} %  from {label}")
            if r is not None:
                start, label = i, m.group(0)
    print("\nsamples by how many times an instruction ran (rows of 1 % or more):")
    by_count = {}
    for i, r in enumerate(data):
        n = number(r[col["Instructions Executed"]])
        if n:
            c = by_count.setdefault(n, [0.0, 0])
            c[0] += samples[i]
            c[1] += 1
    for n, (part, instrs) in sorted(by_count.items(), key=lambda kv: -kv[1][0]):
        if part / total >= 0.01:
            print(f"  ran {n:10.0f} times: {instrs:5d} instructions, {100 * part / total:5.1f} %")
    if args.listing:
        with open(args.listing, "w") as out:
            for i, r in enumerate(data):
                why = max(((number(r[col[x]]), x[6:]) for x in reasons), default=(0, ""))
                out.write(f"#{i:5d} {100 * samples[i] / total:5.2f} {number(r[col['Instructions Executed']]):10.0f} "
                          f"{r[col['Source']][:72]:72s} {why[1] if samples[i] else ''}\n")


if __name__ == "__main__":
    main()
