#!/usr/bin/env python3
"""transformer_block.py — a pre-norm causal transformer block whose attention runs on libmfa
through the drop-in torch.nn.functional.scaled_dot_product_attention.

The block is ordinary PyTorch code calling F.scaled_dot_product_attention; `mfa.torch.installed()`
swaps libmfa in underneath, forward and backward, with no change to the model. The script trains a
few steps with and without the drop-in from the same initial weights and shows they agree.

    python examples/python/transformer_block.py            # cpu (or --device cuda)
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

import mfa.torch


class Block(nn.Module):
    def __init__(self, width=256, heads=8, kv_heads=2):
        super().__init__()
        self.heads, self.kv_heads, self.dim = heads, kv_heads, width // heads
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.q = nn.Linear(width, width, bias=False)
        self.kv = nn.Linear(width, 2 * kv_heads * self.dim, bias=False)  # grouped-query attention
        self.out = nn.Linear(width, width, bias=False)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

    def forward(self, x):
        b, n, _ = x.shape
        h = self.norm1(x)
        # [B, N, H, D] memory viewed as [B, H, N, D]: libmfa reads these strided views in place.
        q = self.q(h).view(b, n, self.heads, self.dim).transpose(1, 2)
        k, v = self.kv(h).view(b, n, 2, self.kv_heads, self.dim).permute(2, 0, 3, 1, 4).unbind(0)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        x = x + self.out(y.transpose(1, 2).reshape(b, n, -1))
        return x + self.mlp(self.norm2(x))


def train(block, x, steps=5):
    opt = torch.optim.SGD(block.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        loss = block(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.manual_seed(0)
    x = torch.randn(4, 128, 256, device=args.device)
    block = Block().to(args.device)
    state = {k: t.clone() for k, t in block.state_dict().items()}

    want = train(block, x)                      # PyTorch's own attention
    block.load_state_dict(state)
    mfa.torch.reset_stats()
    with mfa.torch.installed():                 # libmfa underneath, same code
        got = train(block, x)
    print("loss, torch SDPA :", " ".join(f"{v:.6f}" for v in want))
    print("loss, libmfa     :", " ".join(f"{v:.6f}" for v in got))
    print("drop-in calls    :", mfa.torch.stats())
    assert max(abs(a - b) for a, b in zip(want, got)) < 1e-4


if __name__ == "__main__":
    main()
