"""Run a list of RunSpecs into a results store: validate everything first, skip what is done.

Each run executes in its own fresh worker process (`clfbench.run.worker`) unless `isolate=False`
or the environment variable CLFBENCH_ISOLATE=0 (debugging: one process, breakpoints work).
"""

from __future__ import annotations

import sys
import tempfile
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from clfbench.data.splits import SMALL_SIZE_DRAWS, TaskSplits, size_draws_needed, train_subset
from clfbench.results.store import Store, incomplete_reason
from clfbench.run.config import RunSpec, expand_draws, repeat_key
from clfbench.run.evaluate import RunResult, warn
from clfbench.run.executors import Executor, Job, SequentialExecutor
from clfbench.run.prepare import load_data, preflight
from clfbench.run.worker import isolate_default

#: How often (seconds) a grid checks the runs it waits for, claimed by another live process.
WAIT_POLL_S = 1.0
#: At most this many run labels in a "waiting for" line.
WAIT_LABELS = 5


def data_key(spec: RunSpec) -> tuple:
    """Runs that share this key see exactly the same train/validation/test examples."""
    return (spec.task, spec.data_dir, spec.data_seed, spec.max_train, spec.max_eval,
            spec.train_file, spec.validation_file, spec.test_file, spec.text_col,
            spec.text_pair_col, spec.label_col)


def run_grid(specs: list[RunSpec], out: str | Path, quiet: bool = False,
             console: Console | None = None, isolate: bool | None = None,
             executor: Executor | None = None) -> list[Path]:
    """Run every spec not already complete in `out`. Bad input fails before any run starts.

    `isolate` (default: CLFBENCH_ISOLATE, else True): each run in a fresh worker process.
    `executor` (default: one run at a time here): where runs compute (`clfbench.run.executors`);
    this process claims and saves every run whichever executor computes it.
    """
    # soft_wrap: in a log rich would cut lines (a run folder's path among them) at 80 columns
    console = console or Console(stderr=True, quiet=quiet, soft_wrap=True)
    if isolate is None:
        isolate = isolate_default()
    specs = unique(expand_draws(specs))  # --draws N: N runs per seed, one per few-shot draw
    specs = [absolute_checkpoint_dir(s) for s in specs]
    for spec in specs:  # unknown methods, parameters and models fail here, before any work
        preflight(spec)
    store = Store(out)
    store.check_writable()  # an unusable --out fails before any work
    orphans = store.clean_partials()  # saves that killed processes left half-written
    if orphans:
        console.print(f"[dim]removed {len(orphans)} half-written save(s) left in "
                      f"{escape(str(Path(out) / '.partial'))} by processes that are gone[/]")
    data = _load_all(specs)
    specs = unique(expand_size_draws(specs, data))
    fresh = not Path(out).exists()
    todo = [s for s in specs if not store.is_complete(s.hash())]
    for key in dict.fromkeys(data_key(s) for s in todo):  # every check passed: warn, then run
        for warning in data[key].notes.get("warnings", []):
            print(f"clfbench: warning: {warning}", file=sys.stderr)
    skipped = len(specs) - len(todo)
    if skipped:
        console.print(f"[dim]{skipped} of {len(specs)} runs already complete in {escape(str(out))}; skipping them[/]")
    try:
        folders = _drive(todo, data, store, executor or SequentialExecutor(isolate), quiet, console)
    except BaseException:
        if fresh:  # a grid that failed before keeping anything leaves no folder behind
            store.remove_if_empty()
        raise
    _print_draws(specs, store, console)
    return folders


def absolute_checkpoint_dir(spec: RunSpec) -> RunSpec:
    """A relative `checkpoint_dir` taken from this working folder: a worker process or Ray
    node elsewhere then checkpoints, and resumes, in the same place."""
    folder = spec.params.get("checkpoint_dir")
    if not isinstance(folder, str) or Path(folder).is_absolute():
        return spec
    return replace(spec, params={**spec.params, "checkpoint_dir": str(Path(folder).expanduser().resolve())})


def not_complete(specs: list[RunSpec], out: str | Path) -> list[RunSpec]:
    """The runs of `specs` (draws expanded) that `out` does not hold as complete results: left
    incomplete (failed API requests), or claimed by a process that has not finished them."""
    store = Store(out)
    specs = unique(expand_draws(specs))
    if any(s.train_size for s in specs):  # size draws depend on the data's realised sizes
        specs = unique(expand_size_draws(specs, _load_all(specs)))
    return [s for s in specs if not store.is_complete(s.hash())]


def _load_all(specs: list[RunSpec]) -> dict[tuple, TaskSplits]:
    """Every file read and checked before the first run: the splits per `data_key`."""
    data: dict[tuple, TaskSplits] = {}
    for spec in specs:
        key = data_key(spec)
        if key not in data:
            data[key] = load_data(spec)
    return data


def splits_for(spec: RunSpec, data: dict[tuple, TaskSplits]) -> TaskSplits:
    """The splits a run trains and is scored on: its data, train cut to its learning-curve size."""
    return train_subset(data[data_key(spec)], spec.train_size, spec.draw)


def expand_size_draws(specs: list[RunSpec], data: dict[tuple, TaskSplits]) -> list[RunSpec]:
    """A learning-curve size realising fewer than `splits.SMALL_SIZE` examples runs
    `spec.size_draws` (default `SMALL_SIZE_DRAWS`) times (draw 0..N-1, each a different nested subset; the training seed
    stays the spec's). A spec with its own `params.draws` keeps those draws. Sizes are checked
    here, against the data, before any run starts."""
    out = []
    for spec in specs:
        if not spec.train_size or spec.draw or spec.params.get("draws", 1) > 1:
            out.append(spec)
            continue
        sub = splits_for(spec, data)
        n, pool = sub.notes["train_size"]["n"], len(data[data_key(spec)].train)
        draws = (spec.size_draws or SMALL_SIZE_DRAWS) if size_draws_needed(n, pool) else 1
        out.extend(replace(spec, draw=d) for d in range(draws))
    return out


def _label(spec: RunSpec) -> str:
    return (f"{spec.task_label} / {spec.method}" + (f" / {spec.model}" if spec.model else "")
            + (f" / train {spec.train_size}" if spec.train_size else "") + f" / seed {spec.seed}"
            + (f" draw {spec.draw}" if spec.params.get("draws", 1) > 1 or spec.train_size else ""))


def _drive(todo: list[RunSpec], data: dict[tuple, TaskSplits], store: Store, executor: Executor,
           quiet: bool, console: Console) -> list[Path]:
    """Claim each run, hand it to `executor` (at most `executor.capacity` in flight), save each
    result as it comes back. A run claimed by another live process is waited for (polled every
    `WAIT_POLL_S`) until that process completes it; one whose claim ends without a result (the
    process failed or died, or its claim went stale) is claimed and computed here, so the grid
    returns with every run done. After an error nothing new starts; the runs in flight are
    saved, then the first error is raised. Claims are released whatever happens."""
    queue = list(enumerate(todo, start=1))[::-1]
    held: dict[str, AbstractContextManager] = {}  # run hash -> its model scratch folder
    waiting: dict[str, tuple[int, RunSpec, str | None]] = {}  # run hash -> (number, spec, owner)
    shown: frozenset = frozenset()  # the waiting state last printed
    folders: list[Path] = []
    errors: list[BaseException] = []
    done = 0
    with executor:
        concurrent = executor.capacity > 1  # known once the executor has started
        try:
            while queue or held or (waiting and not errors):
                while queue and not errors and len(held) < executor.capacity:
                    i, spec = queue.pop()
                    console.print(f"[bold]run {i}/{len(todo)}[/]: {escape(_label(spec))}")
                    if not store.claim(spec.hash(), spec.run_id()):  # another worker may have taken it
                        if store.is_complete(spec.hash()):
                            console.print("  skipped: already complete")
                        else:
                            owner = store.claim_owner(spec.hash())
                            waiting[spec.hash()] = (i, spec, owner)
                            console.print(f"  claimed by {escape(_who([owner]))}: waiting for it")
                        continue
                    spec = _with_spend_before(spec, store)
                    held[spec.hash()] = scratch = _model_scratch(spec)
                    executor.submit(Job(spec, splits_for(spec, data), quiet, scratch.__enter__()))
                if waiting and not errors and not queue and len(held) < executor.capacity:
                    _poll_waiting(waiting, queue, store, console)
                    if queue:  # claims that ended without a result: start those runs now
                        continue
                    if waiting and not held:  # nothing to compute here: wait
                        shown = _show_waiting(waiting, shown, console)
                        time.sleep(WAIT_POLL_S)
                if not held:
                    if errors or not (queue or waiting):
                        break
                    continue
                for job, outcome in executor.wait():
                    spec = job.spec
                    try:
                        if isinstance(outcome, BaseException):
                            errors.append(outcome)
                            continue
                        folder = store.save(outcome)
                    finally:
                        held.pop(spec.hash()).__exit__(None, None, None)
                        store.release(spec.hash())
                    done += 1
                    if concurrent:
                        console.print(f"[bold]done[/]: {escape(_label(spec))}")
                    if _report(outcome, folder, console):
                        folders.append(folder)
                if concurrent:
                    running = executor.running()
                    console.print(f"[dim]progress: {done} done, {running} running, "
                                  f"{len(queue) + len(held) - running} queued"
                                  + (f", {len(waiting)} waiting for another process" if waiting else "")
                                  + "[/]")
        finally:
            for spec_hash, scratch in held.items():
                scratch.__exit__(None, None, None)
                store.release(spec_hash)
    if errors:
        raise errors[0]
    return folders


def _poll_waiting(waiting: dict[str, tuple[int, RunSpec, str | None]],
                  queue: list[tuple[int, RunSpec]], store: Store, console: Console) -> None:
    """Drop the waited-for runs another process completed; queue here each one whose claim
    ended without a result (its process failed, was stopped or died, or the claim went stale)."""
    for spec_hash, (i, spec, owner) in list(waiting.items()):
        if store.is_complete(spec_hash):
            del waiting[spec_hash]
            console.print(f"[bold]done by {escape(_who([owner]))}[/]: {escape(_label(spec))}")
            continue
        live = store.live_claim_owner(spec_hash)
        if live is not None:
            waiting[spec_hash] = (i, spec, live)  # still claimed, maybe by yet another process now
            continue
        del waiting[spec_hash]
        console.print(f"[yellow]{escape(_who([owner]))} left {escape(_label(spec))} unfinished "
                      "(claim released or abandoned): running it here[/]")
        queue.append((i, spec))


def _show_waiting(waiting: dict[str, tuple[int, RunSpec, str | None]], shown: frozenset,
                  console: Console) -> frozenset:
    """Print which runs this grid waits for, and on whom, when that changed since it was last
    printed (not at every poll); returns the state printed."""
    state = frozenset((h, owner) for h, (_, _, owner) in waiting.items())
    if state != shown:
        runs = sorted(waiting.values(), key=lambda w: w[0])
        labels = "; ".join(_label(spec) for _, spec, _ in runs[:WAIT_LABELS])
        more = f"; and {len(runs) - WAIT_LABELS} more" if len(runs) > WAIT_LABELS else ""
        console.print(f"waiting for {len(runs)} run(s) claimed by {escape(_who([o for *_, o in runs]))}: "
                      f"{escape(labels + more)}")
    return state


def _who(owners: list[str | None]) -> str:
    """'another process (pid 1234 on host)' for claim owners `host:pid:tag`; several: 'other processes (...)'."""
    named = sorted({f"pid {pid} on {host}" for host, pid, _ in
                    (o.rsplit(":", 2) for o in owners if o and o.count(":") >= 2)})
    who = "another process" if len(named) <= 1 else "other processes"
    return f"{who} ({', '.join(named)})" if named else who


def _with_spend_before(spec: RunSpec, store: Store) -> RunSpec:
    """The spec with what incomplete earlier runs of it spent (said on the console): an API
    method's budget_usd is what is left of it."""
    before = store.spent_before(spec.hash(), spec.run_id())
    if not before:
        return spec
    budget = spec.params.get("budget_usd")
    left = (f"; budget_usd={budget} leaves ${max(0.0, float(budget) - before):.4f} for this run"
            if isinstance(budget, (int, float)) and not isinstance(budget, bool) else "")
    # Money: said even with --quiet (stderr), like other warnings.
    warn(f"{_label(spec)}: earlier incomplete runs of this configuration spent ${before:.4f}{left}")
    return replace(spec, spent_before_usd=before)


def _report(result: RunResult, folder: Path, console: Console) -> bool:
    """Print a saved run's headline numbers; False when it is incomplete (kept, not indexed)."""
    reason = incomplete_reason(result.metrics)
    if reason:
        console.print(f"  [yellow]incomplete ({escape(reason)}): kept in {escape(str(folder))}, not indexed; "
                      "a re-run retries it[/]")
        return False
    m = result.metrics
    mark = "  [bold yellow]DEGENERATE[/]" if m.get("degenerate") else ""
    console.print(
        f"  accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}{mark}  "
        f"p50 {_num(m['latency_ms_p50'], '.2f')} ms  {_num(m['throughput_sps'], '.0f')}/s  -> {escape(str(folder))}"
    )
    load = m.get("machine_load") or {}
    if load.get("contended"):
        console.print(f"  [yellow]warning: latencies measured under contention: other processes "
                      f"used {load['other_cpu_pct']:.0f}% CPU (100% = one core) during timing[/]")
    return True


def _model_scratch(spec: RunSpec) -> AbstractContextManager[str | None]:
    """A temporary folder for the model a worker saves; none when the run saves no model."""
    return tempfile.TemporaryDirectory(prefix="clfbench-model-") if spec.save_model else nullcontext()


def _print_draws(specs: list[RunSpec], store: Store, console: Console) -> None:
    """Mean and std of accuracy and macro-F1 over the draws of each `draws > 1` configuration."""
    import numpy as np

    groups: dict[str, list[RunSpec]] = {}
    for s in specs:
        if s.params.get("draws", 1) > 1:
            groups.setdefault(repeat_key(s), []).append(s)
    done = {r["run_id"]: r for r in store.runs()} if groups else {}
    for group in groups.values():
        runs = [done[s.run_id()] for s in group if s.run_id() in done]
        if not runs:
            continue
        acc = np.array([r["accuracy"] for r in runs])
        f1 = np.array([r["macro_f1"] for r in runs])
        s = group[0]
        seeds = ", ".join(str(x) for x in dict.fromkeys(g.seed for g in group))
        console.print(
            f"[bold]{escape(s.task_label)} / {s.method}[/] over {len(runs)} runs (seeds {seeds} x "
            f"{s.params['draws']} draws): accuracy {acc.mean():.4f} ± {acc.std(ddof=1) if len(runs) > 1 else 0:.4f}, "
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


__all__ = ["data_key", "expand_size_draws", "run_grid", "splits_for", "unique"]
