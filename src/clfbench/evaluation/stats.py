"""Uncertainty and significance for classification results on a shared test set.

- Percentile bootstrap confidence intervals (seeded) for accuracy, macro-F1 and MCC,
  computed from confusion counts so that every resample costs one `bincount`. With several
  runs (seeds) of one configuration on the same examples, each resample of the examples
  rescores every run and averages them (the runs are resampled too), so the interval is
  one of the mean over seeds, the number a table shows beside it.
- Paired tests on the same examples. The report's verdicts use `seed_aware_test`: the
  difference of the means over runs (seeds, draws), the number the tables show, against the
  variance from the test examples *and* from the spread between runs (Welch-Satterthwaite
  t), for accuracy and macro-F1 alike. `mcnemar` (exact binomial when there are few
  discordant pairs, chi-square with continuity correction otherwise) and `paired_bootstrap`
  test two fixed sets of predictions: training randomness is not in them.
- Holm's step-down correction, and `resamples_for_family`: enough bootstrap resamples that
  the smallest reachable p-value, times Holm's factor, stays well below alpha.

Label ids are 0..k-1; an invalid prediction (a generation that matched no label) is -1 and
counts as wrong for every class, exactly as in `clfbench.evaluation.metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

#: Below this many discordant pairs McNemar uses the exact binomial test.
EXACT_MCNEMAR_BELOW = 25
#: Resample indices held in memory at once (rows x examples).
_CHUNK_CELLS = 2_000_000


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


def _f1_per_class(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(F1, gold count, predicted count) per class and resample; invalid predictions only
    lower the recall of their gold class."""
    k = cm.shape[1]
    tp = np.diagonal(cm[:, :, :k], axis1=1, axis2=2)
    gold_n = cm.sum(axis=2)
    pred_n = cm[:, :, :k].sum(axis=1)
    denom = gold_n + pred_n
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0), gold_n, pred_n


def _mean_over(f1: np.ndarray, scored: np.ndarray) -> np.ndarray:
    n = scored.sum(axis=1)
    return np.divide((f1 * scored).sum(axis=1), n, out=np.zeros(len(f1)), where=n > 0)


def _macro_f1(cm: np.ndarray) -> np.ndarray:
    """Macro-F1 over the gold classes of that sample (scikit-learn's `labels=gold classes`),
    exactly as `clfbench.evaluation.metrics.quality_metrics`: a prediction into a class absent from gold
    lowers the recall of the true class but adds no class to the average."""
    f1, gold_n, _ = _f1_per_class(cm)
    return _mean_over(f1, gold_n > 0)


def _macro_f1_gold_or_pred(cm: np.ndarray) -> np.ndarray:
    """Macro-F1 over the classes present in gold or predictions (scikit-learn's default);
    `macro_f1_gold_or_pred` in metrics.json."""
    f1, gold_n, pred_n = _f1_per_class(cm)
    return _mean_over(f1, (gold_n + pred_n) > 0)


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
    "macro_f1_gold_or_pred": _macro_f1_gold_or_pred,
    "mcc": _mcc,
}


def metric_value(name: str, gold: np.ndarray, pred: np.ndarray, k: int) -> float:
    """One metric on the full sample (the bootstrap's point estimate)."""
    idx = np.arange(len(gold))[None, :]
    return float(METRICS[name](confusion_counts(gold, pred, k, idx))[0])


# --- bootstrap confidence intervals ----------------------------------------------------------
@dataclass
class Interval:
    value: float  # the mean over runs of the metric on all examples
    low: float
    high: float
    values: list[float] = field(default_factory=list)  # the metric of each run


def _as_runs(pred: np.ndarray) -> np.ndarray:
    """Predictions as (runs, n): one row per run (seed) on the same examples."""
    return np.atleast_2d(np.asarray(pred, dtype=np.int64))


def _resample_blocks(rng: np.random.Generator, n: int, n_resamples: int):
    """Rows of example indices drawn with replacement, in blocks that fit in memory."""
    chunk = max(1, _CHUNK_CELLS // max(n, 1))
    for start in range(0, n_resamples, chunk):
        yield start, rng.integers(0, n, size=(min(chunk, n_resamples - start), n))


def _per_run(fn: Callable[[np.ndarray], np.ndarray], gold: np.ndarray, preds: np.ndarray, k: int,
             idx: np.ndarray) -> np.ndarray:
    """Metric of every run on every resample: (runs, resamples)."""
    return np.stack([fn(confusion_counts(gold, p, k, idx)) for p in preds])


def bootstrap_ci(
    gold: np.ndarray,
    pred: np.ndarray,
    k: int,
    metrics: Sequence[str] = ("accuracy", "macro_f1", "mcc"),
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """CIs of each metric's mean over runs (seeded, reproducible), with the same two sources of
    variance as `seed_aware_test`, so that a table's interval and the verdict agree.

    `pred` is one run (n,) or several runs of one configuration on the same examples
    (runs, n). One run: the percentile bootstrap over test examples. Several runs: mean -/+
    t(df) x sqrt(se_examples^2 + s^2 / R), where se_examples is the bootstrap spread of the
    mean over the R runs (every run scored on the same resampled examples) and s^2 the sample
    variance between the runs on all examples, on the Welch-Satterthwaite df. (Resampling 3
    runs with replacement, as this did before, treats the training randomness as known: its
    intervals were too narrow when seeds disagree.)
    """
    gold = np.asarray(gold, dtype=np.int64)
    preds = _as_runs(pred)
    n, r = len(gold), len(preds)
    fns = {name: METRICS[name] for name in metrics}
    full = [confusion_counts(gold, p, k, np.arange(n)[None, :]) for p in preds]
    values = {name: np.array([fn(cm)[0] for cm in full]) for name, fn in fns.items()}
    if n < 2:
        return {name: Interval(float(v.mean()), float(v.mean()), float(v.mean()), v.tolist())
                for name, v in values.items()}
    means = {name: np.empty(n_resamples) for name in fns}
    for start, idx in _resample_blocks(np.random.default_rng(seed), n, n_resamples):
        cms = [confusion_counts(gold, p, k, idx) for p in preds]  # every run on the same examples
        for name, fn in fns.items():
            means[name][start:start + len(idx)] = np.stack([fn(cm) for cm in cms]).mean(axis=0)
    alpha = 1 - confidence
    out: dict[str, Interval] = {}
    for name, v in values.items():
        if r == 1:
            low, high = np.quantile(means[name], [alpha / 2, 1 - alpha / 2])
        else:
            var_e, var_s = float(means[name].var(ddof=1)), float(v.var(ddof=1)) / r
            var = var_e + var_s
            parts = [(var_e, n - 1), (var_s, r - 1)]
            df = var**2 / sum(p**2 / d for p, d in parts if p > 0) if var > 0 else math.inf
            half = float(sps.t(df).ppf(1 - alpha / 2)) * math.sqrt(var) if var > 0 else 0.0
            floor = -1.0 if name == "mcc" else 0.0
            low, high = max(floor, v.mean() - half), min(1.0, v.mean() + half)
        out[name] = Interval(float(v.mean()), float(low), float(high), v.tolist())
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

    `pred_a` / `pred_b` are one run (n,) or several runs (runs, n) each; with several, a
    system's metric is the mean over its runs. Two-sided p-value from the bootstrap
    distribution shifted to the null (Efron & Tibshirani 1993, sec. 16.4):
    p = (1 + #{|d*_b - d| >= |d|}) / (B + 1), so never below 1 / (B + 1).
    """
    gold = np.asarray(gold, dtype=np.int64)
    runs_a, runs_b = _as_runs(pred_a), _as_runs(pred_b)
    n = len(gold)
    fn = METRICS[metric]

    def diff(idx: np.ndarray) -> np.ndarray:
        return _per_run(fn, gold, runs_a, k, idx).mean(axis=0) - _per_run(fn, gold, runs_b, k, idx).mean(axis=0)

    delta = float(diff(np.arange(n)[None])[0])
    deltas = np.empty(n_resamples)
    for start, idx in _resample_blocks(np.random.default_rng(seed), n, n_resamples):
        deltas[start:start + len(idx)] = diff(idx)
    alpha = 1 - confidence
    low, high = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
    if delta == 0 and np.all(deltas == 0):
        p = 1.0
    else:
        p = (1 + int((np.abs(deltas - delta) >= abs(delta)).sum())) / (n_resamples + 1)
    return PairedBootstrap(delta, float(low), float(high), float(min(1.0, p)), n_resamples)


@dataclass
class SeedAwareTest:
    """metric(A) - metric(B), each the mean over its runs, tested against the variance from
    both the test examples and the training randomness (seeds, draws)."""

    metric: str
    delta: float  # mean over A's runs minus mean over B's runs, on all examples
    low: float  # 95% (`confidence`) interval: delta -/+ t(df) x se
    high: float
    p_value: float  # two-sided, Student's t with the Welch-Satterthwaite df
    se: float  # sqrt(se_examples^2 + se_seeds^2)
    se_examples: float  # from resampling the test examples (runs fixed)
    se_seeds: float  # sqrt(s_A^2 / R_A + s_B^2 / R_B): the spread between runs on the full test set
    df: float  # math.inf when no side has two runs (nothing estimated from seeds)
    runs_a: int
    runs_b: int
    n_resamples: int  # 0: the examples' variance is exact (accuracy)
    test: str = "seed-aware t-test"

    @property
    def seeds_dominate(self) -> bool:
        """The seed-to-seed spread, not the number of test examples, limits what can be said."""
        return self.se_seeds > self.se_examples


def seed_aware_test(
    gold: np.ndarray,
    pred_a: np.ndarray,
    pred_b: np.ndarray,
    k: int,
    metric: str = "macro_f1",
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> SeedAwareTest:
    """Test of mean-over-runs metric(A) - metric(B) on the same examples, counting both sources
    of variance: which test examples were drawn, and which training seeds (or draws) were run.

    `pred_a` / `pred_b`: one run (n,) or several runs (runs, n) each. With D the difference of
    the means over runs,

    - se_examples^2: the variance of D over resampled test examples, the runs held fixed
      (exact, var(d_i) / n, for accuracy; a paired bootstrap with `n_resamples` otherwise);
    - se_seeds^2 = s_A^2 / R_A + s_B^2 / R_B, where s^2 is the sample variance over a side's
      R runs of the metric on all examples (a side with one run adds nothing: its training
      randomness is not measured, which the report states);
    - t = D / sqrt(se_examples^2 + se_seeds^2) on the Welch-Satterthwaite degrees of freedom
      (the examples' term with n - 1, each seed term with R - 1): with 3 seeds a side, a
      difference that the seed spread could explain needs t of about 2.8, not 1.96.

    The seed spread on a fixed test set also carries per-example disagreement that the
    examples' term already holds, so the test errs on the conservative side. Simulation:
    benchmarks/seed_variance.py (false "best" rate and power, BENCHMARKS.md).
    """
    gold = np.asarray(gold, dtype=np.int64)
    runs_a, runs_b = _as_runs(pred_a), _as_runs(pred_b)
    n = len(gold)
    fn = METRICS[metric]
    everything = np.arange(n)[None, :]
    va = _per_run(fn, gold, runs_a, k, everything)[:, 0]
    vb = _per_run(fn, gold, runs_b, k, everything)[:, 0]
    delta = float(va.mean() - vb.mean())
    used = 0
    if n < 2:
        var_e = 0.0
    elif metric == "accuracy":
        d = (runs_a == gold).mean(axis=0) - (runs_b == gold).mean(axis=0)
        var_e = float(d.var(ddof=1) / n)
    else:
        deltas = np.empty(n_resamples)
        for start, idx in _resample_blocks(np.random.default_rng(seed), n, n_resamples):
            deltas[start:start + len(idx)] = (_per_run(fn, gold, runs_a, k, idx).mean(axis=0)
                                              - _per_run(fn, gold, runs_b, k, idx).mean(axis=0))
        var_e, used = float(deltas.var(ddof=1)), n_resamples
    parts = [(var_e, max(n - 1, 1))]
    for v in (va, vb):
        if len(v) > 1:
            parts.append((float(v.var(ddof=1)) / len(v), len(v) - 1))
    var = sum(p for p, _ in parts)
    var_s = var - var_e
    if var <= 0:
        p = 1.0 if delta == 0 else 0.0
        return SeedAwareTest(metric, delta, delta, delta, p, 0.0, 0.0, 0.0, math.inf, len(va), len(vb), used)
    seeds_measured = len(parts) > 1
    df = (var**2 / sum(p**2 / d for p, d in parts if p > 0)) if seeds_measured else math.inf
    se = math.sqrt(var)
    t = delta / se
    dist = sps.t(df) if math.isfinite(df) else sps.norm()
    p = float(min(1.0, 2 * dist.sf(abs(t))))
    half = float(dist.ppf(0.5 + confidence / 2)) * se
    return SeedAwareTest(metric, delta, delta - half, delta + half, p, se, math.sqrt(var_e),
                         math.sqrt(max(var_s, 0.0)), float(df), len(va), len(vb), used)


def resamples_for_family(n_tests: int, alpha: float = 0.05, minimum: int = 1000, margin: float = 20.0) -> int:
    """Bootstrap resamples for a family of `n_tests` Holm-corrected tests: B >= margin x
    n_tests / alpha, so that the smallest p-value the bootstrap can reach, 1 / (B + 1), times
    Holm's largest factor (n_tests) is at most alpha / margin, however many tests there are."""
    return max(minimum, math.ceil(margin * max(1, n_tests) / alpha))


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
