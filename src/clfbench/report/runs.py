"""Load a results folder into runs and configurations (runs that differ only by seed).

A configuration is (task, method, model, method params without seed-like keys, data sizes):
its runs are repeated seeds or few-shot draws of the same thing, reported as mean ± std.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clfbench.errors import ClfbenchError
from clfbench.io import iter_jsonl
from clfbench.store import Store

# Spec fields that do not change what is measured (or are the seed itself).
_NOT_CONFIG = {"seed", "data_dir", "threads", "save_model", "latency_examples", "latency_warmup",
               "train_file", "validation_file", "test_file"}


def _is_seed_key(key: str) -> bool:
    return "seed" in key.lower()


@dataclass
class Run:
    run_id: str
    path: Path
    metrics: dict[str, Any]
    config: dict[str, Any]
    predictions: list[dict[str, Any]]
    labels: list[str]
    task: str
    method: str
    model: str | None
    seed: int | None
    key: str = ""
    label: str = ""

    @property
    def has_probabilities(self) -> bool:
        return bool(self.predictions) and all("probabilities" in p for p in self.predictions)

    def ids(self) -> list[str]:
        return [str(p["id"]) for p in self.predictions]

    def encoded(self, ids: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(gold, pred) label ids over `ids` (all if None); an invalid prediction is -1."""
        index = {lab: i for i, lab in enumerate(self.labels)}
        rows = self.predictions
        if ids is not None:
            by_id = {str(p["id"]): p for p in rows}
            rows = [by_id[i] for i in ids]
        gold = np.array([index[r["gold"]] for r in rows], dtype=int)
        pred = np.array([index.get(r["pred"], -1) if r.get("pred") is not None else -1 for r in rows], dtype=int)
        return gold, pred

    def probabilities(self) -> np.ndarray | None:
        if not self.has_probabilities:
            return None
        return np.array([[float(p["probabilities"].get(lab, 0.0)) for lab in self.labels]
                         for p in self.predictions])


@dataclass
class Config:
    """Runs of one configuration on one task (seeds / draws)."""

    task: str
    key: str
    label: str
    method: str
    model: str | None
    runs: list[Run] = field(default_factory=list)

    def mean(self, name: str) -> float | None:
        vals = [_num(r.metrics.get(name)) for r in self.runs]
        vals = [v for v in vals if v is not None]
        return float(np.mean(vals)) if vals else None

    def std(self, name: str) -> float | None:
        vals = [v for v in (_num(r.metrics.get(name)) for r in self.runs) if v is not None]
        return float(statistics.stdev(vals)) if len(vals) > 1 else None

    @property
    def representative(self) -> Run:
        """The run with the median macro-F1 (lower median): used for paired tests and errors."""
        ranked = sorted(self.runs, key=lambda r: (_num(r.metrics.get("macro_f1")) or 0.0, r.seed or 0))
        return ranked[(len(ranked) - 1) // 2]

    @property
    def family(self) -> str:
        return method_family(self.method)


def method_family(method: str) -> str:
    """'llm' (decoder LLMs prompted, tuned or behind an API: llm-*, decoder-*), 'encoder'
    (encoder-*, embed-*, setfit*), else 'classic'."""
    if method.startswith(("llm-", "decoder-")):
        return "llm"
    if method.startswith(("encoder", "embed", "setfit")):
        return "encoder"
    return "classic"


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return None if np.isnan(v) else v


def _read_predictions(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ClfbenchError(f"{path}: missing (every completed run has predictions.jsonl)")
    rows = []
    for line_no, row in iter_jsonl(path):
        for key in ("id", "gold"):
            if key not in row:
                raise ClfbenchError(f"{path}: line {line_no}: field '{key}' missing")
        rows.append(row)
    return rows


def _labels(metrics: dict[str, Any], path: Path) -> list[str]:
    per_class = metrics.get("per_class")
    if not isinstance(per_class, dict) or not per_class:
        raise ClfbenchError(f"{path}: field 'per_class' missing or empty (needed for the label set)")
    return list(per_class)


def _short_model(model: str | None) -> str:
    if not model:
        return ""
    return Path(str(model)).name


def _fmt_param(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_fmt_param(x) for x in v) + "]"
    return str(v)


def inference_setup(metrics: dict[str, Any]) -> dict[str, Any]:
    """How a run's predictions and timings were made: the backend (with int8, half precision or
    fp32 re-checks), the batch size, and the label agreement with the fp32 model (None where
    the method has no such reference)."""
    info = metrics.get("inference_info") or {}
    parts = [str(metrics.get("backend") or info.get("backend") or "native")]
    if info.get("quantized"):
        parts.append("int8")
    elif info.get("dtype") not in (None, "float32"):
        parts.append(str(info["dtype"]))
    if info.get("recheck"):
        parts.append("+ fp32 re-check")
    batch = metrics.get("inference_batch_size", info.get("batch_size"))
    return {"setup": " ".join(parts), "batch_size": batch, "agreement": _num(info.get("agreement"))}


def load_runs(root: str | Path) -> list[Run]:
    """Every completed run of a results folder with its config and predictions."""
    root = Path(root)
    runs = []
    for entry in Store(root).runs():
        path = Path(entry["path"])
        metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
        cfg_path = path / "config.json"
        config = json.loads(cfg_path.read_text(encoding="utf-8")) if cfg_path.is_file() else {}
        preds = _read_predictions(path / "predictions.jsonl")
        labels = _labels(metrics, path / "metrics.json")
        known = set(labels)
        seen_ids: set[str] = set()
        for i, p in enumerate(preds, 1):
            if str(p["id"]) in seen_ids:
                raise ClfbenchError(f"{path / 'predictions.jsonl'}:{i}: duplicate id {p['id']!r}")
            seen_ids.add(str(p["id"]))
            if p["gold"] not in known:
                raise ClfbenchError(f"{path / 'predictions.jsonl'}:{i}: gold label {p['gold']!r} not in the run's labels")
        runs.append(Run(
            run_id=entry["run_id"], path=path, metrics=metrics, config=config, predictions=preds,
            labels=labels, task=str(metrics.get("task") or entry.get("task")),
            method=str(metrics.get("method") or entry.get("method")),
            model=metrics.get("model", entry.get("model")), seed=metrics.get("seed", entry.get("seed")),
        ))
    if not runs:
        raise ClfbenchError(f"{root}: no completed runs to report")
    _assign_configs(runs)
    return runs


def _assign_configs(runs: list[Run]) -> None:
    """Set each run's configuration key and a readable label, unique within its task."""
    for r in runs:
        spec = dict(r.config.get("spec") or {})
        params = {k: v for k, v in (spec.pop("params", None) or {}).items() if not _is_seed_key(k)}
        ident = {k: v for k, v in spec.items() if k not in _NOT_CONFIG and not _is_seed_key(k)}
        ident.update(task=r.task, method=r.method, model=r.model, params=params)
        r.key = json.dumps(ident, sort_keys=True, default=str)
        name = r.method + (f"/{_short_model(r.model)}" if r.model else "")
        extra = " ".join(f"{k}={_fmt_param(v)}" for k, v in sorted(params.items()))
        r.label = name + (f" {extra}" if extra else "")
    # Where two configurations of a task share a label (e.g. different --max-train), add sizes.
    by_task_label: dict[tuple[str, str], set[str]] = {}
    for r in runs:
        by_task_label.setdefault((r.task, r.label), set()).add(r.key)
    for r in runs:
        if len(by_task_label[(r.task, r.label)]) > 1:
            spec = r.config.get("spec") or {}
            r.label += f" (train {spec.get('max_train') or 'all'}, eval {spec.get('max_eval') or 'all'})"
    seen: dict[tuple[str, str], str] = {}
    for r in runs:
        other = seen.setdefault((r.task, r.label), r.key)
        if other != r.key:  # still ambiguous: fall back to a short hash of the key
            import hashlib

            r.label += " #" + hashlib.sha1(r.key.encode()).hexdigest()[:6]


def group_configs(runs: list[Run]) -> dict[str, list[Config]]:
    """Configurations per task (tasks sorted), each task's configurations by mean macro-F1."""
    tasks: dict[str, dict[str, Config]] = {}
    for r in runs:
        cfgs = tasks.setdefault(r.task, {})
        if r.key not in cfgs:
            cfgs[r.key] = Config(r.task, r.key, r.label, r.method, r.model)
        cfgs[r.key].runs.append(r)
    out = {}
    for task in sorted(tasks):
        cfgs = list(tasks[task].values())
        for c in cfgs:
            c.runs.sort(key=lambda r: (r.seed is None, r.seed))
        cfgs.sort(key=lambda c: -(c.mean("macro_f1") or 0.0))
        out[task] = cfgs
    return out


def common_ids(runs: list[Run]) -> list[str]:
    """Example ids present in every run, in the first run's order."""
    if not runs:
        return []
    shared = set(runs[0].ids())
    for r in runs[1:]:
        shared &= set(r.ids())
    return [i for i in runs[0].ids() if i in shared]
