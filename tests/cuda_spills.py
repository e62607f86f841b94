#!/usr/bin/env python3
"""cuda_spills.py — the Hopper kernels' register spills against their budget, and their wgmma
pipelines, without a GPU.

    python3 tests/cuda_spills.py --nvcc NVCC --budget src/cuda/spill-budget.txt -I DIR ... FILE.cu ...

Compiles each instantiation file for sm_90a with `ptxas -v`, reads every kernel's spill stores
and compares them with the budget file (kernels it does not name: 0 bytes). The Hopper kernels
sit at the edge of their registers (240 a thread, 224 in the d128 backward), and a change that
looks unrelated can push one over: the causal schedule's merge took the d256 forward's producer
from 20 to 356 bytes of spill, which only `ptxas -v` showed. A kernel over its budget fails the
test; one under it is reported, so that the budget can come down. ptxas is deterministic for one
CUDA release only, so another release than the budget's skips the test (exit 77).

ptxas also says when it serializes a kernel's wgmma instructions ("Potential Performance Loss",
C751x: too few registers to keep an operand or accumulator live across an asynchronous product,
or a plain instruction reading an accumulator before its wait): every product then waits for
the one before, whatever the source intended. Any such message fails the test (no budget: none
of the kernels has one), since it costs more than any spill (sixteenth session: overlapping the
backward's phase B with the next tile's dP^T drew C7512).
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77


def demangle(names):
    """Readable kernel names (by c++filt), without their namespaces and parameter lists."""
    res = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True, check=True)
    out = dict(zip(names, res.stdout.splitlines()))
    short = {}
    for mangled, name in out.items():
        name = re.sub(r"^void ", "", name)
        name = re.sub(r"^[\w:]*::", "", name.split("(")[0])  # drop the namespace and the arguments
        short[mangled] = name
    return short


def spills(nvcc, includes, path):
    """({mangled kernel name: spill store bytes}, {mangled name: [serialization messages]}) of
    one file, from ptxas -v."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [nvcc, "-O3", "-DNDEBUG", "-std=c++17", "-D_GNU_SOURCE"] + [f"-I{d}" for d in includes] + [
            "-gencode=arch=compute_90a,code=sm_90a", "-Xptxas", "-v", "-cubin", path, "-o",
            os.path.join(tmp, "k.cubin")]
        res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{os.path.basename(path)}: nvcc failed:\n{res.stderr[-3000:]}")
    found, serial, kernel = {}, {}, None
    for line in res.stderr.splitlines():
        m = re.search(r"\((C75\d\d)\) Potential Performance Loss: (.*?)\s+(?:for|in)\s+the function '([^']+)'", line)
        if m:
            serial.setdefault(m.group(3), []).append(f"{m.group(1)}: {m.group(2).strip()}")
            continue
        m = re.search(r"Compiling entry function '([^']+)'", line)
        if m:
            kernel = m.group(1)
            continue
        m = re.search(r"(\d+) bytes spill stores", line)
        if m and kernel:
            found[kernel] = int(m.group(1))
            kernel = None
    return found, serial


def read_budget(path):
    release, budget = None, {}
    for line in open(path):
        line = line.strip()
        m = re.match(r"#\s*release:\s*(\S+)", line)
        if m:
            release = m.group(1)
        if not line or line.startswith("#"):
            continue
        name, limit = line.rsplit(None, 1)
        budget[name] = int(limit)
    return release, budget


def nvcc_release(nvcc):
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"release (\d+\.\d+)", out)
    return m.group(1) if m else "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--nvcc", default="nvcc")
    ap.add_argument("--budget", required=True)
    ap.add_argument("-I", dest="includes", action="append", default=[])
    ap.add_argument("files", nargs="+")
    args = ap.parse_args()

    release, budget = read_budget(args.budget)
    have = nvcc_release(args.nvcc)
    if have != release:
        print(f"skipped: the budget is for CUDA {release}, this nvcc is {have}")
        return SKIP
    if not shutil.which("c++filt"):  # the budget names kernels as c++filt writes them
        print("skipped: no c++filt (binutils) to read the kernels' names")
        return SKIP

    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        results = list(pool.map(lambda f: spills(args.nvcc, args.includes, f), args.files))
    found, serial = {}, {}
    for f, s in results:
        found.update(f)
        serial.update(s)
    names = demangle(list(found) + [k for k in serial if k not in found])

    over, under = [], []
    print(f"{'kernel':72} {'spill':>6} {'budget':>6}")
    for mangled in sorted(found, key=lambda k: names[k]):
        name, got = names[mangled], found[mangled]
        limit = budget.get(name, 0)
        mark = " OVER" if got > limit else (" under" if got < limit else "")
        print(f"{name:72} {got:6d} {limit:6d}{mark}")
        (over if got > limit else under if got < limit else []).append(name)
    for n in budget:  # a build of fewer head dims or types compiles fewer kernels
        if n not in names.values():
            print(f"(not compiled here: {n})")
    if under:
        print(f"{len(under)} kernel(s) below budget: lower {os.path.basename(args.budget)} to the new figures")
    for mangled, msgs in sorted(serial.items(), key=lambda kv: names[kv[0]]):
        for msg in msgs:
            print(f"SERIALIZED {names[mangled]}: {msg}")
    if over or serial:
        if over:
            print(f"FAILED: {len(over)} kernel(s) over budget")
        if serial:
            print(f"FAILED: ptxas serializes the wgmma instructions of {len(serial)} kernel(s)")
        return 1
    print(f"{len(found)} kernels within budget, no wgmma serialized")
    return 0


if __name__ == "__main__":
    sys.exit(main())
