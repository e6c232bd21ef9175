"""Run a list of RunSpecs into a results store: validate everything first, skip what is done."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console

from clfbench.config import RunSpec, expand_draws
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
    specs = unique(expand_draws(specs))  # --draws N: N runs, one per few-shot draw (seed)
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
            f"p50 {_num(m['latency_ms_p50'], '.2f')} ms  {_num(m['throughput_sps'], '.0f')}/s  -> {folder}"
        )
        folders.append(folder)
    _print_draws(specs, store, console)
    return folders


def _print_draws(specs: list[RunSpec], store: Store, console: Console) -> None:
    """Mean and std of accuracy and macro-F1 over the draws of each `draws > 1` configuration."""
    import numpy as np

    groups: dict[str, list[RunSpec]] = {}
    for s in specs:
        if s.params.get("draws", 1) > 1:
            key = json.dumps({**s.identity(), "seed": None}, sort_keys=True, default=str)
            groups.setdefault(key, []).append(s)
    done = {r["run_id"]: r for r in store.runs()} if groups else {}
    for group in groups.values():
        runs = [done[s.run_id()] for s in group if s.run_id() in done]
        if not runs:
            continue
        acc = np.array([r["accuracy"] for r in runs])
        f1 = np.array([r["macro_f1"] for r in runs])
        s = group[0]
        console.print(
            f"[bold]{s.task_label} / {s.method}[/] over {len(runs)} draws (seeds "
            f"{group[0].seed}..{group[-1].seed}): accuracy {acc.mean():.4f} ± {acc.std(ddof=1) if len(runs) > 1 else 0:.4f}, "
            f"macro-F1 {f1.mean():.4f} ± {f1.std(ddof=1) if len(runs) > 1 else 0:.4f} (mean ± std)"
        )


def _num(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def unique(specs: list[RunSpec]) -> list[RunSpec]:
    seen, out = set(), []
    for s in specs:
        if s.hash() not in seen:
            seen.add(s.hash())
            out.append(s)
    return out


__all__ = ["data_key", "run_grid", "unique"]
