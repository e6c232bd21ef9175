"""Optional MLflow logging of a results folder (`clfbench report --mlflow`).

Every run becomes one MLflow run (params, scalar metrics, its files as artifacts) in a local
SQLite store `DIR/mlflow.db` with artifacts under `DIR/mlartifacts`, so nothing is written
outside the results folder. Logging is idempotent: a run already logged (tag
`clfbench.run_id`) is skipped. MLflow is an optional extra: `pip install clfbench[mlflow]`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from clfbench.extras import require

EXPERIMENT = "clfbench"
_MAX_PARAM = 6000  # MLflow's limit on a parameter value's length


def _flat(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        out[prefix] = text[:_MAX_PARAM]


def log_to_mlflow(results_dir: str | Path, runs: list | None = None) -> dict[str, str]:
    """Log every run of `results_dir` to `sqlite:///DIR/mlflow.db`; returns {run_id: mlflow run id}."""
    require("mlflow", what="--mlflow")
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from clfbench.report.runs import load_runs

    root = Path(results_dir).resolve()
    runs = runs if runs is not None else load_runs(root)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    exp_id = exp.experiment_id if exp else client.create_experiment(
        EXPERIMENT, artifact_location=(root / "mlartifacts").as_uri())
    done = {r.data.tags.get("clfbench.run_id"): r.info.run_id
            for r in client.search_runs([exp_id], max_results=50000)}
    logged: dict[str, str] = {}
    for run in runs:
        if run.run_id in done:
            logged[run.run_id] = done[run.run_id]
            continue
        params: dict[str, str] = {}
        spec = dict((run.config or {}).get("spec") or {})
        _flat("", {k: v for k, v in spec.items() if k != "params"}, params)
        _flat("params", spec.get("params") or {}, params)
        _flat("method_params", (run.config or {}).get("method_params") or {}, params)
        metrics = {k: float(v) for k, v in run.metrics.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}
        for name, row in (run.metrics.get("per_class") or {}).items():
            if isinstance(row, dict) and isinstance(row.get("f1"), (int, float)):
                metrics[f"f1.{_safe(name)}"] = float(row["f1"])
        tags = {"clfbench.run_id": run.run_id, "task": run.task, "method": run.method,
                "model": str(run.model), "configuration": run.label}
        mr = client.create_run(exp_id, run_name=run.run_id, tags=tags)
        rid = mr.info.run_id
        now = int(time.time() * 1000)
        items = list(params.items())
        for i in range(0, len(items), 100):
            client.log_batch(rid, params=[Param(k, v) for k, v in items[i:i + 100]])
        mitems = list(metrics.items())
        for i in range(0, len(mitems), 500):
            client.log_batch(rid, metrics=[Metric(k, v, now, 0) for k, v in mitems[i:i + 500]])
        for name in ("config.json", "metrics.json", "predictions.jsonl"):
            if (run.path / name).is_file():
                client.log_artifact(rid, str(run.path / name))
        client.set_terminated(rid)
        logged[run.run_id] = rid
    return logged


def _safe(name: str) -> str:
    """MLflow metric names allow alphanumerics, _ - . space / only."""
    import re

    return re.sub(r"[^A-Za-z0-9_\-. /]", "_", str(name))
