"""Bootstrap CIs, McNemar, paired bootstrap and Holm, checked against sklearn, scipy and hand counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from clfbench.evaluation import stats
from clfbench.evaluation.metrics import gold_labels, quality_metrics, scored_labels


def _data(n: int = 400, k: int = 4, acc: float = 0.7, seed: int = 0):
    rng = np.random.default_rng(seed)
    gold = rng.integers(0, k, n)
    pred = np.where(rng.random(n) < acc, gold, rng.integers(-1, k, n))  # -1 = invalid output
    return gold, pred


def test_confusion_metrics_match_sklearn_on_resamples():
    gold, pred = _data()
    k = 6  # labels 4 and 5 never occur: left out of macro-F1, as in clfbench.evaluation.metrics
    idx = np.random.default_rng(1).integers(0, len(gold), size=(6, len(gold)))
    cm = stats.confusion_counts(gold, pred, k, idx)
    for b in range(6):
        g, p = gold[idx[b]], pred[idx[b]]
        assert stats.METRICS["accuracy"](cm)[b] == pytest.approx(accuracy_score(g, p))
        assert stats.METRICS["macro_f1"](cm)[b] == pytest.approx(
            f1_score(g, p, labels=gold_labels(g), average="macro", zero_division=0))
        assert stats.METRICS["macro_f1_gold_or_pred"](cm)[b] == pytest.approx(
            f1_score(g, p, labels=scored_labels(g, p), average="macro", zero_division=0))
        assert stats.METRICS["mcc"](cm)[b] == pytest.approx(matthews_corrcoef(g, p))


def test_macro_f1_matches_quality_metrics_with_rare_and_unpredicted_classes():
    # 10 labels; 3 never occur in gold, one of those is predicted once (a false positive).
    rng = np.random.default_rng(4)
    gold = rng.choice([0, 1, 2, 3, 4, 5, 6], size=150, p=[.4, .2, .15, .1, .1, .03, .02])
    pred = np.where(rng.random(150) < 0.6, gold, rng.integers(-1, 7, 150))
    pred[0] = 8
    names = [f"c{i}" for i in range(10)]
    q = quality_metrics(gold, pred, names)
    assert stats.metric_value("macro_f1", gold, pred, 10) == pytest.approx(q["macro_f1"])
    assert stats.metric_value("macro_f1_gold_or_pred", gold, pred, 10) == pytest.approx(q["macro_f1_gold_or_pred"])
    assert q["macro_f1"] != pytest.approx(q["macro_f1_gold_or_pred"])  # class 8: predicted, never gold
    assert stats.metric_value("mcc", gold, pred, 10) == pytest.approx(q["mcc"])
    ci = stats.bootstrap_ci(gold, pred, 10, n_resamples=500)
    assert ci["macro_f1"].low <= q["macro_f1"] <= ci["macro_f1"].high


def test_point_estimates_equal_clfbench_metrics():
    gold, pred = _data(k=3, seed=5)
    q = quality_metrics(gold, pred, ["a", "b", "c"])
    ci = stats.bootstrap_ci(gold, pred, 3, n_resamples=200)
    for name in ("accuracy", "macro_f1", "mcc"):
        assert ci[name].value == pytest.approx(q[name])
        assert ci[name].low <= ci[name].value <= ci[name].high


def test_bootstrap_ci_is_seeded_and_matches_binomial_width():
    gold, pred = _data(n=1000, k=2, acc=0.8)
    a = stats.bootstrap_ci(gold, pred, 2, metrics=["accuracy"], n_resamples=2000, seed=3)["accuracy"]
    b = stats.bootstrap_ci(gold, pred, 2, metrics=["accuracy"], n_resamples=2000, seed=3)["accuracy"]
    c = stats.bootstrap_ci(gold, pred, 2, metrics=["accuracy"], n_resamples=2000, seed=4)["accuracy"]
    assert (a.low, a.high) == (b.low, b.high)
    assert (a.low, a.high) != (c.low, c.high)
    p = a.value
    half = 1.959964 * math.sqrt(p * (1 - p) / len(gold))  # normal approximation to the binomial
    assert (a.high - a.low) / 2 == pytest.approx(half, rel=0.15)
    assert a.low == pytest.approx(p - half, abs=0.01)


def test_bootstrap_ci_agrees_with_scipy_on_accuracy():
    gold, pred = _data(n=300, k=3)
    correct = (gold == pred).astype(float)
    ref = sps.bootstrap((correct,), np.mean, n_resamples=4000, method="percentile",
                        rng=np.random.default_rng(0)).confidence_interval
    ours = stats.bootstrap_ci(gold, pred, 3, metrics=["accuracy"], n_resamples=4000, seed=9)["accuracy"]
    assert ours.low == pytest.approx(ref.low, abs=0.01)
    assert ours.high == pytest.approx(ref.high, abs=0.01)


def test_mcnemar_exact_for_few_discordant_pairs():
    a = np.array([1] * 50 + [1] * 7 + [0] * 2 + [0] * 10, dtype=bool)
    b = np.array([1] * 50 + [0] * 7 + [1] * 2 + [0] * 10, dtype=bool)
    r = stats.mcnemar(a, b)
    assert (r.b, r.c) == (7, 2)
    assert r.test == "exact binomial"
    assert r.p_value == pytest.approx(sps.binomtest(7, 9, 0.5).pvalue)
    # By hand: 2 * P(X <= 2 | n=9, p=.5) = 2 * (1 + 9 + 36) / 512
    assert r.p_value == pytest.approx(2 * 46 / 512)


def test_mcnemar_chi_square_with_continuity_correction():
    a = np.array([1] * 40 + [0] * 15 + [1] * 100, dtype=bool)
    b = np.array([0] * 40 + [1] * 15 + [1] * 100, dtype=bool)
    r = stats.mcnemar(a, b)
    assert (r.b, r.c) == (40, 15)
    assert r.test == "chi-square (continuity corrected)"
    assert r.statistic == pytest.approx((abs(40 - 15) - 1) ** 2 / 55)
    assert r.p_value == pytest.approx(sps.chi2.sf((24**2) / 55, df=1))


def test_mcnemar_no_disagreement():
    a = np.ones(10, dtype=bool)
    assert stats.mcnemar(a, a).p_value == 1.0


def test_paired_bootstrap_identical_systems():
    gold, pred = _data()
    r = stats.paired_bootstrap(gold, pred, pred, 4, n_resamples=300)
    assert r.delta == 0 and r.p_value == 1.0 and r.low == r.high == 0


def test_paired_bootstrap_detects_a_real_difference_and_is_antisymmetric():
    gold, pred_b = _data(n=500, k=3, acc=0.6, seed=2)
    rng = np.random.default_rng(7)
    pred_a = np.where(rng.random(500) < 0.5, gold, pred_b)  # A fixes half of B's errors
    r = stats.paired_bootstrap(gold, pred_a, pred_b, 3, n_resamples=1000, seed=1)
    expect = (f1_score(gold, pred_a, labels=range(3), average="macro", zero_division=0)
              - f1_score(gold, pred_b, labels=range(3), average="macro", zero_division=0))
    assert r.delta == pytest.approx(expect)
    assert r.low > 0 and r.p_value < 0.01
    s = stats.paired_bootstrap(gold, pred_b, pred_a, 3, n_resamples=1000, seed=1)
    assert s.delta == pytest.approx(-r.delta)
    assert s.p_value == pytest.approx(r.p_value)


def test_paired_bootstrap_small_difference_is_not_significant():
    gold, pred_b = _data(n=300, k=2, acc=0.7, seed=3)
    pred_a = pred_b.copy()
    wrong = np.flatnonzero(pred_b != gold)
    pred_a[wrong[:2]] = gold[wrong[:2]]  # two more right out of 300
    r = stats.paired_bootstrap(gold, pred_a, pred_b, 2, n_resamples=1000)
    assert r.delta > 0 and r.p_value > 0.05


def test_holm_hand_computed():
    # sorted: .01*4=.04, .03*3=.09, .04*2=.08 -> max(.09,.08)=.09, .5*1=.5
    assert stats.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert stats.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    assert stats.holm([]) == []


def test_interval_of_several_runs_is_around_their_mean():
    # Three seeds of one configuration that differ a lot: the interval is of the mean over
    # them (rescored on the same resampled examples), so the mean shown lies inside it.
    rng = np.random.default_rng(11)
    gold = rng.integers(0, 3, 300)
    runs = np.stack([np.where(rng.random(300) < acc, gold, (gold + 1) % 3) for acc in (0.35, 0.6, 0.9)])
    ci = stats.bootstrap_ci(gold, runs, 3, n_resamples=500, seed=2)
    for name in ("accuracy", "macro_f1", "mcc"):
        per_run = [stats.metric_value(name, gold, r, 3) for r in runs]
        assert ci[name].values == pytest.approx(per_run)
        assert ci[name].value == pytest.approx(np.mean(per_run))
        assert ci[name].low <= ci[name].value <= ci[name].high
        # wider than any single run's interval over examples alone: the seeds disagree
        one = stats.bootstrap_ci(gold, runs[1], 3, metrics=[name], n_resamples=500, seed=2)[name]
        assert ci[name].high - ci[name].low > one.high - one.low
    assert stats.bootstrap_ci(gold, runs[:1], 3, n_resamples=200)["accuracy"].values == pytest.approx(
        [float((runs[0] == gold).mean())])


def test_paired_bootstrap_of_run_means():
    gold, pred_b = _data(n=300, k=3, acc=0.6, seed=8)
    rng = np.random.default_rng(3)
    runs_a = np.stack([np.where(rng.random(300) < 0.5, gold, pred_b) for _ in range(3)])
    r = stats.paired_bootstrap(gold, runs_a, pred_b, 3, "accuracy", n_resamples=300)
    expect = np.mean([(ra == gold).mean() for ra in runs_a]) - (pred_b == gold).mean()
    assert r.delta == pytest.approx(expect)
    assert r.low <= r.delta <= r.high


def test_resamples_for_family_make_a_clear_leader_reachable():
    # 12 configurations: the leader against 11 others. With B resamples the smallest
    # p-value is 1 / (B + 1); Holm multiplies the smallest by 11.
    for k in (2, 12, 40):
        b = stats.resamples_for_family(k - 1)
        assert (k - 1) / (b + 1) <= 0.05 / 20
    assert stats.resamples_for_family(1) == 1000


def _nested(n: int, gold: np.ndarray, acc: float, shift: int) -> np.ndarray:
    """Binary predictions right on `acc` of the examples (which ones rotate with `shift`)."""
    right = np.roll(np.arange(n) < round(acc * n), shift)
    return np.where(right, gold, 1 - gold)


def test_seed_aware_test_counts_the_spread_between_seeds():
    # Means over 3 seeds 0.82 vs 0.80, but the seeds of A span 0.76-0.88: the +2 points are
    # well inside what training randomness gives. Over examples alone they look certain.
    n = 1000
    gold = np.arange(n) % 2
    runs_a = np.stack([_nested(n, gold, a, s) for a, s in ((0.76, 0), (0.82, 5), (0.88, 10))])
    runs_b = np.stack([_nested(n, gold, a, s) for a, s in ((0.78, 1), (0.80, 6), (0.82, 11))])
    assert stats.paired_bootstrap(gold, runs_a, runs_b, 2, "macro_f1", 2000).p_value < 0.001  # the old test
    for metric in ("accuracy", "macro_f1"):
        t = stats.seed_aware_test(gold, runs_a, runs_b, 2, metric, n_resamples=2000)
        assert t.delta == pytest.approx(0.02, abs=1e-9)
        assert t.p_value > 0.5 and t.low < 0 < t.high and t.seeds_dominate
        assert (t.runs_a, t.runs_b) == (3, 3) and 2 < t.df < 4


def test_seed_aware_test_on_accuracy_by_hand():
    rng = np.random.default_rng(4)
    n, gold = 600, rng.integers(0, 3, 600)
    runs_a = np.stack([np.where(rng.random(n) < acc, gold, (gold + 1) % 3) for acc in (0.70, 0.74, 0.79, 0.72)])
    runs_b = np.stack([np.where(rng.random(n) < acc, gold, (gold + 2) % 3) for acc in (0.66, 0.71)])
    t = stats.seed_aware_test(gold, runs_a, runs_b, 3, "accuracy")
    va, vb = (runs_a == gold).mean(axis=1), (runs_b == gold).mean(axis=1)
    d = (runs_a == gold).mean(axis=0) - (runs_b == gold).mean(axis=0)
    parts = [(d.var(ddof=1) / n, n - 1), (va.var(ddof=1) / 4, 3), (vb.var(ddof=1) / 2, 1)]
    var = sum(p for p, _ in parts)
    df = var**2 / sum(p**2 / f for p, f in parts)
    assert t.delta == pytest.approx(va.mean() - vb.mean())
    assert t.se == pytest.approx(math.sqrt(var)) and t.df == pytest.approx(df)
    assert t.p_value == pytest.approx(2 * sps.t(df).sf(abs(t.delta) / math.sqrt(var)))
    assert t.high - t.delta == pytest.approx(sps.t(df).ppf(0.975) * math.sqrt(var))


def test_seed_aware_test_with_one_run_each_is_over_examples_only():
    gold, pred_b = _data(n=500, k=3, acc=0.6, seed=1)
    pred_a = np.where(np.random.default_rng(2).random(500) < 0.4, gold, pred_b)
    t = stats.seed_aware_test(gold, pred_a, pred_b, 3, "accuracy")
    assert t.df == math.inf and t.se_seeds == 0.0
    d = (pred_a == gold).astype(float) - (pred_b == gold)
    assert t.p_value == pytest.approx(2 * sps.norm.sf(abs(d.mean()) / (d.std(ddof=1) / math.sqrt(500))))
    same = stats.seed_aware_test(gold, pred_a, pred_a, 3, "macro_f1", n_resamples=200)
    assert same.delta == 0 and same.p_value == 1.0


def test_interval_of_three_seeds_covers_the_true_mean_under_seed_spread():
    """Truth known: each seed's accuracy is 0.80 + a seed effect (sd 3 points), scored on 2,000
    test examples; the interval of the mean over 3 seeds must cover 0.80 about 95% of the time.
    Resampling the 3 seeds with replacement (the old interval) covered it in 96 of 120 (80%)."""
    rng = np.random.default_rng(5)
    covered, reps, n = 0, 120, 2000
    for rep in range(reps):
        gold = rng.integers(0, 2, n)
        accs = 0.80 + rng.normal(0, 0.03, 3)
        runs = np.stack([np.where(rng.random(n) < a, gold, 1 - gold) for a in accs])
        iv = stats.bootstrap_ci(gold, runs, 2, metrics=["accuracy"], n_resamples=200, seed=rep)["accuracy"]
        covered += iv.low <= 0.80 <= iv.high
    assert covered / reps >= 0.9, covered / reps  # 112 of 120 (93%)
