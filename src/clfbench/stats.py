"""Uncertainty and significance for classification results on a shared test set.

- Bootstrap confidence intervals over examples (scipy.stats.bootstrap, percentile method,
  seeded) for accuracy, macro-F1 and MCC, computed from confusion counts so that every
  resample costs one `bincount`.
- Paired tests on the same examples: McNemar for accuracy (exact binomial when there are
  few discordant pairs, chi-square with continuity correction otherwise) and a paired
  bootstrap for the difference in macro-F1.
- Holm's step-down correction across the comparisons of one task.

Label ids are 0..k-1; an invalid prediction (a generation that matched no label) is -1 and
counts as wrong for every class, exactly as in `clfbench.metrics`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

#: Below this many discordant pairs McNemar uses the exact binomial test.
EXACT_MCNEMAR_BELOW = 25
# scipy >= 1.15 takes `rng`; older releases only `random_state` (deprecated since).
_RNG_ARG = "rng" if "rng" in inspect.signature(sps.bootstrap).parameters else "random_state"


# --- metrics from confusion counts (vectorised over resamples) ----------------------------
def confusion_counts(gold: np.ndarray, pred: np.ndarray, k: int, idx: np.ndarray) -> np.ndarray:
    """Confusion counts for each row of resample indices `idx` (B, n) -> (B, k, k+1).

    Column k holds invalid predictions (-1): wrong for every class, never a true positive.
    """
    gold = np.asarray(gold, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    pred = np.where(pred < 0, k, pred)
    cell = gold * (k + 1) + pred  # (n,)
    idx = np.atleast_2d(idx)
    b = idx.shape[0]
    flat = cell[idx] + (np.arange(b)[:, None] * k * (k + 1))
    counts = np.bincount(flat.ravel(), minlength=b * k * (k + 1))
    return counts.reshape(b, k, k + 1).astype(float)


def _accuracy(cm: np.ndarray) -> np.ndarray:
    k = cm.shape[1]
    return np.trace(cm[:, :, :k], axis1=1, axis2=2) / cm.sum(axis=(1, 2))


def _macro_f1(cm: np.ndarray) -> np.ndarray:
    """Macro-F1 over the labels present in gold or predictions (of that sample), exactly as
    `clfbench.metrics.quality_metrics` (`scored_labels`): a label that neither occurs nor is
    predicted is left out rather than scored 0."""
    k = cm.shape[1]
    tp = np.diagonal(cm[:, :, :k], axis1=1, axis2=2)
    gold_n = cm.sum(axis=2)
    pred_n = cm[:, :, :k].sum(axis=1)
    denom = gold_n + pred_n
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    n_present = (denom > 0).sum(axis=1)
    return np.divide(f1.sum(axis=1), n_present, out=np.zeros(len(f1)), where=n_present > 0)


def _mcc(cm: np.ndarray) -> np.ndarray:
    """Multi-class MCC (Gorodkin), as sklearn.metrics.matthews_corrcoef, invalid = own class."""
    k = cm.shape[1]
    full = np.zeros((cm.shape[0], k + 1, k + 1))
    full[:, :k, :] = cm
    t = full.sum(axis=2)  # true counts per class
    p = full.sum(axis=1)  # predicted counts per class
    c = np.trace(full, axis1=1, axis2=2)
    s = full.sum(axis=(1, 2))
    cov_ytyp = c * s - (t * p).sum(axis=1)
    cov_ypyp = s**2 - (p * p).sum(axis=1)
    cov_ytyt = s**2 - (t * t).sum(axis=1)
    denom = np.sqrt(cov_ytyt * cov_ypyp)
    return np.divide(cov_ytyp, denom, out=np.zeros_like(cov_ytyp), where=denom > 0)


METRICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "accuracy": _accuracy,
    "macro_f1": _macro_f1,
    "mcc": _mcc,
}


def metric_value(name: str, gold: np.ndarray, pred: np.ndarray, k: int) -> float:
    """One metric on the full sample (the bootstrap's point estimate)."""
    idx = np.arange(len(gold))[None, :]
    return float(METRICS[name](confusion_counts(gold, pred, k, idx))[0])


# --- bootstrap confidence intervals ----------------------------------------------------------
@dataclass
class Interval:
    value: float
    low: float
    high: float


def bootstrap_ci(
    gold: np.ndarray,
    pred: np.ndarray,
    k: int,
    metrics: Sequence[str] = ("accuracy", "macro_f1", "mcc"),
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """Percentile bootstrap CIs over examples for each metric (seeded, reproducible)."""
    gold = np.asarray(gold, dtype=int)
    pred = np.asarray(pred, dtype=int)
    n = len(gold)
    out: dict[str, Interval] = {}
    for name in metrics:
        point = metric_value(name, gold, pred, k)
        if n < 2:
            out[name] = Interval(point, point, point)
            continue
        fn = METRICS[name]

        def statistic(idx: np.ndarray, axis: int = -1, fn=fn) -> np.ndarray:
            idx = np.asarray(idx, dtype=np.int64)
            flat = idx.reshape(-1, idx.shape[-1])
            return fn(confusion_counts(gold, pred, k, flat)).reshape(idx.shape[:-1])

        res = sps.bootstrap(
            (np.arange(n),), statistic, n_resamples=n_resamples, vectorized=True,
            confidence_level=confidence, method="percentile", **{_RNG_ARG: np.random.default_rng(seed)},
        )
        ci = res.confidence_interval
        out[name] = Interval(point, float(ci.low), float(ci.high))
    return out


# --- paired tests ------------------------------------------------------------------------------
@dataclass
class McNemar:
    b: int  # A right, B wrong
    c: int  # A wrong, B right
    statistic: float | None
    p_value: float
    test: str  # "exact binomial" or "chi-square (continuity corrected)"


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray, exact_below: int = EXACT_MCNEMAR_BELOW) -> McNemar:
    """McNemar's test on paired correctness vectors (same examples, same order).

    Exact two-sided binomial test (scipy.stats.binomtest, p = 0.5) when the number of
    discordant pairs b + c is below `exact_below`; otherwise the chi-square statistic with
    continuity correction (|b - c| - 1)^2 / (b + c) on 1 degree of freedom.
    """
    a = np.asarray(correct_a, dtype=bool)
    bb = np.asarray(correct_b, dtype=bool)
    if a.shape != bb.shape:
        raise ValueError("mcnemar: correctness vectors differ in length")
    b = int((a & ~bb).sum())
    c = int((~a & bb).sum())
    n = b + c
    if n == 0:
        return McNemar(b, c, None, 1.0, "exact binomial")
    if n < exact_below:
        p = sps.binomtest(b, n, 0.5, alternative="two-sided").pvalue
        return McNemar(b, c, None, float(min(1.0, p)), "exact binomial")
    stat = (abs(b - c) - 1.0) ** 2 / n
    return McNemar(b, c, float(stat), float(sps.chi2.sf(stat, 1)), "chi-square (continuity corrected)")


@dataclass
class PairedBootstrap:
    delta: float  # metric(A) - metric(B) on the full sample
    low: float
    high: float
    p_value: float
    n_resamples: int


def paired_bootstrap(
    gold: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    k: int,
    metric: str = "macro_f1",
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> PairedBootstrap:
    """Paired bootstrap test of metric(A) - metric(B): both systems scored on the same resamples.

    Two-sided p-value from the bootstrap distribution shifted to the null (Efron & Tibshirani
    1993, sec. 16.4): p = (1 + #{|d*_b - d| >= |d|}) / (B + 1).
    """
    gold = np.asarray(gold, dtype=int)
    n = len(gold)
    fn = METRICS[metric]
    delta = float(fn(confusion_counts(gold, pred_a, k, np.arange(n)[None]))[0]
                  - fn(confusion_counts(gold, pred_b, k, np.arange(n)[None]))[0])
    rng = np.random.default_rng(seed)
    deltas = np.empty(n_resamples)
    chunk = max(1, 2_000_000 // max(n, 1))
    for start in range(0, n_resamples, chunk):
        m = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(m, n))
        deltas[start:start + m] = (fn(confusion_counts(gold, pred_a, k, idx))
                                   - fn(confusion_counts(gold, pred_b, k, idx)))
    alpha = 1 - confidence
    low, high = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
    if delta == 0 and np.all(deltas == 0):
        p = 1.0
    else:
        p = (1 + int((np.abs(deltas - delta) >= abs(delta)).sum())) / (n_resamples + 1)
    return PairedBootstrap(delta, float(low), float(high), float(min(1.0, p)), n_resamples)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()
