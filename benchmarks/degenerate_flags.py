"""How often the degenerate check flags good classifiers on small validation sets, and how
often it still catches random ones (issue 22, part 2).

Each case draws validation predictions `--reps` times and runs `degenerate.degenerate_check`.
"old" is the rule before issue 22 (collapsed, or significantly better than neither baseline),
read off the same call's p-values; "new" the rule in force (collapsed, or not significantly
better *and* both gains' 95% upper bounds below `degenerate.MARGIN`). "3 seeds" is the share
of three-run configurations with at least one flagged run (what keeps a configuration from
ever being "best"): 1 - (1 - rate)^3.

    nice -n 15 python benchmarks/degenerate_flags.py --reps 400
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from clfbench.evaluation.degenerate import ALPHA, degenerate_check


def binary(rng, n: int, acc: float):
    gold = rng.permutation(np.arange(n) % 2)
    return gold, np.where(rng.random(n) < acc, gold, 1 - gold), np.array([50, 50]), 2


def rare(rng, n: int, recall: float = 0.67, fpr: float = 0.01):
    """95/5 classes, validation stratified: 5% positives (3 of 60)."""
    pos = max(1, round(0.05 * n))
    gold = rng.permutation(np.r_[np.ones(pos, int), np.zeros(n - pos, int)])
    hit = np.where(gold == 1, rng.random(n) < recall, rng.random(n) < fpr)
    return gold, hit.astype(int), np.array([95, 5]), 2


def random3(rng, n: int):
    gold = rng.permutation(np.arange(n) % 3)
    return gold, rng.integers(0, 3, n), np.array([40, 30, 30]), 3


def constant3(rng, n: int):
    gold = rng.permutation(np.arange(n) % 3)
    return gold, np.zeros(n, int), np.array([40, 30, 30]), 3


CASES = [
    ("good: binary, accuracy 0.75", 20, lambda r: binary(r, 20, 0.75)),
    ("good: binary, accuracy 0.80", 20, lambda r: binary(r, 20, 0.80)),
    ("good: 95/5, recall 0.67, FPR 0.01", 60, lambda r: rare(r, 60)),
    ("good: binary, accuracy 0.75", 60, lambda r: binary(r, 60, 0.75)),
    ("random: 3 classes, uniform", 20, lambda r: random3(r, 20)),
    ("random: 3 classes, uniform", 100, lambda r: random3(r, 100)),
    ("random: 3 classes, uniform", 300, lambda r: random3(r, 300)),
    ("random: 3 classes, uniform", 500, lambda r: random3(r, 500)),
    ("constant", 20, lambda r: constant3(r, 20)),
    ("constant", 500, lambda r: constant3(r, 500)),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=400)
    ap.add_argument("--seed", type=int, default=22)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.time()
    print(f"degenerate flags, {args.reps} draws per case")
    print("| case | validation examples | old: flagged | old: 3 seeds | new: flagged | new: 3 seeds | new: warned |")
    print("|---|---|---|---|---|---|---|")
    for name, n, draw in CASES:
        old = new = warned = 0
        for i in range(args.reps):
            gold, pred, counts, k = draw(rng)
            out = degenerate_check(gold, pred, counts, k, seed=i)
            collapsed = any("collapsed" in r for r in out["reasons"])
            old += collapsed or (out["p_accuracy"] >= ALPHA and out["p_macro_f1"] >= ALPHA)
            new += out["degenerate"]
            warned += bool(out["warnings"])
        o, w = old / args.reps, new / args.reps
        print(f"| {name} | {n} | {100 * o:.1f}% | {100 * (1 - (1 - o) ** 3):.1f}% | {100 * w:.1f}% | "
              f"{100 * (1 - (1 - w) ** 3):.1f}% | {100 * warned / args.reps:.1f}% |", flush=True)
    print(f"\n{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
