"""The report's tables as plain data (title, headers, rows, notes), rendered to Markdown and HTML."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from clfbench.report.analysis import TaskAnalysis, _p
from clfbench.report.runs import Config, inference_setup


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    highlight: set[int] = field(default_factory=set)  # row indices to emphasise

    def markdown(self) -> str:
        def cell(s: str) -> str:
            return str(s).replace("|", "\\|").replace("\n", " ")

        lines = [f"### {self.title}", "", "| " + " | ".join(cell(h) for h in self.headers) + " |",
                 "|" + "|".join("---" for _ in self.headers) + "|"]
        for i, row in enumerate(self.rows):
            cells = [cell(c) for c in row]
            if i in self.highlight:
                cells[0] = f"**{cells[0]}**"
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += [f"{n}  " for n in self.notes]
        return "\n".join(lines).rstrip() + "\n"


def fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != 0 and abs(v) < 10 ** (-digits):
            return f"{v:.2e}"
        return f"{v:.{digits}f}"
    return str(v)


def num(v: float | None) -> str:
    """A measurement with sensible precision (ms, samples/s, MB, USD)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    if a == 0:
        return "0"
    return f"{v:.3g}"


def _quality_cell(c: Config, ta: TaskAnalysis, metric: str) -> str:
    iv = ta.ci[c.label][metric]
    ci = f"[{iv.low:.3f}, {iv.high:.3f}]"
    mean, std = c.mean(metric), c.std(metric)
    if mean is None:
        return "- " + ci
    if len(c.runs) > 1 and std is not None:
        return f"{mean:.4f} ± {std:.4f} {ci}"
    return f"{mean:.4f} {ci}"


def performance_table(ta: TaskAnalysis) -> Table:
    rows = []
    for c in ta.configs:
        rows.append([
            c.label, str(len(c.runs)), _quality_cell(c, ta, "accuracy"), _quality_cell(c, ta, "macro_f1"),
            _quality_cell(c, ta, "mcc"), fmt(c.mean("invalid_rate"), 3), fmt(c.mean("ece"), 3),
            str(c.representative.metrics.get("n_examples", len(c.representative.predictions))),
        ])
    best = {i for i, c in enumerate(ta.configs) if ta.verdicts["macro_f1"].significant
            and c.label == ta.verdicts["macro_f1"].leader}
    n_boot = ta.comparisons[0].macro_f1.n_resamples if ta.comparisons else None
    notes = [
        "Values: the run's metrics.json; with several seeds/draws, mean ± std over them. Brackets: "
        "95% percentile bootstrap CI over test examples" + (f" ({n_boot} resamples, seeded)" if n_boot else "")
        + " of the median-macro-F1 run.",
        f"Accuracy: {ta.verdicts['accuracy'].text}.",
        f"Macro-F1: {ta.verdicts['macro_f1'].text}.",
        *[n for n in ta.notes if "differs from its predictions" in n],
    ]
    return Table(f"{ta.task}: quality", ["configuration", "runs", "accuracy", "macro-F1", "MCC",
                                         "invalid", "ECE", "n test"], rows, notes, best)


def significance_table(ta: TaskAnalysis) -> Table:
    rows = []
    for c in ta.comparisons:
        m, b = c.mcnemar, c.macro_f1
        rows.append([
            f"{c.a} vs {c.b}", str(c.n), f"{c.accuracy_a - c.accuracy_b:+.4f}",
            f"{m.test} (b={m.b}, c={m.c})", _p(m.p_value), _p(c.p_holm_accuracy),
            f"{b.delta:+.4f} [{b.low:+.3f}, {b.high:+.3f}]", _p(b.p_value), _p(c.p_holm_macro_f1),
        ])
    notes = [
        "Paired on the same examples (matched by id). Accuracy: McNemar, exact binomial when b + c < 25 "
        "discordant pairs, otherwise chi-square with continuity correction; b = first right and second "
        "wrong, c = the reverse. Macro-F1: paired bootstrap of the difference (95% CI, two-sided p). "
        "Holm correction across this task's comparisons, separately per metric.",
        *ta.notes,
    ]
    return Table(f"{ta.task}: paired significance tests", [
        "comparison", "n", "Δ accuracy", "McNemar test", "p", "p (Holm)", "Δ macro-F1 [95% CI]", "p",
        "p (Holm)"], rows, notes)


def efficiency_table(ta: TaskAnalysis) -> Table:
    rows = []
    for c in ta.configs:
        k = ta.cost[c.label]
        how = inference_setup(c.representative.metrics)
        batch = "" if how["batch_size"] is None else f", batch {how['batch_size']}"
        agreement = "-" if how["agreement"] is None else f"{100 * how['agreement']:.2f}%"
        rows.append([
            c.label, num(c.mean("latency_ms_p50")), num(c.mean("latency_ms_p95")), num(c.mean("latency_ms_p99")),
            num(c.mean("throughput_sps")), how["setup"] + batch, agreement,
            num(c.mean("peak_memory_mb")), num(c.mean("train_seconds")),
            fmt(c.mean("parameters")) if c.mean("parameters") is None else f"{c.mean('parameters'):,.0f}",
            num(k.get("mean_input_tokens")), num(k.get("mean_output_tokens")),
            num(k.get("usd_per_1m_request")), num(k.get("usd_per_1m_batch")), num(k.get("usd_per_1m_api")),
            num(k.get("train_usd")),
        ])
    profile = ta.cost[ta.configs[0].label]["hardware"] if ta.configs else "-"
    notes = [
        f"Cost on hardware profile `{profile}`. $/1M one-at-a-time = p50 seconds x price per second x 1e6; "
        "$/1M batched = 1e6 / throughput x price per second; API = mean tokens x price per 1M tokens. "
        "Training $ = training seconds x the same price. Latency is per example at batch 1; "
        "throughput over the whole test split at the method's batch size. \"measured with\" is the "
        "inference backend and batch size; \"agreement\" is the share of labels equal to the fp32 model's "
        "where the backend is not exact fp32 (int8, bf16, ONNX), measured on validation texts.",
    ]
    return Table(f"{ta.task}: efficiency and cost", [
        "configuration", "p50 ms", "p95 ms", "p99 ms", "samples/s", "measured with", "agreement with fp32",
        "peak MB", "train s", "parameters",
        "in tokens", "out tokens", "$/1M one at a time", "$/1M batched", "$/1M API", "training $"], rows, notes)


def decision_table(ta: TaskAnalysis) -> Table:
    main_tau = ta.main_tau

    def u_of(c: Config) -> float:
        u = ta.utility[c.label].get(main_tau)
        return -1.0 if u is None else u
    ranked = sorted(ta.configs, key=lambda c: -u_of(c))
    rows = []
    for rank, c in enumerate(ranked, 1):
        rows.append([
            c.label, fmt(c.mean("macro_f1")), num(c.mean("latency_ms_p50")), num(ta.cost[c.label]["usd_per_1m"]),
            "yes" if ta.pareto[c.label] else "no",
            *[("-" if ta.utility[c.label][t] is None else f"{100 * ta.utility[c.label][t]:.2f}") for t in ta.taus],
            str(rank) if ta.utility[c.label].get(main_tau) is not None else "-",
        ])
    notes = [
        "Utility U = (macro-F1 / $ per 1M requests) x exp(-p50 ms / tau); the table shows 100 x U. "
        f"Ranked by tau = {main_tau:g} ms. Pareto: no other configuration is at least as good on "
        "macro-F1, p50 latency and cost and strictly better on one.",
    ]
    best = {0} if rows and rows[0][-1] != "-" else set()
    return Table(f"{ta.task}: decision (Pareto front and utility)",
                 ["configuration", "macro-F1", "p50 ms", "$/1M", "Pareto", *[f"100U τ={t:g}ms" for t in ta.taus],
                  "rank"], rows, notes, best)


def break_even_table(ta: TaskAnalysis) -> Table:
    rows = []
    for be in ta.break_even:
        a, b = ta.cost[be["cheaper_below"]], ta.cost[be["cheaper_above"]]
        rows.append([be["cheaper_below"], num(a["train_usd"]), num(a["usd_per_1m"]), be["cheaper_above"],
                     num(b["train_usd"]), num(b["usd_per_1m"]), f"{be['requests']:,.0f}"])
    notes = ["Total cost of N requests = training $ + N x $ per request. Below the break-even volume the "
             "first option is cheaper in total, above it the second. Pairs of configurations on the "
             "Pareto front whose totals cross."]
    if not rows:
        notes.append("No two configurations on the front cross: one is cheaper at every volume.")
    return Table(f"{ta.task}: break-even request volume", [
        "cheaper at low volume", "training $", "$/1M", "cheaper at high volume", "training $", "$/1M",
        "break-even requests"], rows, notes)


def overlap_table(ta: TaskAnalysis) -> Table:
    e = ta.errors
    rows = [[lab, f"{e.error_rate[i]:.3f}", *[("-" if v is None else f"{v:.2f}") for v in e.jaccard[i]]]
            for i, lab in enumerate(e.labels)]
    return Table(f"{ta.task}: error overlap (Jaccard of wrong-example sets)",
                 ["configuration", "error rate", *[f"#{i + 1}" for i in range(len(e.labels))]], rows,
                 [f"Columns #i follow the row order. On the {e.n_examples} examples every configuration predicted."])


def per_class_table(ta: TaskAnalysis) -> Table:
    e = ta.errors
    rows = [[p["class"], fmt(p["train_count"]), fmt(p["support"]),
             *[(fmt(p["f1"][lab], 3) if p["support"] else "-") for lab in e.labels]]
            for p in e.per_class]
    notes = ["Classes in training-frequency order (most frequent first); F1 averaged over a configuration's "
             "runs; '-' where the class has no test example."]
    for r in e.rescued:
        notes.append(f"{r['a']} gets right at least once (F1 > 0) what {r['b']} never does: {', '.join(r['classes'])}.")
    return Table(f"{ta.task}: per-class F1 by training frequency", ["class", "train n", "test n", *e.labels], rows, notes)


def examples_table(title: str, examples: list[dict[str, Any]], labels: list[str], extra: list[str] | None = None) -> Table:
    extra = extra or []
    rows = []
    for ex in examples:
        text = ex["text"] + (f" ‖ {ex['text_pair']}" if ex.get("text_pair") else "")
        rows.append([text, ex["gold"], *[str(ex.get(k)) for k in extra],
                     *[str(ex["predictions"][lab]) for lab in labels]])
    return Table(title, ["text", "gold", *extra, *labels], rows)


def summary_table(analyses: list[TaskAnalysis]) -> Table:
    rows = []
    for ta in analyses:
        v = ta.verdicts["macro_f1"]
        rows.append([ta.task, str(len(ta.configs)), v.leader if v.significant else "tie: " + ", ".join(v.tied),
                     ta.verdicts["accuracy"].leader if ta.verdicts["accuracy"].significant
                     else "tie: " + ", ".join(ta.verdicts["accuracy"].tied),
                     ", ".join(c.label for c in ta.configs if ta.pareto[c.label]), _utility_winner(ta)])
    tau = analyses[0].main_tau if analyses else 500.0
    return Table("Verdicts per task", ["task", "configurations", "best macro-F1 (paired bootstrap, Holm)",
                                       "best accuracy (McNemar, Holm)", "Pareto front",
                                       f"highest utility (τ={tau:g} ms)"], rows)


def _utility_winner(ta: TaskAnalysis) -> str:
    scored = [(u, c.label) for c in ta.configs if (u := ta.utility[c.label].get(ta.main_tau)) is not None]
    if not scored:
        return "-"
    u, label = max(scored)
    return f"{label} (100U = {100 * u:.2f})"
