"""Degenerate runs: a method that collapsed, or that does no better than predicting the
majority class, must never be ranked as if it had learned something.

The check runs on validation predictions (selection data, never the reported split). A run
is degenerate only when that is certain:
- its predictions on validation collapse to one class (or none is valid) while at least
  `COLLAPSE_MIN` validation examples belong to other classes; or
- it is significantly better (level `ALPHA`) than neither baseline, *and* the validation set
  is large enough to show that it is at most `MARGIN` better than both: the one-sided 95%
  upper bounds of its gains are below `MARGIN`, and every validation class has at least
  `MIN_CLASS` examples. The baselines:
  - accuracy against always predicting the majority training class (McNemar for the test;
    the upper bound of the paired accuracy gain from Student's t), and
  - macro-F1 against chance: the same predictions shuffled across examples, i.e. a predictor
    with the same output distribution that ignores the input (a permutation test; the upper
    bound from the bootstrap of its macro-F1 over examples, less the shuffled mean).
    Comparing macro-F1 with the constant predictor instead would let any random spread of
    labels pass.
A run that is not significantly better but whose upper bounds do not rule out a real gain
(a small validation set: 20 examples cannot tell a 0.75-accuracy binary classifier from a
coin) is *not* degenerate: `warnings` says the validation set is too small to tell, and the
run stays eligible. Measured (benchmarks/degenerate_flags.py, BENCHMARKS.md): false flags of
good classifiers on small validation sets, and random predictors still caught on enough data.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats as sps

from clfbench.evaluation import stats

ALPHA = 0.05
N_PERMUTATIONS = 2000
#: A gain over both baselines that validation must rule out (95% upper bound below it) to
#: call a run degenerate.
MARGIN = 0.1
N_BOOTSTRAP = 1000
#: Validation examples outside the one predicted class needed to call one-class predictions a
#: collapse; and examples of every validation class needed before the upper bounds (which a
#: bootstrap of 3 positives cannot give) may call a run no better than the baselines.
COLLAPSE_MIN = 10
MIN_CLASS = 5


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
        return {**out, "degenerate": False, "reasons": [], "warnings": [], "note": "no examples to check"}
    reasons = []
    predicted = np.unique(pred[pred >= 0])
    out["predicted_classes"] = int(len(predicted))
    warnings = []
    if len(np.unique(gold)) > 1 and len(predicted) <= 1:
        what = "no valid prediction" if len(predicted) == 0 else "every prediction is one class"
        outside = int((gold != (predicted[0] if len(predicted) else -1)).sum())
        if outside >= COLLAPSE_MIN:
            reasons.append(f"validation predictions collapsed ({what})")
        else:  # 3 positives of 60 all missed: a real classifier with recall 0.67 does that 4% of the time
            warnings.append(f"validation predictions are one class ({what}), but only {outside} validation "
                            f"examples belong to other classes: too few to tell a collapse; it stays eligible")
    acc, acc_base = float((pred == gold).mean()), float((baseline == gold).mean())
    p_acc = stats.mcnemar(pred == gold, baseline == gold).p_value if acc > acc_base else 1.0
    f1, f1_chance, p_f1 = _macro_f1_vs_chance(gold, pred, n_labels, seed)
    out.update(accuracy=acc, majority_accuracy=acc_base, p_accuracy=p_acc, macro_f1=f1,
               chance_macro_f1=f1_chance, p_macro_f1=p_f1)
    acc_up = _accuracy_gain_upper(pred == gold, baseline == gold)
    f1_up = _macro_f1_upper(gold, pred, n_labels, seed) - f1_chance
    out.update(accuracy_gain_upper=acc_up, macro_f1_gain_upper=f1_up)
    smallest = int(np.unique(gold, return_counts=True)[1].min())
    out["smallest_class"] = smallest
    if p_acc >= ALPHA and p_f1 >= ALPHA:
        versus = (f"accuracy {acc:.3f} vs {acc_base:.3f} always predicting the majority class; macro-F1 "
                  f"{f1:.3f} vs {f1_chance:.3f} for its own predictions shuffled; neither significantly "
                  f"higher at {ALPHA}")
        if acc_up < MARGIN and f1_up < MARGIN and smallest >= MIN_CLASS:
            reasons.append(f"no better than the majority class or chance on validation ({versus}; on "
                           f"{len(gold)} examples the gains are at most {acc_up:+.3f} in accuracy and "
                           f"{f1_up:+.3f} in macro-F1, 95% upper bounds below {MARGIN})")
        elif not reasons:
            warnings.append(f"validation ({len(gold)} examples, {smallest} in its smallest class) is too small "
                            f"to tell whether the run beats the "
                            f"majority class or chance ({versus}; gains up to {acc_up:+.3f} in accuracy and "
                            f"{f1_up:+.3f} in macro-F1 are not ruled out); it stays eligible")
    return {**out, "degenerate": bool(reasons), "reasons": reasons, "warnings": warnings}


def _accuracy_gain_upper(right: np.ndarray, base_right: np.ndarray) -> float:
    """One-sided 95% upper bound of the paired accuracy gain over the baseline (Student's t on
    the per-example differences; with no spread, the difference itself)."""
    d = right.astype(float) - base_right
    if len(d) < 2 or d.std() == 0:
        return float(d.mean()) if len(d) else 0.0
    return float(d.mean() + sps.t(len(d) - 1).ppf(0.95) * d.std(ddof=1) / np.sqrt(len(d)))


def _macro_f1_upper(gold: np.ndarray, pred: np.ndarray, k: int, seed: int) -> float:
    """The 95th percentile of the run's macro-F1 over bootstrap resamples of the examples."""
    if len(gold) < 2:
        return stats.metric_value("macro_f1", gold, pred, k)
    idx = np.random.default_rng([seed, 2]).integers(0, len(gold), size=(N_BOOTSTRAP, len(gold)))
    return float(np.quantile(stats.METRICS["macro_f1"](stats.confusion_counts(gold, pred, k, idx)), 0.95))


def _macro_f1_vs_chance(gold: np.ndarray, pred: np.ndarray, k: int,
                        seed: int) -> tuple[float, float, float]:
    """(macro-F1, its mean under shuffling, one-sided permutation p-value). Shuffling the
    predictions against fixed gold labels gives the same confusion matrices as shuffling the
    gold labels against fixed predictions, which is what is computed (all at once)."""
    f1 = stats.metric_value("macro_f1", gold, pred, k)
    rng = np.random.default_rng(seed)
    perms = rng.permuted(np.broadcast_to(np.arange(len(gold)), (N_PERMUTATIONS, len(gold))), axis=1)
    shuffled = stats.METRICS["macro_f1"](_counts(gold[perms], pred, k))
    p = (1 + int((shuffled >= f1 - 1e-12).sum())) / (N_PERMUTATIONS + 1)
    return f1, float(shuffled.mean()), float(p)


def _counts(golds: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """Confusion counts (rows, k, k + 1) of each row of `golds` against the fixed `pred`."""
    cell = golds * (k + 1) + np.where(pred < 0, k, pred)[None, :]
    flat = cell + np.arange(len(golds))[:, None] * k * (k + 1)
    return np.bincount(flat.ravel(), minlength=len(golds) * k * (k + 1)).reshape(len(golds), k, k + 1).astype(float)


__all__ = ["ALPHA", "MARGIN", "degenerate_check"]
