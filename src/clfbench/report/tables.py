"""The report's tables as plain data (title, headers, rows, notes), rendered to Markdown and HTML."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from clfbench.report.analysis import TaskAnalysis, format_p
from clfbench.report.runs import (
    Config,
    contention_note,
    inference_setup,
    limit_text,
    text_budget,
    under_trained_note,
)


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)
    highlight: set[int] = field(default_factory=set)  # row indices to emphasise

    def markdown(self) -> str:
        from clfbench.results.table import markdown_cell as cell
        from clfbench.results.table import markdown_text

        lines = [f"### {markdown_text(self.title)}", ""]
        if self.rows:  # a table without rows is its title and notes (which say why)
            lines += ["| " + " | ".join(cell(h) for h in self.headers) + " |",
                      "|" + "|".join("---" for _ in self.headers) + "|"]
        for i, row in enumerate(self.rows):
            cells = [cell(c) for c in row]
            if i in self.highlight:
                cells[0] = f"**{cells[0]}**"
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += [f"{markdown_text(n)}  " for n in self.notes]
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


DEGENERATE_MARK = "⚠ degenerate"


def name(ta: TaskAnalysis, label: str) -> str:
    """A configuration's label as every table shows it: marked when it is degenerate."""
    c = next((c for c in ta.configs if c.label == label), None)
    return f"{label} {DEGENERATE_MARK}" if c is not None and c.degenerate else label


def _quality_cell(c: Config, ta: TaskAnalysis, metric: str) -> str:
    """Mean over the configuration's distinct runs, their std, and the CI of that mean."""
    iv = ta.ci[c.label][metric]
    ci = f"[{iv.low:.3f}, {iv.high:.3f}]"
    if len(iv.values) > 1:
        return f"{iv.value:.4f} ± {statistics.stdev(iv.values):.4f} {ci}"
    return f"{iv.value:.4f} {ci}"


def _ece(c: Config) -> float | None:
    """Mean ECE over the runs with at least one valid output: a run whose every output was
    invalid has no calibration (older metrics.json files recorded 0.0 for it)."""
    vals = [r.metrics.get("ece") for r in c.runs if (r.metrics.get("invalid_rate") or 0.0) < 1.0]
    vals = [float(v) for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return sum(vals) / len(vals) if vals else None


def _runs_cell(c: Config) -> str:
    if c.identical_seeds:
        return f"1 ({len(c.runs)} seeds, identical predictions)"
    return str(len(c.runs))


def _config_notes(ta: TaskAnalysis) -> list[str]:
    """What the reader must know about single configurations: degenerate runs, identical
    seeds, re-runs counted once."""
    notes = []
    for c in ta.configs:
        if c.degenerate:
            notes.append(f"{c.label} {DEGENERATE_MARK}: {'; '.join(c.degenerate_reasons)}. Never called best.")
        if c.identical_seeds:
            notes.append(f"{c.label}: its {len(c.runs)} seeds gave identical predictions; counted as 1 distinct result.")
        notes += c.notes
        if (note := under_trained_note(c)) is not None:
            notes.append(note + ".")
    return notes


CONTENDED_MARK = "†"


def _timed(c: Config, v: float | None) -> str:
    """A latency or throughput cell, marked † when a run of `c` was timed under contention."""
    return num(v) + (f" {CONTENDED_MARK}" if v is not None and contention_note(c) else "")


def _contention_notes(ta: TaskAnalysis) -> list[str]:
    """The footnote of the † cells: which configurations were timed under contention."""
    found = [n for c in ta.configs if (n := contention_note(c)) is not None]
    if not found:
        return []
    return [f"{CONTENDED_MARK} measured under contention (metrics.json machine_load.contended): "
            + "; ".join(found) + ". These latencies, the throughput and the costs priced from them are "
            "likely pessimistic; re-run on an idle machine to compare them fairly."]


def performance_table(ta: TaskAnalysis) -> Table:
    rows = []
    for c in ta.configs:
        rows.append([
            name(ta, c.label), _runs_cell(c), _quality_cell(c, ta, "accuracy"), _quality_cell(c, ta, "macro_f1"),
            _quality_cell(c, ta, "mcc"), fmt(c.mean("invalid_rate"), 3), fmt(_ece(c), 3),
            str(c.representative.metrics.get("n_examples", len(c.representative.predictions))),
            _n_train_cell(c),
        ])
    best = {i for i, c in enumerate(ta.configs) if ta.verdicts["macro_f1"].significant
            and c.label == ta.verdicts["macro_f1"].leader}
    notes = [
        "Values: computed from each run's predictions (equal to its metrics.json); with several seeds or "
        "draws, the mean ± std over those with distinct predictions. Brackets: 95% percentile bootstrap CI "
        "of that mean: each resample draws the test examples (and, with several runs, the runs) with "
        "replacement and rescores every drawn run on the same examples. Macro-F1 averages over the gold "
        "classes of the test split. ECE over the rows with a valid output only (\"-\": none).",
        f"Accuracy: {ta.verdicts['accuracy'].text}.",
        f"Macro-F1: {ta.verdicts['macro_f1'].text}.",
        *_config_notes(ta),
        *([ta.group_note] if ta.group_note else []),
        *ta.warnings,
        *[n for n in ta.notes if "differs from its predictions" in n],
    ]
    return Table(f"{ta.task}: quality", ["configuration", "runs", "accuracy", "macro-F1", "MCC",
                                         "invalid", "ECE", "n test", "n train"], rows, notes, best)


def _n_train_cell(c: Config) -> str:
    """Labelled training examples the configuration's runs used (their mean; '-': not recorded)."""
    from clfbench.report.analysis import n_train

    n = n_train(c)
    return "-" if n is None else f"{n:.0f}"


def significance_table(ta: TaskAnalysis) -> Table:
    rows = []
    for c in ta.comparisons:
        a, b = c.accuracy, c.macro_f1
        rows.append([
            f"{name(ta, c.a)} vs {name(ta, c.b)}", str(c.n), f"{a.runs_a} vs {a.runs_b}",
            f"{a.delta:+.4f} [{a.low:+.3f}, {a.high:+.3f}]", format_p(a.p_value), format_p(c.p_holm_accuracy),
            f"{b.delta:+.4f} [{b.low:+.3f}, {b.high:+.3f}]", f"{b.se_examples:.4f} / {b.se_seeds:.4f}",
            _df(b.df), format_p(b.p_value), format_p(c.p_holm_macro_f1),
        ])
    notes = [
        "Paired on the same examples (matched by id). Each metric's leader (the best configuration not "
        "flagged degenerate) is tested against every other configuration: a family of k - 1 tests, "
        "Holm-corrected within the family ('-': the pair is not in that metric's family). Both metrics: "
        "the difference of the means over runs (seeds, draws), the numbers of the quality table, with a "
        "seed-aware t-test: its standard error adds the variance from the test examples (resampled, runs "
        "fixed; exact for accuracy) and the spread between runs (s² / runs on each side), on "
        "Welch-Satterthwaite degrees of freedom (∞: no side has two runs, so training randomness is not "
        "measured). 95% CI: difference ± t × SE. SE examples / seeds: the two parts of the macro-F1 SE.",
        *ta.notes,
    ]
    return Table(f"{ta.task}: paired significance tests", [
        "comparison", "n", "runs", "Δ accuracy [95% CI]", "p", "p (Holm)", "Δ macro-F1 [95% CI]",
        "SE examples / seeds", "df", "p", "p (Holm)"], rows, notes)


def _df(df: float) -> str:
    return "∞" if df == float("inf") else f"{df:.1f}"


def _served_cells(served: dict[str, Any] | None) -> list[str]:
    """p50/p95 at the lowest concurrency and the best throughput of `clfbench loadtest --attach`."""
    levels = (served or {}).get("levels") or []
    if not levels:
        return ["-", "-", "-"]
    first = min(levels, key=lambda r: r["concurrency"])
    return [num(first["p50_ms"]), num(first["p95_ms"]), num(served.get("best_texts_per_s"))]


def efficiency_table(ta: TaskAnalysis) -> Table:
    rows = []
    served = any(c.representative.metrics.get("served") for c in ta.configs)
    for c in ta.configs:
        k = ta.cost[c.label]
        how = inference_setup(c.representative.metrics)
        batch = "" if how["batch_size"] is None else f", batch {how['batch_size']}"
        agreement = "-" if how["agreement"] is None else f"{100 * how['agreement']:.2f}%"
        seen = text_budget(c.representative.metrics)
        rows.append([
            name(ta, c.label), _timed(c, c.mean("latency_ms_p50")), _timed(c, c.mean("latency_ms_p95")),
            _timed(c, c.mean("latency_ms_p99")), _timed(c, c.mean("throughput_sps")), how["setup"] + batch, agreement,
            num(c.mean("peak_memory_mb")), num(c.mean("train_seconds")),
            fmt(c.mean("parameters")) if c.mean("parameters") is None else f"{c.mean('parameters'):,.0f}",
            num(k.get("mean_input_tokens")), num(k.get("mean_output_tokens")),
            num(k.get("usd_per_1m_request")), num(k.get("usd_per_1m_batch")), num(k.get("usd_per_1m_api")),
            num(k.get("train_usd")), limit_text(seen["max_tokens"]),
            "-" if seen["truncated_share"] is None else f"{100 * seen['truncated_share']:.1f}%",
        ])
        if served:
            rows[-1] += [*_served_cells(c.representative.metrics.get("served")), num(k.get("usd_per_1m_served"))]
    profile = ta.cost[ta.configs[0].label]["hardware"] if ta.configs else "-"
    notes = [
        f"Cost on hardware profile `{profile}`. $/1M one-at-a-time = p50 seconds x price per second x 1e6; "
        "$/1M batched = 1e6 / throughput x price per second; API = mean tokens x price per 1M tokens. "
        "Training $ = training seconds x the same price. Latency is per example at batch 1; "
        "throughput over the whole test split at the method's batch size. \"measured with\" is the "
        "inference backend and batch size; \"agreement\" is the share of labels equal to the fp32 model's "
        "where the backend is not exact fp32 (int8, bf16, ONNX), measured on validation texts. "
        "\"max tokens\": the input limit (\"no limit\": whole texts); \"truncated\": the share of test "
        "examples cut to fit it.",
        *_contention_notes(ta),
        *ta.warnings,
    ]
    return Table(f"{ta.task}: efficiency and cost", [
        "configuration", "p50 ms", "p95 ms", "p99 ms", "samples/s", "measured with", "agreement with fp32",
        "peak MB", "train s", "parameters",
        "in tokens", "out tokens", "$/1M one at a time", "$/1M batched", "$/1M API", "training $",
        "max tokens", "truncated",
        *(["served p50 ms", "served p95 ms", "served samples/s", "$/1M served"] if served else [])],
        rows, notes + ([
            "\"served\": measured over HTTP by `clfbench loadtest --attach` (served.json in the run folder): "
            "end-to-end p50/p95 at the lowest concurrency tested, throughput at the best concurrency, "
            "$/1M served = 1e6 / served throughput x price per second."] if served else []))


def decision_table(ta: TaskAnalysis) -> Table:
    main_tau = ta.main_tau

    ranked = sorted(ta.configs, key=lambda c: (c.degenerate, -_utility(ta, c)))
    best_u = max((_utility(ta, c) for c in ta.configs if not c.degenerate), default=-1.0)
    rows = []
    for rank, c in enumerate(ranked, 1):
        ranks = ta.utility[c.label].get(main_tau) is not None and not c.degenerate
        rows.append([
            name(ta, c.label), fmt(c.mean("macro_f1")), _timed(c, c.mean("latency_ms_p50")), num(ta.cost[c.label]["usd_per_1m"]),
            "yes" if ta.pareto[c.label] else "no",
            *[("-" if ta.utility[c.label][t] is None else f"{100 * ta.utility[c.label][t]:.2f}") for t in ta.taus],
            f"{100 * _utility(ta, c) / best_u:.1f}" if ranks and best_u > 0 else "-",
            str(rank) if ranks else "-",
        ])
    notes = [
        "Utility U = (macro-F1 / $ per 1M requests) x exp(-p50 ms / tau); the table shows 100 x U. "
        f"Ranked by tau = {main_tau:g} ms; \"vs best\" is U as a share of the best configuration's "
        "at that tau (best = 100; 50 = half its quality per dollar, latency-discounted). Pareto: no other configuration is at least as good on "
        "macro-F1, p50 latency and cost and strictly better on one. Degenerate configurations are "
        "left off the front and the ranking.",
        "Utility has no quality floor, no significance test and no constraints: a cheap, fast configuration "
        "can rank first while it is significantly behind on macro-F1. `clfbench recommend` (or `report "
        "--volume`) keeps the configurations that meet the constraints, not significantly behind the best "
        "macro-F1 (paired bootstrap, Holm), and picks the cheapest per month.",
        *ta.decision_notes,
        *_contention_notes(ta),
    ]
    best = {0} if rows and rows[0][-1] != "-" else set()
    return Table(f"{ta.task}: decision (Pareto front and utility)",
                 ["configuration", "macro-F1", "p50 ms", "$/1M", "Pareto", *[f"100U τ={t:g}ms" for t in ta.taus],
                  f"vs best τ={main_tau:g}ms (best = 100)", "rank"], rows, notes, best)


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
    rows = [[name(ta, lab), f"{e.error_rate[i]:.3f}", *[("-" if v is None else f"{v:.2f}") for v in e.jaccard[i]]]
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
    return Table(f"{ta.task}: per-class F1 by training frequency",
                 ["class", "train n", "test n", *[name(ta, lab) for lab in e.labels]], rows, notes)


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
        flagged = [name(ta, c.label) for c in ta.configs if c.degenerate]
        rows.append([ta.task, str(len(ta.configs)), ta.verdicts["macro_f1"].short, ta.verdicts["accuracy"].short,
                     ", ".join(c.label for c in ta.configs if ta.pareto[c.label]) or "-", _utility_winner(ta),
                     ", ".join(flagged) or "-"])
    tau = analyses[0].main_tau if analyses else 500.0
    notes = ["A task whose configurations were scored on different test examples has one row per set of "
             "examples: only configurations scored on the same examples are compared."]
    return Table("Verdicts per task", ["task", "configurations", "best macro-F1 (seed-aware test, Holm)",
                                       "best accuracy (seed-aware test, Holm)", "Pareto front",
                                       f"highest utility (τ={tau:g} ms)", "degenerate (never best)"], rows, notes)


def _utility(ta: TaskAnalysis, c: Config) -> float:
    u = ta.utility[c.label].get(ta.main_tau)
    return -1.0 if u is None else u


def _utility_winner(ta: TaskAnalysis) -> str:
    scored = [(u, c.label) for c in ta.configs
              if not c.degenerate and (u := ta.utility[c.label].get(ta.main_tau)) is not None]
    if not scored:
        return "none: every configuration is degenerate" if all(c.degenerate for c in ta.configs) else "-"
    u, label = max(scored)
    return f"{label} (100U = {100 * u:.2f})"


def tuning_table(ta: TaskAnalysis) -> Table | None:
    """Every hyper-parameter trial of the configurations that tuned (fit_info.tuning), with
    the chosen values and validation scores; None when no configuration tuned."""
    rows: list[list[str]] = []
    searches: list[str] = []
    for c in ta.configs:
        for r in c.runs:
            tuning = (r.metrics.get("fit_info") or {}).get("tuning") or {}
            seed = "" if len(c.runs) == 1 else f" (seed {r.seed})"
            if tuning and not tuning.get("enabled"):  # the fixed recipe, and why it was not tuned
                rows.append([name(ta, c.label) + seed, "no search", _params({"lr": tuning.get("lr")}),
                             "-", "-", "-", "yes"])
                searches.append(f"{c.label}{seed}: not tuned ({tuning.get('reason') or 'tuning off'}).")
                continue
            if not tuning:
                continue
            for t in tuning.get("trials") or []:
                chosen = (t.get("number") == tuning["best_trial"] if "best_trial" in tuning
                          else t.get("params") == tuning.get("best_params"))
                rows.append([name(ta, c.label) + seed, str(t.get("number", "-")), _params(t.get("params")),
                             fmt(t.get("val_macro_f1")), fmt(t.get("epochs_run")), str(t.get("state", "-")),
                             "yes" if chosen else ""])
            rows.append([name(ta, c.label) + seed, "chosen", _params(tuning.get("best_params")),
                         fmt(tuning.get("best_val_macro_f1")), "-", "-", "yes"])
            searches.append(f"{c.label}{seed}: {tuning.get('method') or 'search'}, "
                            f"{len(tuning.get('trials') or [])} trials, {num(tuning.get('seconds'))} s.")
    if not rows:
        return None
    notes = ["One row per trial of the search on the validation split (fit_info.tuning), then the chosen "
             "values with their validation macro-F1. PRUNED: stopped early by the pruner.", *searches]
    return Table(f"{ta.task}: hyper-parameter tuning", ["configuration", "trial", "params",
                                                        "validation macro-F1", "epochs", "state", "chosen"],
                 rows, notes)


def _params(params: Any) -> str:
    if not isinstance(params, dict) or not any(v is not None for v in params.values()):
        return "-"
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in sorted(params.items()) if v is not None)


def prompt_table(ta: TaskAnalysis) -> Table | None:
    """The default prompt next to the optimised program (instruction, demonstrations) of each
    run that optimised its prompt (llm-dspy: fit_info.program); None when no run did."""
    rows: list[list[str]] = []
    for c in ta.configs:
        for r in c.runs:
            fit = r.metrics.get("fit_info") or {}
            program, default = fit.get("program"), fit.get("default_prompt") or {}
            if not isinstance(program, dict):
                continue
            seed = "" if len(c.runs) == 1 else f" (seed {r.seed})"
            demos = program.get("demos") or []
            clip = lambda v: str(v) if len(str(v)) <= 80 else str(v)[:77] + "..."  # noqa: E731
            shown = "; ".join(" / ".join(clip(v) for k, v in d.items() if k != "label") + f" -> {d.get('label')}"
                              for d in demos[:3]) + (f"; ... ({len(demos)} in all)" if len(demos) > 3 else "")
            opt = (fit.get("optimisation") or {})
            rows.append([name(ta, c.label) + seed, str(fit.get("optimizer", "-")), str(default.get("instruction", "-")),
                         str(program.get("instruction", "-")), shown or "none",
                         f"{opt.get('calls', '-')} calls, {opt.get('input_tokens', '-')}+{opt.get('output_tokens', '-')} tokens"])
    if not rows:
        return None
    notes = ["The optimiser learnt from the training split and chose on the validation split; "
             "the full program (every demonstration, the label field's description) is in each run's "
             "metrics.json (fit_info.program) and, with --save-model, model/program.json."]
    return Table(f"{ta.task}: optimised prompts", ["configuration", "optimizer", "default instruction",
                                                   "optimised instruction", "demonstrations", "optimisation"],
                 rows, notes)
