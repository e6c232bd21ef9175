"""Hand-written run folders for report tests (exact predictions, metrics from clfbench.evaluation.metrics)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import numpy as np

from clfbench.evaluation.metrics import quality_metrics
from clfbench.results.store import INDEX, SCHEMA


def write_run(
    root: Path,
    run_id: str,
    *,
    task: str,
    method: str,
    labels: list[str],
    gold: list[int],
    pred: list[int],
    texts: list[str] | None = None,
    proba: np.ndarray | None = None,
    model: str | None = None,
    seed: int = 99,
    params: dict | None = None,
    p50: float = 10.0,
    throughput: float = 100.0,
    train_seconds: float = 0.0,
    train_counts: list[int] | None = None,
    inference_info: dict | None = None,
    ids: list[str] | None = None,
    spec: dict | None = None,
    extra_metrics: dict | None = None,
) -> Path:
    """A complete run folder (config.json, metrics.json, predictions.jsonl) plus its index row.

    Metrics come from clfbench.evaluation.metrics.quality_metrics, so they match the predictions exactly.
    `spec` overrides fields of the run's spec (data_seed, max_eval, save_model, ...);
    `extra_metrics` adds or replaces top-level metrics.json fields (degenerate, fit_info, ...).
    """
    gold_a, pred_a = np.asarray(gold), np.asarray(pred)
    ids = ids or [f"ex{i}" for i in range(len(gold))]
    texts = texts or [f"text number {i}" for i in range(len(gold))]
    q = quality_metrics(gold_a, pred_a, labels, proba,
                        train_counts=np.asarray(train_counts) if train_counts is not None else None)
    metrics = {
        **q, "latency_ms_p50": p50, "latency_ms_p95": p50 * 2, "latency_ms_p99": p50 * 3,
        "throughput_sps": throughput, "peak_memory_mb": 500.0, "peak_gpu_memory_mb": None,
        "train_seconds": train_seconds, "parameters": 1000, "trainable_parameters": 1000,
        "fit_info": {}, "inference_info": inference_info or {}, "task": task, "method": method,
        "model": model, "seed": seed, **(extra_metrics or {}),
    }
    spec = {"method": method, "task": task, "model": model, "params": params or {}, "seed": seed,
            "data_seed": 99, "max_train": None, "max_eval": None, **(spec or {})}
    folder = root / run_id
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"spec": spec, "method_params": params or {}}))
    with open(folder / "predictions.jsonl", "w") as f:
        for i in range(len(gold)):
            row = {"id": ids[i], "text": texts[i], "gold": labels[gold[i]],
                   "pred": labels[pred[i]] if pred[i] >= 0 else None}
            if proba is not None:
                row["probabilities"] = {lab: float(proba[i, j]) for j, lab in enumerate(labels)}
            f.write(json.dumps(row) + "\n")
    (folder / "metrics.json").write_text(json.dumps(metrics))
    con = sqlite3.connect(root / INDEX)
    con.execute(SCHEMA)
    con.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, run_id + "-hash", task, method, model, seed, time.time(), "{}"))
    con.commit()
    con.close()
    return folder


def synthetic_results(root: Path, n: int = 120, seed: int = 0) -> dict:
    """Three hand-written configurations on one 3-class task with known error patterns.

    strong: ~90% right; weak: ~60% right; llm-api: the strong answers with a quarter spoiled
    and some invalid outputs.
    Example 0's text contains a <script> payload, to test escaping.
    """
    rng = np.random.default_rng(seed)
    labels = ["alpha", "beta", "gamma"]
    gold = rng.integers(0, 3, n)

    def noisy(acc: float) -> np.ndarray:
        wrong = rng.random(n) > acc
        return np.where(wrong, (gold + rng.integers(1, 3, n)) % 3, gold)

    texts = [f"sentence {i} about things" for i in range(n)]
    texts[0] = '<script>window.__pwned = 1</script> & "quoted" </script><b>bold</b>'
    strong, weak = noisy(0.9), noisy(0.6)
    llm = strong.copy()  # the LLM: the encoder's answers with a quarter of them made wrong
    spoil = rng.random(n) < 0.25
    llm[spoil] = (gold[spoil] + rng.integers(1, 3, int(spoil.sum()))) % 3
    strong[0] = weak[0] = llm[0] = (gold[0] + 1) % 3  # example 0 is wrong for everyone
    llm[1:4] = -1
    proba = np.full((n, 3), 0.1)
    proba[np.arange(n), strong] = 0.8
    write_run(root, "t-encoder-ft-s1", task="toy", method="encoder-ft", model="tiny", labels=labels,
              gold=gold.tolist(), pred=strong.tolist(), texts=texts, proba=proba, p50=20.0, throughput=400.0,
              train_seconds=600.0, train_counts=[50, 30, 5],
              inference_info={"backend": "onnx", "quantized": True, "dtype": "float32", "batch_size": 16,
                              "agreement": 0.9989, "recheck": {"margin": 1.06}})
    write_run(root, "t-tfidf-lr-s1", task="toy", method="tfidf-lr", labels=labels, gold=gold.tolist(),
              pred=weak.tolist(), texts=texts, p50=1.0, throughput=5000.0, train_seconds=2.0,
              train_counts=[50, 30, 5])
    write_run(root, "t-llm-api-s1", task="toy", method="llm-api", model="gpt-4o", labels=labels,
              gold=gold.tolist(), pred=llm.tolist(), texts=texts, p50=800.0, throughput=2.0,
              inference_info={"mean_input_tokens": 100.0, "mean_output_tokens": 2.0},
              train_counts=[50, 30, 5])
    return {"labels": labels, "gold": gold, "strong": strong, "weak": weak, "llm": llm, "texts": texts}
