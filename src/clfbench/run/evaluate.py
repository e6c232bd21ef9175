"""Run one RunSpec: fit -> predictions -> quality and timing, the same for every method (the
data and the method it gets come from `prepare`)."""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clfbench.data.splits import TaskSplits
from clfbench.data.texts import LabeledTexts
from clfbench.evaluation.measure import (
    MachineLoad,
    PeakMemory,
    ThreadChoice,
    choose_threads,
    limit_threads,
    measure_latency,
    measure_throughput,
)
from clfbench.evaluation.metrics import quality_metrics
from clfbench.methods.base import Classifier
from clfbench.run.config import RunSpec
from clfbench.run.environment import environment
from clfbench.run.executors.timing import TimingLock
from clfbench.run.prepare import build_method, load_data


@dataclass
class RunResult:
    spec: RunSpec
    metrics: dict[str, Any]
    predictions: list[dict[str, Any]]
    config: dict[str, Any]
    model: Classifier | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    import torch

    torch.manual_seed(seed)


def execute(spec: RunSpec, splits: TaskSplits | None = None, quiet: bool = True) -> RunResult:
    """Fit on train (selecting on validation), then measure on the reported test split.

    The whole run, fit and timing, runs with torch and every BLAS/OpenMP pool bounded to
    `spec.threads` when given, else to fewer than torch's default when other processes keep
    cores busy (`measure.choose_threads`: a short load sample first, the choice recorded and,
    when lowered, printed); the caller's thread settings are restored afterwards. Under a
    concurrent executor the run holds the node's timing lock, exclusively while it is timed
    (`executors.timing`).
    """
    threads = choose_threads(spec.threads)
    if threads.chosen_by == "load" and not quiet:
        print(f"  {threads.line()}", file=sys.stderr, flush=True)
    with limit_threads(threads.limit), TimingLock().run() as timing:
        return _execute(spec, splits, quiet, timing, threads)


def _execute(spec: RunSpec, splits: TaskSplits | None, quiet: bool,
             timing: TimingLock, threads: ThreadChoice) -> RunResult:
    seed_everything(spec.seed)
    if splits is None:
        from clfbench.data.splits import train_subset

        splits = train_subset(load_data(spec), spec.train_size, spec.draw)
    method = build_method(spec)
    if spec.spent_before_usd and hasattr(method, "spent_before_usd"):
        method.spent_before_usd = float(spec.spent_before_usd)  # budget_usd covers re-runs too
    if hasattr(method, "verbose"):
        method.verbose = not quiet
    memory = PeakMemory()
    with memory.track():
        t0 = time.perf_counter()
        method.fit(splits.train, splits.validation)
        # A training resumed from checkpoints also counts what the interrupted process spent.
        train_seconds = (time.perf_counter() - t0
                         + float(method.fit_info().get("train_seconds_before_resume") or 0.0))
        test = splits.test
        # One timed pass over the whole test split gives both the predictions and throughput.
        predictions: dict[str, Any] = {}

        def timed(X):
            predictions["out"] = method.classify(X)
            predictions["rows"] = method.probability_rows()  # before latency calls replace it

        load = MachineLoad()  # who else kept the CPUs busy while we were timing
        with timing.timed(), load.track():
            throughput = measure_throughput(timed, test, warmup_examples=0 if method.remote else 32)
            latency = measure_latency(
                method.classify, test, n=spec.latency_examples,
                warmup=min(spec.latency_warmup, 1) if method.remote else spec.latency_warmup,
                show_progress=not quiet,
            )
        pred, proba = predictions["out"]
        proba_rows = predictions["rows"]
    inference_info = method.inference_info()  # before the check below classifies validation
    sanity = validation_check(method, splits, pred, spec.data_seed)
    if sanity["degenerate"]:
        warn(f"warning: {spec.task_label} / {spec.method}"
             f"{' / ' + spec.model if spec.model else ''} / seed {spec.seed} is degenerate: "
             + "; ".join(sanity["reasons"]) + ". It will never be called best.")
    for text in sanity.get("warnings") or []:
        warn(f"warning: {spec.task_label} / {spec.method}"
             f"{' / ' + spec.model if spec.model else ''} / seed {spec.seed}: {text}.")
    if inference_info.get("budget_exhausted"):
        # Calls that sent nothing return at once: their timings describe no real request.
        latency = {**{k: None for k in latency}, "note": "budget exhausted: timings withheld"}
        throughput = {"throughput_sps": None, "note": "budget exhausted: timings withheld"}
    quality = quality_metrics(
        test.labels, pred, test.label_names, proba, train_counts=splits.train.class_counts(),
        proba_rows=proba_rows,
    )
    total, trainable = method.n_parameters()
    metrics = {
        **{k: quality[k] for k in ("accuracy", "macro_f1", "weighted_f1", "mcc")},
        **{k: latency[k] for k in ("latency_ms_p50", "latency_ms_p95", "latency_ms_p99")},
        "throughput_sps": throughput["throughput_sps"],
        "degenerate": sanity["degenerate"],
        "degenerate_reasons": sanity["reasons"],
        "degenerate_check": sanity,
        # What the efficiency numbers were measured with (the engine's choice where there is one).
        "backend": inference_info.get("backend", "native"),
        "inference_batch_size": inference_info.get(
            "batch_size", getattr(method, "eval_batch_size", getattr(method, "batch_size", None))
        ),
        "peak_memory_mb": memory.peak_rss_mb,
        "peak_gpu_memory_mb": memory.peak_gpu_mb,
        "train_seconds": train_seconds if method.needs_training else 0.0,
        "parameters": total,
        "trainable_parameters": trainable,
        "trainable_share": (trainable / total) if total else None,
        **{k: v for k, v in quality.items() if k not in ("accuracy", "macro_f1", "weighted_f1", "mcc")},
        "latency": latency,
        "throughput": throughput,
        "machine_load": load.summary,
        "threads": threads.record(),
        "timing_exclusive": timing.exclusive,
        "timing_exclusive_how": timing.how,
        "fit_info": method.fit_info(),
        "inference_info": inference_info,
        "splits": splits.notes,
        "task": spec.task_label,
        "method": spec.method,
        "model": spec.model,
        "seed": spec.seed,
        # learning curves: the size asked for and the labelled examples it realised
        **({"train_size": spec.train_size, "n_train": len(splits.train)} if spec.train_size else {}),
    }
    config = {"spec": spec.identity(), "method_params": method.get_params(),
              "env": {**environment(), "threads": threads.record()}}
    return RunResult(spec, metrics, prediction_rows(test, pred, proba, proba_rows), config, method)


#: Validation examples classified for the degenerate check (a stratified sample above this).
VALIDATION_CHECK_MAX = 500  # enough to see a collapse; an LLM pays per example


def validation_check(method: Classifier, splits: TaskSplits, test_pred: np.ndarray,
                     seed: int) -> dict[str, Any]:
    """`degenerate.degenerate_check` on validation predictions (a stratified sample of up to
    `VALIDATION_CHECK_MAX`). Paid methods (API models) are not called again: their test
    predictions are checked instead, and `basis` says so."""
    from clfbench.data.texts import stratified_indices
    from clfbench.evaluation.degenerate import degenerate_check

    val = splits.validation
    counts = splits.train.class_counts()
    k = len(splits.test.label_names)
    if method.remote or val is None or len(val) == 0:
        basis = "test predictions (paid requests are not repeated)" if method.remote else \
            "test predictions (no validation split)"
        return {**degenerate_check(splits.test.labels, test_pred, counts, k, seed), "basis": basis}
    if len(val) > VALIDATION_CHECK_MAX:
        val = val.subset(stratified_indices(val.labels, VALIDATION_CHECK_MAX, seed))
    pred = np.asarray(method.predict(val))
    return {**degenerate_check(val.labels, pred, counts, k, seed), "basis": "validation"}


def warn(message: str) -> None:
    """A warning on stderr, shown even with --quiet (user strings printed literally)."""
    from rich.console import Console
    from rich.text import Text

    Console(stderr=True, soft_wrap=True).print(Text(message, style="bold yellow"))


def prediction_rows(test: LabeledTexts, pred: np.ndarray, proba: np.ndarray | None,
                    proba_rows: np.ndarray | None = None) -> list[dict]:
    """One row per test example; `probabilities` only where they are real (`proba_rows`)."""
    names = test.label_names
    rows = []
    for i in range(len(test)):
        row = {
            "id": test.ids[i],
            "text": test.texts[i],
            **({"text_pair": test.pairs[i]} if test.pairs is not None else {}),
            "gold": names[int(test.labels[i])],
            "pred": names[int(pred[i])] if pred[i] >= 0 else None,
        }
        if proba is not None and (proba_rows is None or proba_rows[i]):
            row["probabilities"] = {n: round(float(p), 6) for n, p in zip(names, proba[i])}
        rows.append(row)
    return rows
