"""`clfbench report`: turn a results folder into tables, plots, statistics and one HTML file."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from clfbench.errors import ClfbenchError
from clfbench.evaluation import stats
from clfbench.extras import require
from clfbench.report import cost as costs
from clfbench.report import tables as T
from clfbench.report.analysis import TaskAnalysis, analyse_task
from clfbench.report.runs import (
    Run,
    comparison_groups,
    group_configs,
    inference_setup,
    load_runs,
    text_budget,
)

SCALARS = (
    "accuracy", "macro_f1", "weighted_f1", "mcc", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99",
    "throughput_sps", "peak_memory_mb", "peak_gpu_memory_mb", "train_seconds", "parameters",
    "trainable_parameters", "n_examples", "invalid_rate", "zero_f1_classes", "rare_quartile_macro_f1",
    "ece", "brier", "log_loss", "macro_f1_gold_or_pred", "calibration_examples",
)


@dataclass
class ReportOutput:
    out_dir: Path
    html: Path
    csv: Path
    tables: dict[str, Path]
    plots: list[Path]
    analyses: list[TaskAnalysis] = field(default_factory=list)
    mlflow_uri: str | None = None
    recommendations: list[Any] = field(default_factory=list)  # recommend.Recommendation, with constraints
    learning: list[Any] = field(default_factory=list)  # learning_curve.LearningCurves, with sized runs


def taus_for(tau: float | None) -> tuple[list[float], float]:
    """The utility taus (250, 500, 1000 ms plus the user's) and the one that ranks."""
    taus = list(costs.TAUS_MS)
    if tau is not None:
        if tau <= 0:
            raise ClfbenchError(f"--tau must be a positive number of milliseconds, got {tau}")
        if tau not in taus:
            taus = sorted([*taus, float(tau)])
    return taus, float(tau) if tau is not None else 500.0


def build_report(
    results_dir: str | Path,
    out_dir: str | Path | None = None,
    tau: float | None = None,
    hardware: str | None = None,
    hardware_file: str | Path | None = None,
    basis: str = "request",
    n_boot: int = 1000,
    seed: int = 0,
    mlflow: bool = False,
    title: str | None = None,
    constraints: Any = None,
) -> ReportOutput:
    """Write all_results.csv, the Markdown tables, PNG plots and report.html; optionally log to MLflow.

    With runs at training sizes (`--train-sizes`): learning-curve plots, crossovers and
    learning_curves.md. With `constraints` (a `recommend.Constraints`: volume, latency, budget,
    labels): `clfbench recommend`'s answer for every task, in recommendation.md and at the top
    of the HTML."""
    require("matplotlib", what="clfbench report")
    results_dir = Path(results_dir)
    out = Path(out_dir) if out_dir is not None else results_dir / "report"
    profile = costs.get_profile(hardware, hardware_file)
    taus, main_tau = taus_for(tau)
    runs = load_runs(results_dir)
    out.mkdir(parents=True, exist_ok=True)  # after loading: a missing DIR is not created
    api_prices = costs._safe_prices()
    groups = comparison_groups(group_configs(runs))
    analyses = [analyse_task(g.name, g.configs, profile, taus, basis, n_boot, seed, api_prices, main_tau, g.note)
                for g in groups]

    recs = []
    if constraints is not None:  # before the tables: the decision table says why utility and the pick differ
        from clfbench.report.recommend import recommend_groups

        recs = recommend_groups(groups, constraints, profile, basis, n_boot, seed, api_prices, tau_ms=main_tau)
        for a, r in zip(analyses, recs):
            a.decision_notes += [line for line in [r.utility_line()] if line]

    csv_path = out / "all_results.csv"
    report_frame(runs, analyses, profile, taus, basis, n_boot, seed, api_prices).to_csv(csv_path, index=False)

    def write(name: str, parts: list[T.Table], heading: str) -> Path:
        path = out / name
        path.write_text(f"# {heading}\n\n" + "\n".join(t.markdown() for t in parts), encoding="utf-8")
        return path

    tables = {
        "performance": write("performance_table.md", [T.summary_table(analyses)]
                             + [T.performance_table(a) for a in analyses], "Quality"),
        "efficiency": write("efficiency_table.md", [T.efficiency_table(a) for a in analyses], "Efficiency and cost"),
        "decision": write("decision_table.md", [t for a in analyses for t in (T.decision_table(a), T.break_even_table(a))],
                          "Decision: Pareto front, utility, break-even"),
        "significance": write("significance_tests.md", [T.significance_table(a) for a in analyses], "Paired significance tests"),
        "errors": write("error_analysis.md", [t for a in analyses for t in (
            T.overlap_table(a), T.examples_table(f"{a.task}: hardest examples", a.errors.hardest, a.errors.labels, ["n_wrong"]),
            T.per_class_table(a))], "Error analysis"),
    }
    tuning = [t for a in analyses if (t := T.tuning_table(a)) is not None]
    if tuning:
        tables["tuning"] = write("tuning_table.md", tuning, "Hyper-parameter tuning")
    prompts = [t for a in analyses if (t := T.prompt_table(a)) is not None]
    if prompts:
        tables["prompts"] = write("prompt_table.md", prompts, "Optimised prompts (llm-dspy)")

    from clfbench.report import plots as P

    plot_dir = out / "plots"
    plot_dir.mkdir(exist_ok=True)
    overview = P.quality_plot(analyses, plot_dir / "quality_per_task.png")
    per_task = {a.task: P.task_plots(a, plot_dir) for a in analyses}
    all_plots = [overview] + [p for d in per_task.values() for p in d.values()]
    learning = _learning_curves(runs, out, plot_dir, n_boot, seed)
    if learning:
        tables["learning_curves"] = out / "learning_curves.md"
        all_plots += [lc["png"] for lc in learning]

    if constraints is not None:
        tables["recommendation"] = out / "recommendation.md"
        tables["recommendation"].write_text("# Recommendation\n\n" + "\n\n".join(
            "\n".join([f"## {r.lines()[0]}", ""] + [f"- {ln.strip()}" for ln in r.lines()[1:]]) for r in recs) + "\n",
            encoding="utf-8")

    from clfbench.report.html import render_html

    html_path = out / "report.html"
    html_path.write_text(
        render_html(analyses, per_task, overview, title or results_dir.resolve().name, profile.name, len(runs),
                    learning=learning, recommendations=recs),
        encoding="utf-8",
    )
    mlflow_uri = None
    if mlflow:
        from clfbench.report.tracking import log_to_mlflow

        log_to_mlflow(results_dir, runs)
        mlflow_uri = f"sqlite:///{results_dir.resolve() / 'mlflow.db'}"
    return ReportOutput(out, html_path, csv_path, tables, all_plots, analyses, mlflow_uri, recs,
                        [lc["curves"] for lc in learning])


def _learning_curves(runs: list[Run], out: Path, plot_dir: Path, n_boot: int, seed: int) -> list[dict[str, Any]]:
    """Plot and crossover statements of each task's learning curves (none without sized runs);
    their points also go to learning_curves.md."""
    from clfbench.report.learning_curve import learning_curves, plot_learning_curves
    from clfbench.report.plots import file_stem

    if not any(r.spec.get("train_size") for r in runs):
        return []
    found = learning_curves(runs, n_boot=n_boot, seed=seed)
    md = ["# Learning curves\n"]
    shown = []
    for lc in found:
        png = plot_learning_curves(lc, plot_dir / f"learning_curve_{file_stem(lc.task)}.png")
        shown.append({"task": lc.task, "png": png, "statements": [lc.statement(c) for c in lc.curves],
                      "notes": lc.notes, "curves": lc})
        md += [f"## {lc.task} ({lc.n_test} test examples)\n", *(f"- {lc.statement(c)}" for c in lc.curves),
               "", "| configuration | size | labelled examples | runs | macro-F1 | 95% CI | vs best reference | Holm p |",
               "|---|---|---|---|---|---|---|---|"]
        md += [f"| {r.label} | no training | 0 | {r.runs} | {r.mean:.4f} | {r.low:.4f}-{r.high:.4f} | reference | - |"
               for r in lc.references]
        md += [f"| {c.label} | {p.size} | {p.n:.0f} | {p.runs} | {p.mean:.4f} | {p.low:.4f}-{p.high:.4f} | "
               f"{'-' if p.delta is None else f'{p.delta:+.4f}'} | {'-' if p.p_holm is None else f'{p.p_holm:.3g}'} |"
               for c in lc.curves for p in c.points]
        md += [*(f"\nNote: {n}" for n in lc.notes), ""]
    (out / "learning_curves.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    return shown


def report_frame(
    runs: list[Run], analyses: list[TaskAnalysis], profile: costs.HardwareProfile, taus: list[float],
    basis: str, n_boot: int, seed: int, api_prices: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """One row per run: identity, configuration, metrics.json scalars, 95% CIs, cost, utility."""
    group = {r.run_id: a for a in analyses for c in a.configs for r in c.runs}
    rows = []
    for r in runs:
        a = group.get(r.run_id) or group.get(r.duplicate_of or "")
        seen = text_budget(r.metrics)
        row: dict[str, Any] = {
            "run_id": r.run_id, "task": r.task, "comparison_group": a.task if a else r.task,
            "configuration": r.label, "method": r.method, "model": r.model, "seed": r.seed,
            "degenerate": r.degenerate, "degenerate_reasons": "; ".join(r.metrics.get("degenerate_reasons") or []),
            "duplicate_of": r.duplicate_of, "max_tokens": seen["max_tokens"], "truncated_share": seen["truncated_share"],
            "params": json.dumps(((r.config.get("spec") or {}).get("params") or {}), sort_keys=True, default=str),
        }
        for k in SCALARS:
            row[k] = r.metrics.get(k)
        how = inference_setup(r.metrics)
        row.update(inference_setup=how["setup"], inference_batch_size=how["batch_size"],
                   agreement_with_fp32=how["agreement"])
        gold, pred = r.encoded()
        for name, iv in stats.bootstrap_ci(gold, pred, len(r.labels), n_resamples=n_boot, seed=seed).items():
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = iv.low, iv.high
        c = costs.run_cost(r.metrics, profile, basis, api_prices)
        row.update({k: c[k] for k in ("hardware", "mean_input_tokens", "mean_output_tokens", "usd_per_1m_request",
                                      "usd_per_1m_batch", "usd_per_1m_api", "usd_per_1m", "train_usd")})
        for t in taus:
            u = costs.utility(r.metrics.get("macro_f1") or 0.0, c["usd_per_1m"], r.metrics.get("latency_ms_p50"), t)
            row[f"utility_x100_tau{t:g}"] = None if u is None else 100 * u
        row["config_on_pareto_front"] = a.pareto.get(r.label) if a else None
        rows.append(row)
    return pd.DataFrame(rows)
