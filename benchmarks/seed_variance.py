"""False "best" rate and power of the report's verdict test when runs differ by seed (issue 22).

Simulated configurations on a shared test set of k = 4 balanced classes. Each example has a
difficulty shared by every run (a_i ~ N(0, 1.5^2)); run r of a configuration is right on
example i when theta_r + a_i + e_ri > 0 (e_ri ~ N(0, 1)), wrong predictions go to a random
other class. A run's population accuracy is acc + spread * z_r (z_r ~ N(0, 1)): the seed
spread is a real difference between trained models, not only disagreement on examples.

  verdict  two configurations, R runs (seeds) each. Null: both at accuracy 0.80; a false
           "best" is a test with p < 0.05 (with two configurations the Holm family is one test,
           so this is exactly when the report says "best"). Power: 0.83 against 0.80.
  curve    a learning curve (three sizes, 6 draws each, draw spreads 4, 2 and 1 points)
           against a prompting reference (one deterministic run). Null: every size at the
           reference's 0.80; a false crossover is any size significant after Holm over the
           sizes. Power: +3 points at the largest size only.

"old" is the test the report used before issue 22 (paired bootstrap of the mean macro-F1 over
examples only; McNemar on the median-macro-F1 runs for accuracy), "new" `stats.seed_aware_test`.

    nice -n 15 python benchmarks/seed_variance.py --reps 200 --boot 300 --out seed_variance.json
    nice -n 15 python benchmarks/seed_variance.py --confirm 600 --boot 300

`--confirm N` reruns only the null cells of the new test on 1,000 examples (3 and 5 seeds,
spreads 0, 1, 2 points) with N replications, to pin the false "best" rate more tightly.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from scipy.stats import norm

from clfbench.evaluation import stats

K = 4
DIFFICULTY = 1.5
ALPHA = 0.05


def runs(rng: np.random.Generator, gold: np.ndarray, a: np.ndarray, acc: float, spread: float,
         r: int) -> np.ndarray:
    """(r, n) predictions: r runs of a configuration with mean accuracy `acc`, seed spread `spread`."""
    target = np.clip(acc + spread * rng.standard_normal(r), 0.01, 0.99)
    theta = np.sqrt(1 + DIFFICULTY**2) * norm.ppf(target)
    right = theta[:, None] + a[None, :] + rng.standard_normal((r, len(gold))) > 0
    wrong = (gold[None, :] + rng.integers(1, K, size=(r, len(gold)))) % K
    return np.where(right, gold[None, :], wrong)


def old_tests(gold: np.ndarray, pa: np.ndarray, pb: np.ndarray, boot: int, seed: int) -> tuple[float, float]:
    """(accuracy p, macro-F1 p) as the report computed them before issue 22."""
    def median_run(p: np.ndarray) -> np.ndarray:
        f1 = [stats.metric_value("macro_f1", gold, x, K) for x in p]
        return p[np.argsort(f1, kind="stable")[(len(p) - 1) // 2]]

    ma, mb = median_run(pa), median_run(pb)
    p_acc = stats.mcnemar(ma == gold, mb == gold).p_value
    p_f1 = stats.paired_bootstrap(gold, pa, pb, K, "macro_f1", boot, seed=seed).p_value
    return p_acc, p_f1


def verdict_cell(rng, reps: int, n: int, r: int, spread: float, gain: float, boot: int) -> dict:
    hits = {"old_accuracy": 0, "old_macro_f1": 0, "new_accuracy": 0, "new_macro_f1": 0}
    for i in range(reps):
        gold = rng.integers(0, K, n)
        a = DIFFICULTY * rng.standard_normal(n)
        pa = runs(rng, gold, a, 0.80 + gain, spread, r)
        pb = runs(rng, gold, a, 0.80, spread, r)
        old_acc, old_f1 = old_tests(gold, pa, pb, boot, i)
        new_acc = stats.seed_aware_test(gold, pa, pb, K, "accuracy", seed=i)
        new_f1 = stats.seed_aware_test(gold, pa, pb, K, "macro_f1", boot, seed=i)
        # Null: either side called best counts; power: A called best.
        hits["old_accuracy"] += old_acc < ALPHA and (gain == 0 or (pa == gold).mean() > (pb == gold).mean())
        hits["old_macro_f1"] += old_f1 < ALPHA and (gain == 0 or new_f1.delta > 0)
        hits["new_accuracy"] += new_acc.p_value < ALPHA and (gain == 0 or new_acc.delta > 0)
        hits["new_macro_f1"] += new_f1.p_value < ALPHA and (gain == 0 or new_f1.delta > 0)
    return {k: v / reps for k, v in hits.items()}


def curve_cell(rng, reps: int, n: int, draws: int, spreads: tuple[float, ...], gains: tuple[float, ...],
               boot: int) -> dict:
    hits = {"old": 0, "new": 0}
    for i in range(reps):
        gold = rng.integers(0, K, n)
        a = DIFFICULTY * rng.standard_normal(n)
        ref = runs(rng, gold, a, 0.80, 0.0, 1)
        found = {"old": [], "new": []}
        for spread, gain in zip(spreads, gains):
            pts = runs(rng, gold, a, 0.80 + gain, spread, draws)
            old = stats.paired_bootstrap(gold, pts, ref, K, "macro_f1", boot, seed=i)
            new = stats.seed_aware_test(gold, pts, ref, K, "macro_f1", boot, seed=i)
            found["old"].append((old.delta, old.p_value))
            found["new"].append((new.delta, new.p_value))
        for key, tests in found.items():
            adjusted = stats.holm([p for _, p in tests])
            hits[key] += any(d > 0 and p < ALPHA for (d, _), p in zip(tests, adjusted))
    return {k: v / reps for k, v in hits.items()}


def confirm(rng, reps: int, boot: int) -> None:
    print(f"new test, false 'best' rate on 1000 examples, {reps} replications")
    print("| seeds | seed spread | accuracy | macro-F1 |")
    print("|---|---|---|---|")
    for r in (3, 5):
        for spread in (0.0, 0.01, 0.02):
            hits = np.zeros(2)
            for i in range(reps):
                gold = rng.integers(0, K, 1000)
                a = DIFFICULTY * rng.standard_normal(1000)
                pa, pb = runs(rng, gold, a, 0.80, spread, r), runs(rng, gold, a, 0.80, spread, r)
                hits += [stats.seed_aware_test(gold, pa, pb, K, "accuracy").p_value < ALPHA,
                         stats.seed_aware_test(gold, pa, pb, K, "macro_f1", boot, seed=i).p_value < ALPHA]
            print(f"| {r} | {100 * spread:.0f} pts | {100 * hits[0] / reps:.1f}% | {100 * hits[1] / reps:.1f}% |",
                  flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--boot", type=int, default=300,
                    help="resamples of the macro-F1 tests (the report uses 1,000 or more)")
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--out", default=None)
    ap.add_argument("--confirm", type=int, default=0, help="only the new test's null cells, this many replications")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    if args.confirm:
        confirm(rng, args.confirm, args.boot)
        return
    out: dict = {"reps": args.reps, "boot": args.boot, "verdict": [], "curve": []}
    t0 = time.time()
    print(f"verdict: false 'best' rate (null, equal accuracy 0.80) and power (+3 points); {args.reps} replications")
    print("| test examples | seeds | seed spread | case | old accuracy | old macro-F1 | new accuracy | new macro-F1 |")
    print("|---|---|---|---|---|---|---|---|")
    plan = [(500, r, 0.0) for r in (1, 3, 5)] + [(1000, r, 0.0) for r in (3, 5)] + [(1000, r, 0.03) for r in (1, 3, 5)]
    for n, r, gain in plan:
        for spread in (0.0, 0.01, 0.02):
            cell = verdict_cell(rng, args.reps, n, r, spread, gain, args.boot)
            case = "false best" if gain == 0 else "power +3 pts"
            out["verdict"].append({"n": n, "seeds": r, "spread": spread, "gain": gain, **cell})
            print(f"| {n} | {r} | {100 * spread:.0f} pts | {case} | {100 * cell['old_accuracy']:.1f}% | "
                  f"{100 * cell['old_macro_f1']:.1f}% | {100 * cell['new_accuracy']:.1f}% | "
                  f"{100 * cell['new_macro_f1']:.1f}% |", flush=True)
    print(f"\ncrossover: 3 sizes x 6 draws (draw spreads 4, 2, 1 points) vs one prompting run; {args.reps} replications")
    print("| test examples | case | old | new |")
    print("|---|---|---|---|")
    for n, gains, case in ((500, (0, 0, 0), "false crossover (no gain)"),
                           (1000, (0, 0, 0), "false crossover (no gain)"),
                           (1000, (0, 0, 0.03), "power: +3 pts at the largest size")):
        cell = curve_cell(rng, args.reps, n, 6, (0.04, 0.02, 0.01), gains, args.boot)
        out["curve"].append({"n": n, "gains": gains, **cell})
        print(f"| {n} | {case} | {100 * cell['old']:.1f}% | {100 * cell['new']:.1f}% |", flush=True)
    out["seconds"] = time.time() - t0
    print(f"\n{out['seconds']:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
