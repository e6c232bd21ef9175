"""Quality metrics from gold labels and predicted probabilities.

`macro_f1` (the function below, the one definition used everywhere: reported numbers, the
report's statistics in `clfbench.evaluation.stats`, and model selection on validation in
`torch_training.scores`, `LLMSFT`'s validation and `c_choice.choose_c`, so that a recorded
`val_macro_f1`, the `gap` selection rule and the reported figure are on one scale) averages
F1 over the gold classes of the split it is computed on (scikit-learn's
`labels=<gold classes>`): a class that occurs but is never predicted counts with F1 0; a class
of the task that is absent from the reported split has no defined F1 and is left out (TREC's
test split has 42 of its 50 fine labels), and predictions into it only lower the recall of the
true classes. `macro_f1_gold_or_pred` is scikit-learn's default (gold or predicted classes),
kept for comparison with other tools. Predictions of -1 (invalid output from a generation
method) count as wrong for every class and fill the last ("invalid") column of the confusion
matrix. ECE, Brier score and log loss are over the valid rows with real probabilities only
(None when there are none), with `invalid_rate` and `calibration_examples` beside them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    matthews_corrcoef,
    precision_recall_fscore_support,
)

#: Name of the confusion matrix's last column: predictions that matched no label.
INVALID_COLUMN = "invalid"


def expected_calibration_error(gold: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins (Guo et al. 2017)."""
    conf = proba.max(axis=1)
    correct = (proba.argmax(axis=1) == gold).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def brier_score(gold: np.ndarray, proba: np.ndarray) -> float:
    """Multi-class Brier score: mean over examples of sum_k (p_k - y_k)^2 (0 best, 2 worst)."""
    onehot = np.zeros_like(proba)
    onehot[np.arange(len(gold)), gold] = 1.0
    return float(((proba - onehot) ** 2).sum(axis=1).mean())


def reliability_bins(gold: np.ndarray, proba: np.ndarray, n_bins: int = 15) -> list[dict]:
    """Per-bin confidence, accuracy and count, for reliability diagrams."""
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == gold
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, n_bins - 1)
    return [
        {
            "lo": float(edges[b]),
            "hi": float(edges[b + 1]),
            "count": int((bins == b).sum()),
            "confidence": float(conf[bins == b].mean()) if (bins == b).any() else None,
            "accuracy": float(correct[bins == b].mean()) if (bins == b).any() else None,
        }
        for b in range(n_bins)
    ]


def quality_metrics(
    gold: np.ndarray,
    pred: np.ndarray,
    label_names: list[str],
    proba: np.ndarray | None = None,
    train_counts: np.ndarray | None = None,
    proba_rows: np.ndarray | None = None,
) -> dict[str, Any]:
    """All quality numbers for one run. `proba` may be None (no calibration metrics then);
    `proba_rows` (a boolean mask, None: all) says which rows of it are real probabilities.

    `train_counts` (examples per class in training) orders the per-class list by frequency
    and defines the rarest quartile for `rare_quartile_macro_f1`.
    """
    gold = np.asarray(gold, dtype=int)
    pred = np.asarray(pred, dtype=int)
    n = len(label_names)
    labels = list(range(n))
    p, r, f, s = precision_recall_fscore_support(
        gold, pred, labels=labels, average=None, zero_division=0
    )
    present = s > 0
    out: dict[str, Any] = {
        "n_examples": int(len(gold)),
        "accuracy": float(accuracy_score(gold, pred)),
        "macro_f1": macro_f1(gold, pred),
        "macro_f1_gold_or_pred": _macro_f1(gold, pred, scored_labels(gold, pred)),
        "weighted_f1": float(
            f1_score(gold, pred, labels=labels, average="weighted", zero_division=0)
        ),
        "mcc": float(matthews_corrcoef(gold, pred)) if len(gold) else 0.0,
        "invalid_rate": float((pred < 0).mean()) if len(pred) else 0.0,
        # Classes that occur in the reported split and that the method never gets right.
        "zero_f1_classes": int(((f == 0) & present).sum()),
        "zero_f1_class_names": [label_names[i] for i in labels if f[i] == 0 and present[i]],
        "per_class": {
            label_names[i]: {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "support": int(s[i]),
                **({"train_count": int(train_counts[i])} if train_counts is not None else {}),
            }
            for i in labels
        },
        "confusion_matrix": confusion_with_invalid(gold, pred, n).tolist(),
        "confusion_matrix_columns": [*label_names, INVALID_COLUMN],
    }
    if train_counts is not None:
        order = np.argsort(-np.asarray(train_counts), kind="stable")
        out["classes_by_frequency"] = [label_names[i] for i in order]
        rare = rarest_quartile(train_counts)
        rare_present = [i for i in rare if present[i]]
        out["rare_quartile_classes"] = [label_names[i] for i in rare]
        out["rare_quartile_macro_f1"] = (
            float(np.mean([f[i] for i in rare_present])) if rare_present else None
        )
    out.update(calibration_metrics(gold, pred, proba, proba_rows))
    return out


def calibration_metrics(gold: np.ndarray, pred: np.ndarray, proba: np.ndarray | None,
                        proba_rows: np.ndarray | None = None) -> dict[str, Any]:
    """ECE, Brier score and log loss over the rows with a valid prediction (pred >= 0) and real
    probabilities (`proba_rows`, None: all; an API answer parsed from text has none), and how
    many rows that is: an invalid output has no meaningful confidence, and a run with no such
    row must show no calibration (None), never a perfect 0."""
    valid = np.asarray(pred) >= 0
    if proba_rows is not None:
        valid &= np.asarray(proba_rows, dtype=bool)
    out: dict[str, Any] = {"calibration_examples": int(valid.sum()) if proba is not None else 0}
    if proba is None or not valid.any():
        return {**out, "ece": None, "brier": None, "log_loss": None}
    g, p = np.asarray(gold)[valid], np.asarray(proba, dtype=float)[valid]
    return {
        **out,
        "ece": expected_calibration_error(g, p),
        "brier": brier_score(g, p),
        "log_loss": float(-np.log(np.clip(p[np.arange(len(g)), g], 1e-12, 1)).mean()),
    }


def confusion_with_invalid(gold: np.ndarray, pred: np.ndarray, n_labels: int) -> np.ndarray:
    """Counts (gold class x predicted class), plus a last column for invalid predictions (-1)."""
    cm = np.zeros((n_labels, n_labels + 1), dtype=int)
    col = np.where(np.asarray(pred) < 0, n_labels, pred)
    np.add.at(cm, (np.asarray(gold, dtype=int), np.asarray(col, dtype=int)), 1)
    return cm


def macro_f1(gold: np.ndarray, pred: np.ndarray) -> float:
    """Macro-F1 over the classes that occur in `gold` (see the module docstring): a class
    absent from the split (a small validation set of banking77) adds no F1 of 0 to the
    average; predictions into it lower the recall of the true class. -1 (invalid) is wrong."""
    return _macro_f1(gold, pred, gold_labels(gold))


def _macro_f1(gold: np.ndarray, pred: np.ndarray, labels: list[int]) -> float:
    return float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0)) if labels else 0.0


def gold_labels(gold: np.ndarray) -> list[int]:
    """Label ids that occur in gold: the classes `macro_f1` averages over."""
    return sorted(set(np.asarray(gold).tolist()))


def scored_labels(gold: np.ndarray, pred: np.ndarray) -> list[int]:
    """Label ids present in gold or predictions (never the invalid id -1)."""
    return sorted(set(np.asarray(gold).tolist()) | set(np.asarray(pred)[np.asarray(pred) >= 0].tolist()))


def rarest_quartile(train_counts: np.ndarray) -> list[int]:
    """Label ids of the rarest quarter of classes by training frequency (at least one)."""
    counts = np.asarray(train_counts)
    k = max(1, int(np.ceil(len(counts) / 4)))
    return sorted(np.argsort(counts, kind="stable")[:k].tolist())
