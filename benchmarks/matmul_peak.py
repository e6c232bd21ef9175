"""This machine's fp32 matmul peak, measured with large `torch.matmul` at torch's thread count.

    python benchmarks/matmul_peak.py [--n 2048] [--repeats 10]

FLOPs of one (n x n) @ (n x n) product: 2 * n**3. The peak is the best of `repeats` timed
products after one warm-up (the best, because a peak is what the hardware can do when nothing
else interferes; other processes on a shared machine only ever slow a run down).
"""

from __future__ import annotations

import argparse
import time

import torch


def matmul_peak_flops(n: int = 2048, repeats: int = 10, dtype: torch.dtype = torch.float32) -> float:
    """Best FLOP/s of an n x n fp32 matrix product at `torch.get_num_threads()` threads."""
    a = torch.randn(n, n, dtype=dtype)
    b = torch.randn(n, n, dtype=dtype)
    out = torch.empty(n, n, dtype=dtype)
    torch.matmul(a, b, out=out)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.matmul(a, b, out=out)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    peak = matmul_peak_flops(args.n, args.repeats)
    print(f"fp32 matmul peak: {peak / 1e9:.1f} GFLOP/s "
          f"(n={args.n}, threads={torch.get_num_threads()}, best of {args.repeats})")


if __name__ == "__main__":
    main()
