"""Degenerate runs: a method that collapsed, or that does no better than predicting the
majority class, must never be ranked as if it had learned something.

The check runs on validation predictions (selection data, never the reported split): a run
is degenerate when its predictions on validation collapse to one class while validation
holds several, or when it is significantly better (level `ALPHA`) than neither baseline:
- accuracy against always predicting the majority training class (McNemar), and
- macro-F1 against chance: the same predictions shuffled across examples, i.e. a predictor
  with the same output distribution that ignores the input (a permutation test). Comparing
  macro-F1 with the constant predictor instead would let any random spread of labels pass.
A run that is worse than a baseline counts as not better. Being tests at level `ALPHA`, they let
a chance-level run through now and then (4 of 100 random 3-class predictors on 300 examples).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from clfbench import stats

ALPHA = 0.05
N_PERMUTATIONS = 2000


def degenerate_check(gold: np.ndarray, pred: np.ndarray, train_counts: np.ndarray,
                     n_labels: int, seed: int = 0) -> dict[str, Any]:
    """`{"degenerate": bool, "reasons": [...], ...}` for predictions `pred` of `gold`.

    `pred` may hold -1 (invalid outputs: wrong for every class). `train_counts` gives the
    majority class of the baseline.
    """
    gold = np.asarray(gold, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    majority = int(np.argmax(train_counts))
    baseline = np.full_like(gold, majority)
    out: dict[str, Any] = {"n": int(len(gold)), "majority_class": majority}
    if len(gold) == 0:
        return {**out, "degenerate": False, "reasons": [], "note": "no examples to check"}
    reasons = []
    predicted = np.unique(pred[pred >= 0])
    out["predicted_classes"] = int(len(predicted))
    if len(np.unique(gold)) > 1 and len(predicted) <= 1:
        what = "no valid prediction" if len(predicted) == 0 else "every prediction is one class"
        reasons.append(f"validation predictions collapsed ({what})")
    acc, acc_base = float((pred == gold).mean()), float((baseline == gold).mean())
    p_acc = stats.mcnemar(pred == gold, baseline == gold).p_value if acc > acc_base else 1.0
    f1, f1_chance, p_f1 = _macro_f1_vs_chance(gold, pred, n_labels, seed)
    out.update(accuracy=acc, majority_accuracy=acc_base, p_accuracy=p_acc, macro_f1=f1,
               chance_macro_f1=f1_chance, p_macro_f1=p_f1)
    if p_acc >= ALPHA and p_f1 >= ALPHA:
        reasons.append(
            f"no better than the majority class or chance on validation (accuracy {acc:.3f} vs "
            f"{acc_base:.3f} always predicting the majority class; macro-F1 {f1:.3f} vs "
            f"{f1_chance:.3f} for its own predictions shuffled; neither significantly higher "
            f"at {ALPHA})")
    return {**out, "degenerate": bool(reasons), "reasons": reasons}


def _macro_f1_vs_chance(gold: np.ndarray, pred: np.ndarray, k: int,
                        seed: int) -> tuple[float, float, float]:
    """(macro-F1, its mean under shuffling, one-sided permutation p-value)."""
    f1 = stats.metric_value("macro_f1", gold, pred, k)
    rng = np.random.default_rng(seed)
    shuffled = np.array([stats.metric_value("macro_f1", gold, rng.permutation(pred), k)
                         for _ in range(N_PERMUTATIONS)])
    p = (1 + int((shuffled >= f1).sum())) / (N_PERMUTATIONS + 1)
    return f1, float(shuffled.mean()), float(p)


__all__ = ["ALPHA", "degenerate_check"]
