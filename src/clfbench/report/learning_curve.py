"""Learning curves: quality against labelled training examples, and where training beats prompting.

Runs made with `--train-sizes` carry a `train_size` in their spec. Per task (test examples
shared by every run compared), a *curve* is one trained configuration (method, model,
parameters) at each size; a point pools the runs of one size (its draws of the training
subset, and seeds) into the mean macro-F1 with a bootstrap interval that resamples the
test examples and the draws (`stats.bootstrap_ci`). Methods that do not train (zero-/few-
shot prompting, API models) are *references*: flat lines.

Crossover: the smallest size at which a curve beats the best reference (the highest mean
macro-F1) significantly. At each size the seed-aware test of macro-F1 (`stats.
seed_aware_test`: the difference of the means over runs, with a standard error from the
resampled test examples and from the spread between the point's runs, i.e. its draws of the
training subset and seeds, on Welch-Satterthwaite degrees of freedom) gives a p-value; the
p-values of one curve's sizes are Holm-corrected together (one family per curve), and the
crossover is the smallest size with a positive difference and a corrected p below `alpha`.
Otherwise the curve "never beats it in the measured range". A point with one run measures no
training randomness; its test covers the test examples only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from clfbench.evaluation import stats
from clfbench.methods.base import method_trains
from clfbench.report.runs import Run, common_ids, group_configs

ALPHA = 0.05


@dataclass
class Point:
    size: str  # as asked: "8/class", "128", "all"
    n: float  # labelled training examples realised (mean over the point's runs)
    runs: int
    mean: float  # macro-F1, mean over runs
    low: float
    high: float
    delta: float | None = None  # mean macro-F1 minus the best reference's
    p_value: float | None = None  # seed-aware test, before correction
    p_holm: float | None = None

    @property
    def significant(self) -> bool:
        return self.delta is not None and self.delta > 0 and self.p_holm is not None and self.p_holm < ALPHA


@dataclass
class Reference:
    label: str
    runs: int
    mean: float
    low: float
    high: float
    degenerate: bool = False


@dataclass
class Curve:
    label: str
    method: str
    points: list[Point] = field(default_factory=list)
    crossover: Point | None = None


@dataclass
class LearningCurves:
    task: str
    n_test: int
    curves: list[Curve]
    references: list[Reference]
    notes: list[str] = field(default_factory=list)

    @property
    def best_reference(self) -> Reference | None:
        return max(self.references, key=lambda r: r.mean) if self.references else None

    def statement(self, curve: Curve) -> str:
        """One sentence: where `curve` first beats the best reference significantly, or that it never does."""
        ref = self.best_reference
        if ref is None:
            return f"{curve.label}: no prompting reference to compare with"
        name = ref.label + (", itself degenerate" if ref.degenerate else "")
        c = curve.crossover
        if c is not None:
            return (f"{curve.label}: beats {name} (macro-F1 {ref.mean:.3f}) significantly from "
                    f"{c.size} ({c.n:.0f} labelled examples): macro-F1 {c.mean:.3f}, "
                    f"+{c.delta:.3f}, Holm-corrected p = {c.p_holm:.3g}")
        sizes = ", ".join(p.size for p in curve.points)
        return (f"{curve.label}: never beats {name} (macro-F1 {ref.mean:.3f}) significantly "
                f"in the measured range ({sizes})")

    def summary(self) -> str:
        head = f"learning curves, {self.task} ({self.n_test} test examples, macro-F1, alpha {ALPHA}):"
        return "\n".join([head, *(f"  {self.statement(c)}" for c in self.curves), *(f"  note: {n}" for n in self.notes)])


def _size(r: Run) -> str | None:
    return r.spec.get("train_size") or r.metrics.get("train_size")


def _n_train(r: Run) -> float:
    n = r.metrics.get("n_train")
    if n is None:
        n = ((r.metrics.get("splits") or {}).get("sizes") or {}).get("train", 0)
    return float(n)


def _curve_key(r: Run) -> str:
    """The run's configuration key without its size: the runs of one curve share it."""
    ident = json.loads(r.key)
    ident.pop("train_size", None)
    return json.dumps(ident, sort_keys=True)


def _label_without_size(r: Run) -> str:
    return r.label.split(" [train ", 1)[0]


def learning_curves(runs: list[Run], n_boot: int | None = None, seed: int = 0) -> list[LearningCurves]:
    """The learning curves of every task with runs at a training size (`--train-sizes`).

    `runs` as `report.runs.load_runs` gives them (configuration keys and labels set).
    `n_boot`: bootstrap resamples (at least; raised to what Holm over a curve's sizes needs).
    Only runs scored on the test examples of the task's sized runs are used, and only the
    runs the report's statistics use (`Config.scored_runs`: a re-run with --save-model, or
    seeds with identical predictions, count once).
    """
    scored = {id(r) for cfgs in group_configs(runs).values() for c in cfgs for r in c.scored_runs}
    out = []
    for task in sorted({r.task for r in runs if _size(r)}):
        task_runs = [r for r in runs if r.task == task and id(r) in scored]
        sized = [r for r in task_runs if _size(r)]
        digest = sized[0].examples_digest()
        notes = []
        same = [r for r in task_runs if r.examples_digest() == digest]
        if len(same) < len(task_runs):
            notes.append(f"{len(task_runs) - len(same)} run(s) of {task} scored on other test examples are left out")
        refs = [r for r in same if not _size(r) and not method_trains(r.method)]
        ids = common_ids(same)
        curves_runs: dict[str, dict[str, list[Run]]] = {}
        for r in same:
            if _size(r):
                curves_runs.setdefault(_curve_key(r), {}).setdefault(_size(r), []).append(r)
        n_sizes = max(len(v) for v in curves_runs.values())
        boot = stats.resamples_for_family(n_sizes, ALPHA, minimum=n_boot or 1000)
        ref_groups: dict[str, list[Run]] = {}
        for r in refs:
            ref_groups.setdefault(r.key, []).append(r)
        references = []
        ref_preds: dict[str, np.ndarray] = {}
        gold = None
        for group in ref_groups.values():
            gold, preds = _preds(group, ids)
            iv = stats.bootstrap_ci(gold, preds, len(group[0].labels), ("macro_f1",), boot, seed=seed)["macro_f1"]
            references.append(Reference(group[0].label, len(group), iv.value, iv.low, iv.high,
                                        any(r.degenerate for r in group)))
            ref_preds[group[0].label] = preds
        best = max(references, key=lambda r: r.mean) if references else None
        curves = []
        for by_size in curves_runs.values():
            first = next(iter(by_size.values()))[0]
            curve = Curve(_label_without_size(first), first.method)
            k = len(first.labels)
            for size, group in by_size.items():
                gold, preds = _preds(group, ids)
                iv = stats.bootstrap_ci(gold, preds, k, ("macro_f1",), boot, seed=seed)["macro_f1"]
                point = Point(size, float(np.mean([_n_train(r) for r in group])), len(group), iv.value, iv.low, iv.high)
                if best is not None:
                    test = stats.seed_aware_test(gold, preds, ref_preds[best.label], k, "macro_f1", boot, seed=seed)
                    point.delta, point.p_value = test.delta, test.p_value
                curve.points.append(point)
            curve.points.sort(key=lambda p: p.n)
            if best is not None:
                for p, adj in zip(curve.points, stats.holm([p.p_value for p in curve.points])):
                    p.p_holm = adj
                curve.crossover = next((p for p in curve.points if p.significant), None)
            curves.append(curve)
        curves.sort(key=lambda c: c.label)
        if best is None:
            notes.append("no method without training (zero-/few-shot prompting) in the results: no crossover to state")
        out.append(LearningCurves(task, len(ids), curves, references, notes))
    return out


def _preds(group: list[Run], ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Gold labels and the runs' predictions (runs, n) on `ids`."""
    gold = group[0].encoded(ids)[0]
    return gold, np.stack([r.encoded(ids)[1] for r in group])


def plot_learning_curves(lc: LearningCurves, path) -> object:
    """Macro-F1 (95% interval band) against labelled examples on a log axis, one line per
    trained configuration; references as horizontal lines (dashed) with their interval."""
    from clfbench.report.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, c in enumerate(lc.curves):
        col = colors[i % len(colors)]
        xs = [max(p.n, 1) for p in c.points]
        ax.plot(xs, [p.mean for p in c.points], marker="o", color=col, label=c.label[:40])
        ax.fill_between(xs, [p.low for p in c.points], [p.high for p in c.points], color=col, alpha=0.15)
        if c.crossover is not None:
            ax.plot([c.crossover.n], [c.crossover.mean], marker="*", markersize=14, color=col, linestyle="none")
    for j, r in enumerate(sorted(lc.references, key=lambda r: -r.mean)):
        col = colors[(len(lc.curves) + j) % len(colors)]
        ax.axhline(r.mean, color=col, linestyle="--", label=f"{r.label[:34]} (no training)")
        ax.axhspan(r.low, r.high, color=col, alpha=0.08)
    ax.set_xscale("log")
    # Plain tick labels at the measured sizes (the report turns mathtext off, so no 10^k labels).
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ticks = sorted({round(max(p.n, 1)) for c in lc.curves for p in c.points})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:.0f}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("labelled training examples (log)")
    ax.set_ylabel("macro-F1 (95% CI)")
    ax.set_title(f"{lc.task}: learning curves (star: first significant win over the best reference)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path)


__all__ = ["ALPHA", "Curve", "LearningCurves", "Point", "Reference", "learning_curves", "plot_learning_curves"]
