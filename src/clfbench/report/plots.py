"""PNG plots with matplotlib (Agg backend, no display needed). Each function writes one file."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from clfbench.evaluation.metrics import reliability_bins
from clfbench.report.analysis import TaskAnalysis


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    # Task, label and method names are the user's: drawn as written, never as TeX or mathtext
    # (a label "$5 off" would otherwise fail to render).
    matplotlib.rcParams.update({"text.usetex": False, "text.parse_math": False})
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return path


def _short(label: str, n: int = 38) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def _wrap(label: str, width: int = 38) -> str:
    """A configuration name on lines of at most `width` characters, never cut: names that
    differ only at the end (lr=2e-05 vs lr=5e-05) stay distinguishable."""
    import textwrap

    return "\n".join(textwrap.wrap(label, width, break_long_words=True, break_on_hyphens=False)) or label


def quality_plot(analyses: list[TaskAnalysis], path: Path) -> Path:
    """Accuracy and macro-F1 with 95% bootstrap CIs, per task (one panel each) and configuration."""
    plt = pyplot()
    n = len(analyses)
    extra_lines = max(sum(_wrap(c.label).count("\n") for c in ta.configs) for ta in analyses)
    height = max(2.5, 0.45 * max(len(ta.configs) for ta in analyses) + 0.2 * extra_lines + 1.2)
    fig, axes = plt.subplots(n, 1, figsize=(8.5, height * n), squeeze=False)
    for ax, ta in zip(axes[:, 0], analyses):
        labels = [_wrap(c.label) + (" ⚠" if c.degenerate else "") for c in ta.configs][::-1]
        y = np.arange(len(labels))
        for offset, metric, color in ((0.2, "accuracy", "#9ecae1"), (-0.2, "macro_f1", "#3182bd")):
            vals = [ta.ci[c.label][metric].value for c in ta.configs][::-1]
            lo = [ta.ci[c.label][metric].low for c in ta.configs][::-1]
            hi = [ta.ci[c.label][metric].high for c in ta.configs][::-1]
            err = np.array([np.maximum(0, np.subtract(vals, lo)), np.maximum(0, np.subtract(hi, vals))])
            ax.barh(y + offset, vals, height=0.38, xerr=err, color=color, capsize=3,
                    label="accuracy" if metric == "accuracy" else "macro-F1")
        ax.set_yticks(y, labels)
        ax.set_xlim(0, 1)
        ax.set_title(f"{ta.task}: quality, mean over seeds (95% bootstrap CI; ⚠ = degenerate)")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def _front_2d(xs: list[float], ys: list[float]) -> list[int]:
    """Indices on the 2-D front (x lower is better, y higher is better), sorted by x."""
    order = sorted(range(len(xs)), key=lambda i: (xs[i], -ys[i]))
    front, best = [], -math.inf
    for i in order:
        if ys[i] > best:
            front.append(i)
            best = ys[i]
    return front


def tradeoff_plot(ta: TaskAnalysis, path: Path, axis: str) -> Path | None:
    """Macro-F1 vs p50 latency ('latency') or vs $ per 1M requests ('cost'), log x, front drawn."""
    plt = pyplot()
    pts = []
    for c in ta.configs:
        x = c.mean("latency_ms_p50") if axis == "latency" else ta.cost[c.label]["usd_per_1m"]
        y = c.mean("macro_f1")
        if x is not None and x > 0 and y is not None:
            pts.append((c.label, x, y, ta.pareto[c.label]))
    if not pts:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    xs = [p[1] for p in pts]
    ys = [p[2] for p in pts]
    front = _front_2d(xs, ys)
    if len(front) > 1:
        fx = [xs[i] for i in front]
        fy = [ys[i] for i in front]
        ax.step(fx, fy, where="post", color="#d62728", lw=1.5, alpha=0.8,
                label=f"front: macro-F1 vs {'p50 latency' if axis == 'latency' else 'cost'}")
    cmap = plt.get_cmap("tab10")
    for i, (label, x, y, on_front) in enumerate(pts):
        ax.scatter([x], [y], s=70, color=cmap(i % 10), edgecolor="black" if on_front else "none",
                   linewidth=1.5, marker="o" if on_front else "s", label=_wrap(label, 45) + (" *" if on_front else ""),
                   zorder=3)
    ax.set_xscale("log")
    lo, hi = min(xs), max(xs)
    if hi / lo < 10:  # keep at least a decade visible so that the log axis reads naturally
        mid = math.sqrt(lo * hi)
        ax.set_xlim(mid / math.sqrt(10) / 1.3, mid * math.sqrt(10) * 1.3)
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    for label, x, y, _ in pts:
        ax.annotate(_short(label, 24), (x, y), textcoords="offset points", xytext=(6, 4), fontsize=7)
    ax.set_xlabel("p50 latency per example, ms (log)" if axis == "latency" else
                  f"$ per 1M requests (log; {ta.cost[ta.configs[0].label]['cost_source']})")
    ax.set_ylabel("macro-F1")
    ax.set_title(f"{ta.task}: quality vs {'latency' if axis == 'latency' else 'cost'} (* = on the 3-way Pareto front)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save_figure(fig, path)


def _confusion_counts(metrics: dict, k: int) -> np.ndarray:
    """The run's confusion counts as (k, k + 1): gold x predicted, last column invalid outputs
    (older runs recorded k x k without it)."""
    cm = np.asarray(metrics.get("confusion_matrix") or np.zeros((k, k + 1)), dtype=float)
    return cm if cm.shape[1] == k + 1 else np.hstack([cm, np.zeros((k, 1))])


def confusion_plot(ta: TaskAnalysis, path: Path) -> Path:
    """Confusion counts of each configuration, coloured by the share of the gold row, with a
    last column for invalid outputs (counts annotated when few classes)."""
    plt = pyplot()
    n = len(ta.configs)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    labels = ta.configs[0].representative.labels
    k = len(labels)
    size = min(4.2, 1.6 + 0.28 * k)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols + 0.6, size * rows + 0.4), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    for ax, c in zip(axes.ravel(), ta.configs):
        cm = _confusion_counts(c.representative.metrics, k)
        norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
        ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
        ax.set_title(_wrap(c.label, 30) + (" ⚠ degenerate" if c.degenerate else ""), fontsize=9)
        show = k <= 20
        ax.set_xticks(np.arange(k + 1), [*(_short(lab, 10) for lab in labels), "invalid"] if show else [],
                      rotation=90, fontsize=7)
        ax.set_yticks(np.arange(k), [_short(lab, 10) for lab in labels] if show else [], fontsize=7)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("gold", fontsize=8)
        if k <= 8:
            for i in range(k):
                for j in range(k + 1):
                    ax.text(j, i, f"{int(cm[i, j])}", ha="center", va="center", fontsize=8,
                            color="white" if norm[i, j] > 0.5 else "black")
    more = "" if k <= 20 else f"; {k} labels in the task's order, names left out"
    fig.suptitle(f"{ta.task}: confusion matrices (counts; rows = gold, colour = share of the row, last column = "
                 f"invalid outputs{more})", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)


def reliability_plot(ta: TaskAnalysis, path: Path, n_bins: int = 10) -> Path | None:
    """Reliability diagram (accuracy vs confidence of the top label) from saved probabilities."""
    plt = pyplot()
    have = [c for c in ta.configs if c.representative.has_probabilities]
    if not have:
        return None
    fig, ax = plt.subplots(figsize=(5.8, 5.2))
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    for c in have:
        run = c.representative
        gold, pred = run.encoded()
        proba = run.probabilities()
        # as ECE: an invalid output, or one without probabilities, has no confidence to calibrate
        valid = (pred >= 0) & np.isfinite(proba).all(axis=1)
        if not valid.any():
            continue
        bins = [b for b in reliability_bins(gold[valid], proba[valid], n_bins) if b["count"]]
        ece = run.metrics.get("ece")
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], marker="o",
                label=_wrap(c.label, 40) + (f" (ECE {ece:.3f})" if isinstance(ece, (int, float)) else ""))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence of the predicted label")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{ta.task}: reliability diagram ({n_bins} bins)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return save_figure(fig, path)


def file_stem(group: str) -> str:
    """File name stem of a comparison group: the task's slug, plus a short hash when a task is
    split into groups (their long names could otherwise collide once cut to a slug's length)."""
    import hashlib

    from clfbench.run.config import slug

    if " [" not in group:
        return slug(group)
    return slug(group.split(" [")[0])[:36] + "_" + hashlib.sha1(group.encode()).hexdigest()[:8]


def task_plots(ta: TaskAnalysis, out: Path) -> dict[str, Path]:
    """All per-task plots; a plot with nothing to show (no probabilities, no cost) is left out."""
    s = file_stem(ta.task)
    made = {
        "quality_vs_latency": tradeoff_plot(ta, out / f"{s}_quality_vs_latency.png", "latency"),
        "quality_vs_cost": tradeoff_plot(ta, out / f"{s}_quality_vs_cost.png", "cost"),
        "confusion": confusion_plot(ta, out / f"{s}_confusion.png"),
        "reliability": reliability_plot(ta, out / f"{s}_reliability.png"),
    }
    return {k: v for k, v in made.items() if v is not None}
