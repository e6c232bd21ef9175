"""Run a list of RunSpecs into a results store: validate everything first, skip what is done."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from clfbench.config import RunSpec
from clfbench.evaluate import build_method, execute, load_data
from clfbench.splits import TaskSplits
from clfbench.store import Store


def data_key(spec: RunSpec) -> tuple:
    """Runs that share this key see exactly the same train/validation/test examples."""
    return (spec.task, spec.data_dir, spec.data_seed, spec.max_train, spec.max_eval,
            spec.train_file, spec.validation_file, spec.test_file, spec.text_col,
            spec.text_pair_col, spec.label_col)


def run_grid(specs: list[RunSpec], out: str | Path, quiet: bool = False,
             console: Console | None = None) -> list[Path]:
    """Run every spec not already complete in `out`. Bad input fails before any run starts."""
    console = console or Console(stderr=True, quiet=quiet)
    for spec in specs:  # unknown methods and parameters fail here, before any work
        build_method(spec)
    data: dict[tuple, TaskSplits] = {}
    for spec in specs:  # every file is read and checked before the first run
        key = data_key(spec)
        if key not in data:
            data[key] = load_data(spec)
    store = Store(out)
    todo = [s for s in specs if not store.is_complete(s.hash())]
    skipped = len(specs) - len(todo)
    if skipped:
        console.print(f"[dim]{skipped} of {len(specs)} runs already complete in {out}; skipping them[/]")
    folders = []
    for i, spec in enumerate(todo, start=1):
        label = f"{spec.task_label} / {spec.method}" + (f" / {spec.model}" if spec.model else "") + f" / seed {spec.seed}"
        console.print(f"[bold]run {i}/{len(todo)}[/]: {label}")
        result = execute(spec, data[data_key(spec)], quiet=quiet)
        folder = store.save(result)
        m = result.metrics
        console.print(
            f"  accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
            f"p50 {m['latency_ms_p50']:.2f} ms  {m['throughput_sps']:.0f}/s  -> {folder}"
        )
        folders.append(folder)
    return folders


def unique(specs: list[RunSpec]) -> list[RunSpec]:
    seen, out = set(), []
    for s in specs:
        if s.hash() not in seen:
            seen.add(s.hash())
            out.append(s)
    return out


__all__ = ["data_key", "run_grid", "unique"]
