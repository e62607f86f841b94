#!/usr/bin/env python3
"""bench.py — libmfa's CUDA backend against PyTorch's attention kernels on the lent GPU.

Peers, measured in the same process on the same inputs: torch SDPA with each backend forced
(FLASH_ATTENTION = FlashAttention-2, CUDNN_ATTENTION, EFFICIENT_ATTENTION) and FlexAttention
(torch.compile). Times: triton.testing.do_bench (CUDA events, L2 flushed between runs, median of
the repetitions after warm-up). FLOPs: 4 B H Sq Skv D forward over the visited (unmasked) pairs
(half for causal), forward+backward 3.5x the forward (DESIGN.md section 7).

Grid: D in {64, 128, 256} x S in {1k, 4k, 16k} x causal in {no, yes}, B*S = 16k tokens, H*D = 2048,
bf16 (and f16 for one row), forward and forward+backward; sliding windows 256 / 1024 at S = 16k
(B=1, H=16, D=128) against FlexAttention; fp32 forward (4, 16, 4096, 128) exact and with TF32
allowed, causal, and d64 against the efficient backend in fp32 (torch's TF32 matmul flag off). Prints a table of TFLOP/s and ratios, writes
<out>/<date>-<gpu>.json and a PNG plot. Each libmfa output is compared with torch's (rel. error).

    python3 bench/gpu/bench.py --lib build --out bench/results [--quick] [--flex-grid]
"""
import argparse
import datetime
import json
import math
import os
import platform
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from triton.testing import do_bench

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mfa_ctypes import Mfa  # noqa: E402

SDPA = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION}


def bench_ms(fn):
    fn()
    torch.cuda.synchronize()
    return do_bench(fn, warmup=50, rep=200, return_mode="median")


def rel_err(x, ref):
    x, ref = x.float(), ref.float()
    return ((x - ref).norm() / ref.norm()).item()


class Case:
    def __init__(self, mfa, B, S, H, D, dtype, causal=False, window=None, bwd=False, allow_tf32=False):
        self.mfa, self.B, self.S, self.H, self.D = mfa, B, S, H, D
        self.dtype, self.causal, self.window, self.bwd, self.allow_tf32 = dtype, causal, window, bwd, allow_tf32
        g = torch.Generator(device="cuda").manual_seed(0)
        mk = lambda: torch.randn(B, S, H, D, device="cuda", dtype=dtype, generator=g)  # noqa: E731
        self.q, self.k, self.v = mk(), mk(), mk()
        if bwd:
            for t in (self.q, self.k, self.v):
                t.requires_grad_(True)
        self.do = torch.randn(B, S, H, D, device="cuda", dtype=dtype, generator=g)
        self.o = torch.empty_like(self.q)
        self.lse = torch.empty(B, H, S, device="cuda", dtype=torch.float32)
        self.dq, self.dk, self.dv = (torch.empty_like(self.q) for _ in range(3))

    def flops(self):
        S = self.S
        if self.window is not None:
            left = self.window[0]
            pairs = sum(min(i, left) + 1 for i in range(S))  # causal window: i-left..i
        elif self.causal:
            pairs = S * (S + 1) / 2
        else:
            pairs = S * S
        f = 4.0 * self.B * self.H * pairs * self.D
        return f * 3.5 if self.bwd else f

    # ---- libmfa ----
    def mfa_fn(self):
        q, k, v = (t.detach() for t in (self.q, self.k, self.v))
        pf = self.mfa.params(q, k, v, self.o, lse=self.lse, causal=self.causal, window=self.window,
                             allow_tf32=self.allow_tf32)
        if not self.bwd:
            return lambda: self.mfa.fwd(pf)
        pb = self.mfa.params(q, k, v, self.o, lse=self.lse, causal=self.causal, window=self.window,
                             dout=self.do, dq=self.dq, dk=self.dk, dv=self.dv)

        def run():
            self.mfa.fwd(pf)
            self.mfa.bwd(pb)
        return run

    # ---- torch ----
    def torch_fn(self, backend):
        q, k, v = (t.transpose(1, 2) for t in (self.q, self.k, self.v))  # [B, H, S, D] views
        do = self.do.transpose(1, 2)
        if backend == "flex":
            from torch.nn.attention.flex_attention import create_block_mask, flex_attention
            if self.window is not None:
                left = self.window[0]
                mask_mod = lambda b, h, qi, ki: (qi >= ki) & (qi - ki <= left)  # noqa: E731
            elif self.causal:
                mask_mod = lambda b, h, qi, ki: qi >= ki  # noqa: E731
            else:
                mask_mod = None
            bm = create_block_mask(mask_mod, None, None, self.S, self.S) if mask_mod else None
            flex = torch.compile(flex_attention, dynamic=False)
            call = lambda: flex(q, k, v, block_mask=bm)  # noqa: E731
        else:
            if self.window is not None:
                return None

            def call():
                with sdpa_kernel(SDPA[backend]):
                    return F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        if not self.bwd:
            return call

        def run():
            out = call()
            torch.autograd.backward(out, do)
            for t in (self.q, self.k, self.v):
                t.grad = None
        return run

    def reference(self):
        """torch's output (fp32 math through the efficient or math path) for the error column."""
        q, k, v = (t.detach().transpose(1, 2).float() for t in (self.q, self.k, self.v))
        if self.window is not None:
            i = torch.arange(self.S, device="cuda")
            keep = (i[:, None] >= i[None, :]) & (i[:, None] - i[None, :] <= self.window[0])
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        return out.transpose(1, 2)


def measure(case, peers):
    row = {"B": case.B, "S": case.S, "H": case.H, "D": case.D, "dtype": str(case.dtype).replace("torch.", ""),
           "causal": case.causal, "window": case.window, "bwd": case.bwd, "allow_tf32": case.allow_tf32,
           "tflops": {}, "ms": {}}
    fl = case.flops()
    fns = {"libmfa": case.mfa_fn()}
    for p in peers:
        try:
            fn = case.torch_fn(p)
            if fn is not None:
                fns[p] = fn
        except Exception as e:  # a backend that refuses the shape / dtype
            row.setdefault("refused", {})[p] = str(e)[:200]
    for name, fn in fns.items():
        try:
            ms = bench_ms(fn)
            row["ms"][name] = ms
            row["tflops"][name] = fl / ms * 1e-9
        except Exception as e:
            row.setdefault("refused", {})[name] = str(e).splitlines()[0][:200]
    if not case.bwd and case.S * case.S * case.B * case.H <= 16 * 4096 * 4096:
        try:
            case.mfa_fn()()
            torch.cuda.synchronize()
            row["rel_err_vs_fp32_torch"] = rel_err(case.o, case.reference())
        except Exception as e:
            row["rel_err_vs_fp32_torch"] = f"n/a: {str(e)[:100]}"
    return row


def fmt_row(r):
    tag = f"{r['dtype']:>4} D{r['D']:<3} S{r['S'] // 1024:>2}k B{r['B']:<2} H{r['H']:<2}"
    tag += " causal" if r["causal"] else ("  win" + str(r["window"][0] + 1) if r["window"] else "       ")
    tag += " fwd+bwd" if r["bwd"] else " fwd    "
    if r["allow_tf32"]:
        tag += " tf32"
    t = r["tflops"]
    cells = [f"{t.get(n, float('nan')):7.1f}" for n in ("libmfa", "flash", "cudnn", "efficient", "flex")]
    ratios = [f"{t['libmfa'] / t[n]:5.2f}x" if n in t and "libmfa" in t else "    - "
              for n in ("flash", "cudnn", "efficient", "flex")]
    err = r.get("rel_err_vs_fp32_torch")
    err = f"{err:8.1e}" if isinstance(err, float) else "       -"
    return f"{tag:44} " + " ".join(cells) + "  | " + " ".join(ratios) + f" | {err}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build")
    ap.add_argument("--out", default="bench/results")
    ap.add_argument("--quick", action="store_true", help="a few cells only")
    ap.add_argument("--flex-grid", action="store_true", help="FlexAttention on the grid too (slow: compiles)")
    ap.add_argument("--dims", type=int, nargs="+", help="grid head dims (default 64 128 256)")
    ap.add_argument("--seqs", type=int, nargs="+", help="grid sequence lengths (default 1024 4096 16384)")
    ap.add_argument("--modes", nargs="+", choices=["fwd", "bwd"], default=["fwd", "bwd"], help="grid passes")
    ap.add_argument("--peers", nargs="+", help="grid peers (default flash cudnn efficient)")
    ap.add_argument("--grid-only", action="store_true", help="skip the fp16, window and fp32 rows")
    ap.add_argument("--windows", action="store_true", help="with --grid-only: the window rows too (modes as the grid)")
    ap.add_argument("--fp32-only", action="store_true", help="only the fp32 rows")
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    mfa = Mfa(args.lib)
    mfa.set_stream(torch.cuda.current_stream().cuda_stream)
    gpu = torch.cuda.get_device_name()
    print(f"libmfa: {mfa.description}")
    print(f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, GPU {gpu}")
    grid_peers = (args.peers or ["flash", "cudnn", "efficient"]) + (["flex"] if args.flex_grid else [])
    rows = []
    header = (f"{'case':44} {'libmfa':>7} {'flash':>7} {'cudnn':>7} {'effic.':>7} {'flex':>7}  | "
              f"{'/flash':>6} {'/cudnn':>6} {'/effic':>6} {'/flex':>6} | rel.err   (TFLOP/s)")
    print(header)
    dims = args.dims or ([128] if args.quick else [64, 128, 256])
    seqs = args.seqs or ([4096, 16384] if args.quick else [1024, 4096, 16384])
    for bwd in [] if args.fp32_only else [m == "bwd" for m in args.modes]:
        for D in dims:
            for S in seqs:
                for causal in (False, True):
                    r = measure(Case(mfa, 16384 // S, S, 2048 // D, D, torch.bfloat16, causal, bwd=bwd), grid_peers)
                    rows.append(r)
                    print(fmt_row(r), flush=True)
        if args.grid_only:
            continue
        r = measure(Case(mfa, 4, 4096, 16, 128, torch.float16, False, bwd=bwd), grid_peers)
        rows.append(r)
        print(fmt_row(r), flush=True)
    windows = (256, 1024) if not args.fp32_only and (args.windows or not args.grid_only) else ()
    for w in windows:
        for bwd in [m == "bwd" for m in args.modes] if args.windows else (False, True):
            r = measure(Case(mfa, 1, 16384, 16, 128, torch.bfloat16, window=(w - 1, 0), bwd=bwd), ["flex"])
            rows.append(r)
            print(fmt_row(r), flush=True)
    # fp32: the issue-4 shape (4, 16, 4096, 128), exact (3xTF32) and with TF32 allowed; causal and d64
    fp32_rows = () if args.grid_only else ((128, False, False), (128, False, True), (128, True, False), (64, False, False))
    for D, causal, tf32 in fp32_rows:
        r = measure(Case(mfa, 4, 4096, 2048 // D, D, torch.float32, causal, allow_tf32=tf32), ["efficient"])
        rows.append(r)
        print(fmt_row(r), flush=True)

    date = datetime.date.today().isoformat()
    slug = gpu.replace(" ", "-").replace("/", "-")
    os.makedirs(args.out, exist_ok=True)
    meta = {"date": date, "gpu": gpu, "libmfa": mfa.description, "torch": torch.__version__,
            "cudnn": torch.backends.cudnn.version(), "cuda": torch.version.cuda, "python": platform.python_version(),
            "timing": "triton.testing.do_bench median, warmup 50 ms, rep 200 ms, CUDA events",
            "flops": "4*B*H*pairs*D fwd; fwd+bwd = 3.5x"}
    try:
        import triton
        meta["triton"] = triton.__version__
    except Exception:
        pass
    path = os.path.join(args.out, f"{date}-{slug}.json")
    with open(path, "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    print(f"wrote {path}")
    try:
        plot(rows, os.path.join(args.out, f"{date}-{slug}.png"), gpu)
    except Exception as e:
        print(f"plot skipped: {e}")


def plot(rows, path, gpu):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    grid = [r for r in rows if r["dtype"] == "bfloat16" and r["window"] is None]
    fig, axes = plt.subplots(1, 2, figsize=(16, 5))
    for ax, bwd in zip(axes, (False, True)):
        sel = [r for r in grid if r["bwd"] == bwd]
        labels = [f"D{r['D']} S{r['S'] // 1024}k{' c' if r['causal'] else ''}" for r in sel]
        names = ["libmfa", "flash", "cudnn", "efficient"]
        w = 0.2
        for k, n in enumerate(names):
            ax.bar([i + k * w for i in range(len(sel))], [r["tflops"].get(n, 0) for r in sel], w, label=n)
        ax.set_xticks([i + 1.5 * w for i in range(len(sel))])
        ax.set_xticklabels(labels, rotation=60, fontsize=7)
        ax.set_ylabel("TFLOP/s")
        ax.set_title(f"{'forward+backward' if bwd else 'forward'}, bf16, {gpu}")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
