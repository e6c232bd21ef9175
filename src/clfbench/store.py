"""The results store: one folder per run plus an SQLite index of completed runs.

A run is written into `DIR/.partial/<run-id>/` and moved into place with one rename only
when every file is written; only then is it entered in `DIR/index.sqlite`. A run killed
midway therefore leaves nothing that looks complete, and a re-run of the grid skips
exactly the runs whose resolved config (hash) is already indexed.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

from clfbench.errors import ClfbenchError

INDEX = "index.sqlite"
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    hash TEXT UNIQUE NOT NULL,
    task TEXT, method TEXT, model TEXT, seed INTEGER,
    finished_at REAL,
    metrics TEXT
)
"""
SUMMARY_KEYS = (
    "accuracy", "macro_f1", "mcc", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99",
    "throughput_sps", "peak_memory_mb", "train_seconds",
)


class Store:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _connect(self) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.root / INDEX)
        con.execute(SCHEMA)
        return con

    def is_complete(self, spec_hash: str) -> bool:
        if not (self.root / INDEX).exists():
            return False
        with self._connect() as con:
            row = con.execute("SELECT run_id FROM runs WHERE hash = ?", (spec_hash,)).fetchone()
        return row is not None and (self.root / row[0] / "metrics.json").is_file()

    def save(self, result) -> Path:
        """Write a RunResult atomically and index it. Returns the run folder."""
        spec = result.spec
        run_id = spec.run_id()
        partial = self.root / ".partial" / run_id
        if partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True)
        _write_json(partial / "config.json", result.config)
        with open(partial / "predictions.jsonl", "w") as f:
            for row in result.predictions:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        if spec.save_model and result.model is not None:
            result.model.save(partial / "model")
        for name, payload in result.extra.items():
            _write_json(partial / name, payload)
        _write_json(partial / "metrics.json", result.metrics)  # last: marks the folder complete
        final = self.root / run_id
        if final.exists():
            shutil.rmtree(final)
        partial.rename(final)
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id, spec.hash(), spec.task_label, spec.method, spec.model, spec.seed,
                    time.time(), json.dumps({k: result.metrics.get(k) for k in SUMMARY_KEYS}),
                ),
            )
        return final

    def runs(self) -> list[dict[str, Any]]:
        """Completed runs, oldest first, with their full metrics.json."""
        if not (self.root / INDEX).exists():
            raise ClfbenchError(f"{self.root}: no clfbench results here ({INDEX} missing)")
        with self._connect() as con:
            rows = con.execute(
                "SELECT run_id, task, method, model, seed FROM runs ORDER BY finished_at"
            ).fetchall()
        out = []
        for run_id, task, method, model, seed in rows:
            path = self.root / run_id / "metrics.json"
            if path.is_file():
                metrics = json.loads(path.read_text())
                out.append({"run_id": run_id, "task": task, "method": method, "model": model,
                            "seed": seed, "path": str(self.root / run_id), **metrics})
        return out


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, default=_json_default, ensure_ascii=False))


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)
