"""Learning curves: crossover against the best prompting reference, on hand-written results."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from report_fixtures import write_run  # noqa: E402

from clfbench.report.learning_curve import learning_curves, plot_learning_curves  # noqa: E402
from clfbench.report.runs import load_runs  # noqa: E402

N = 300
LABELS = ["neg", "pos"]
GOLD = np.arange(N) % 2


def answers(accuracy: float, shift: int = 0) -> list[int]:
    """Predictions right on `accuracy` of the examples (which ones rotate with `shift`)."""
    right = np.roll(np.arange(N) < round(accuracy * N), shift)
    return np.where(right, GOLD, 1 - GOLD).tolist()


def write_curve(root: Path, method: str, accs: dict[str, tuple[float, int]], draws: int = 3,
                shift: int = 0) -> None:
    """One trained method at each size: {size: (accuracy, realised examples)}, `draws` runs each."""
    for size, (acc, n) in accs.items():
        for d in range(draws):
            write_run(root, f"{method}-{size.replace('/', '')}-d{d}", task="t", method=method, labels=LABELS,
                      gold=GOLD.tolist(), pred=answers(acc, shift + 7 * d), train_seconds=1.0,
                      spec={"train_size": size, "draw": d}, extra_metrics={"train_size": size, "n_train": n})


def write_reference(root: Path, acc: float = 0.7) -> None:
    write_run(root, "prompt", task="t", method="llm-prompt", model="tiny", labels=LABELS,
              gold=GOLD.tolist(), pred=answers(acc, 3))
    write_run(root, "prompt-weak", task="t", method="llm-prompt", model="tiny", labels=LABELS,
              gold=GOLD.tolist(), pred=answers(0.55), params={"shots": 2})


def curves_of(root: Path):
    (lc,) = learning_curves(load_runs(root), n_boot=1000)
    return lc


def test_crossover_at_32_per_class(tmp_path):
    write_reference(tmp_path)
    write_curve(tmp_path, "tfidf-lr", {"8/class": (0.6, 16), "32/class": (0.85, 64), "128": (0.9, 128)})
    lc = curves_of(tmp_path)
    assert lc.best_reference.label == "llm-prompt/tiny" and abs(lc.best_reference.mean - 0.7) < 0.01
    (curve,) = lc.curves
    assert [p.size for p in curve.points] == ["8/class", "32/class", "128"]  # by realised examples
    assert [p.runs for p in curve.points] == [3, 3, 3]  # draws pooled into one point
    assert curve.points[0].delta < 0 and not curve.points[0].significant
    assert curve.crossover is curve.points[1] and curve.crossover.size == "32/class"
    assert curve.points[1].low < 0.85 < curve.points[1].high
    text = lc.statement(curve)
    assert "beats llm-prompt/tiny" in text and "from 32/class (64 labelled examples)" in text
    assert "32/class" in lc.summary()
    png = plot_learning_curves(lc, tmp_path / "lc.png")
    assert png.stat().st_size > 5000


def test_never_in_the_measured_range(tmp_path):
    write_reference(tmp_path, acc=0.9)
    write_curve(tmp_path, "embed-probe", {"8/class": (0.6, 16), "all": (0.85, 400)})
    lc = curves_of(tmp_path)
    (curve,) = lc.curves
    assert curve.crossover is None
    assert all(p.delta < 0 for p in curve.points)
    assert "never beats llm-prompt/tiny" in lc.statement(curve) and "(8/class, all)" in lc.statement(curve)


def test_a_tie_is_not_a_crossover(tmp_path):
    """Exactly the reference's answers at every size: difference 0, p = 1, never a win."""
    write_reference(tmp_path, acc=0.7)
    for size, n in (("8/class", 16), ("128", 128)):
        write_run(tmp_path, f"tie-{size.replace('/', '')}", task="t", method="tfidf-lr", labels=LABELS,
                  gold=GOLD.tolist(), pred=answers(0.7, 3), spec={"train_size": size},
                  extra_metrics={"train_size": size, "n_train": n})
    lc = curves_of(tmp_path)
    (curve,) = lc.curves
    assert curve.crossover is None
    assert [p.delta for p in curve.points] == [0.0, 0.0] and [p.p_holm for p in curve.points] == [1.0, 1.0]
    assert "never beats" in lc.statement(curve)


def test_small_gain_is_not_significant_after_holm(tmp_path):
    """+2 points on 300 examples, wrong on other examples than the reference: positive, yet not
    significant, so no crossover is claimed."""
    write_reference(tmp_path, acc=0.7)
    write_curve(tmp_path, "tfidf-lr", {"8/class": (0.72, 16), "128": (0.72, 128)}, draws=1, shift=150)
    (curve,) = curves_of(tmp_path).curves
    assert all(p.delta > 0 for p in curve.points) and curve.crossover is None


def test_without_a_reference_the_curve_is_drawn_and_says_so(tmp_path):
    write_curve(tmp_path, "tfidf-lr", {"8/class": (0.6, 16), "all": (0.9, 400)}, draws=2)
    lc = curves_of(tmp_path)
    assert lc.references == [] and lc.curves[0].crossover is None
    assert "no prompting reference" in lc.statement(lc.curves[0])
    assert plot_learning_curves(lc, tmp_path / "lc.png").is_file()


def test_a_rerun_with_save_model_counts_once(tmp_path):
    """The runs `clfbench run` prints crossovers from come straight from `load_runs` (no
    report grouping before): a re-run that only also saved its model is still one run."""
    write_reference(tmp_path)
    write_curve(tmp_path, "tfidf-lr", {"8/class": (0.6, 16), "32/class": (0.85, 64)}, draws=1)
    write_run(tmp_path, "tfidf-lr-8class-d0-again", task="t", method="tfidf-lr", labels=LABELS,
              gold=GOLD.tolist(), pred=answers(0.6), train_seconds=1.0,
              spec={"train_size": "8/class", "draw": 0, "save_model": True},
              extra_metrics={"train_size": "8/class", "n_train": 16})
    (curve,) = curves_of(tmp_path).curves
    assert [p.runs for p in curve.points] == [1, 1]


def test_a_gain_within_the_spread_of_draws_is_not_a_crossover(tmp_path):
    """Six draws at 8/class average +3 points over the reference, but they range from 0.60 to
    0.86: the draws, not the 300 test examples, decide, and six of them cannot tell. Averaging
    the draws and resampling only the examples called this a crossover."""
    write_reference(tmp_path, acc=0.7)
    for d, acc in enumerate((0.60, 0.66, 0.72, 0.74, 0.80, 0.86)):
        write_run(tmp_path, f"lr-d{d}", task="t", method="tfidf-lr", labels=LABELS, gold=GOLD.tolist(),
                  pred=answers(acc, 3 + 11 * d), spec={"train_size": "8/class", "draw": d},
                  extra_metrics={"train_size": "8/class", "n_train": 16})
    (point,) = curves_of(tmp_path).curves[0].points
    assert point.runs == 6 and point.delta == pytest.approx(0.03, abs=0.005)
    assert point.p_value > 0.2 and not point.significant
