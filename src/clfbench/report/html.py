"""One self-contained HTML file: inline CSS/JS, plots as base64 data URIs, all text escaped.

Jinja2 autoescaping escapes every dataset text in tables; the quiz data is embedded with
Jinja's `tojson` filter, which writes `<`, `>`, `&` and `'` as \\u escapes, so a text
containing `</script>` cannot close the script element. The quiz script only ever sets
`textContent`, never `innerHTML`.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from itertools import zip_longest
from pathlib import Path
from typing import Any

from clfbench.report import tables as T
from clfbench.report.analysis import TaskAnalysis
from clfbench.report.runs import under_trained_note

TEMPLATES = Path(__file__).with_name("templates")


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


CAPTIONS = {
    "quality_vs_latency": "macro-F1 vs p50 latency (log axis); the line is the quality-latency front.",
    "quality_vs_cost": "macro-F1 vs $ per 1M requests (log axis); the line is the quality-cost front.",
    "confusion": "Confusion matrices: counts (rows = gold label; colour = share of the row; last column = invalid outputs).",
    "reliability": "Reliability diagrams: accuracy against the confidence of the predicted label.",
}


def quiz_items(analyses: list[TaskAnalysis], per_task: int = 10) -> list[dict[str, Any]]:
    """The hardest examples of each task (tasks taken in turn), with label options and every
    model's prediction."""
    per = []
    for ta in analyses:
        options = ta.configs[0].representative.labels
        per.append([{"task": ta.task, "text": ex["text"], "text_pair": ex.get("text_pair"),
                     "gold": ex["gold"], "options": options, "predictions": ex["predictions"],
                     "n_wrong": ex["n_wrong"], "n_methods": ex["n_methods"]}
                    for ex in ta.errors.quiz[:per_task]])
    return [item for rnd in zip_longest(*per) for item in rnd if item is not None]


def recommendation_view(rec: Any) -> dict[str, Any]:
    """`recommend.Recommendation` for the template: the constraints as a heading, the pick as
    a verdict (a warning when nothing qualifies), the evidence and alternatives as lines."""
    head, *lines = [ln.strip() for ln in rec.lines()]
    return {"head": head, "verdict": lines[0], "found": rec.decision.pick is not None, "lines": lines[1:]}


def render_html(
    analyses: list[TaskAnalysis],
    plots: dict[str, dict[str, Path]],
    overview_png: Path | None,
    title: str,
    hardware: str,
    n_runs: int,
    learning: list[dict[str, Any]] | None = None,
    recommendations: list[Any] | None = None,
) -> str:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(str(TEMPLATES)),
                      autoescape=select_autoescape(["html", "j2", "html.j2"], default=True))
    tasks = []
    for ta in analyses:
        e = ta.errors
        tasks.append({
            "name": ta.task,
            "verdicts": [
                {"metric_name": "Macro-F1", "text": ta.verdicts["macro_f1"].text,
                 "significant": ta.verdicts["macro_f1"].significant, "runner_up": ta.verdicts["macro_f1"].runner_up},
                {"metric_name": "Accuracy", "text": ta.verdicts["accuracy"].text,
                 "significant": ta.verdicts["accuracy"].significant, "runner_up": ta.verdicts["accuracy"].runner_up},
            ],
            "performance": T.performance_table(ta),
            "decision": T.decision_table(ta),
            "break_even": T.break_even_table(ta),
            "efficiency": T.efficiency_table(ta),
            "significance": T.significance_table(ta),
            "n_comparisons": len(ta.comparisons),
            "plots": [{"src": data_uri(p), "caption": CAPTIONS.get(k, k)} for k, p in plots.get(ta.task, {}).items()],
            "overlap": T.overlap_table(ta),
            "hardest": T.examples_table(f"{ta.task}: hardest examples", e.hardest, e.labels, ["n_wrong"]),
            "disagreements": (T.examples_table(f"{ta.task}: LLM vs encoder disagreements", e.disagreements, e.labels,
                                               ["llm_majority", "encoder_majority"])
                              if e.n_disagreements is not None else None),
            "n_disagreements": e.n_disagreements,
            "per_class": T.per_class_table(ta),
            "tuning": T.tuning_table(ta),
            "prompts": T.prompt_table(ta),
            "degenerate": [f"{c.label}: {'; '.join(c.degenerate_reasons)}" for c in ta.configs if c.degenerate],
            "warnings": [n for n in [ta.group_note, *ta.warnings, *map(under_trained_note, ta.configs)] if n],
        })
    template = env.get_template("report.html.j2")
    return template.render(
        title=title, tasks=tasks, summary=T.summary_table(analyses), hardware=hardware, n_runs=n_runs,
        n_tasks=len(analyses), overview_png=data_uri(overview_png) if overview_png else None,
        quiz=quiz_items(analyses),
        learning=[{**lc, "src": data_uri(lc["png"])} for lc in learning or []],
        recommendations=[recommendation_view(r) for r in recommendations or []],
        generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    )
