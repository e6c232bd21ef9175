"""MLflow logging of a results folder into DIR/mlflow.db (skipped when mlflow is absent)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from report_fixtures import synthetic_results  # noqa: E402

from clfbench.errors import ClfbenchError  # noqa: E402
from clfbench.report.tracking import log_to_mlflow  # noqa: E402


def test_mlflow_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    monkeypatch.setitem(sys.modules, "mlflow.entities", None)
    with pytest.raises(ClfbenchError, match="pip install"):
        log_to_mlflow(tmp_path)


def test_log_runs_to_sqlite_store(tmp_path):
    pytest.importorskip("mlflow", reason="mlflow not installed (pip install 'clfbench[mlflow]')")
    from mlflow.tracking import MlflowClient

    root = tmp_path / "results"
    root.mkdir()
    synthetic_results(root, n=40)
    logged = log_to_mlflow(root)
    assert (root / "mlflow.db").is_file()
    assert set(logged) == {"t-encoder-ft-s1", "t-tfidf-lr-s1", "t-llm-api-s1"}
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    for run_id, mlflow_id in logged.items():
        run = client.get_run(mlflow_id)
        metrics = json.loads((root / run_id / "metrics.json").read_text())
        assert run.data.metrics["accuracy"] == pytest.approx(metrics["accuracy"])
        assert run.data.metrics["latency_ms_p50"] == pytest.approx(metrics["latency_ms_p50"])
        assert run.data.params["method"] == metrics["method"]
        assert run.data.tags["clfbench.run_id"] == run_id
        artifacts = {a.path for a in client.list_artifacts(mlflow_id)}
        assert {"config.json", "metrics.json", "predictions.jsonl"} <= artifacts
        assert str(root) in run.info.artifact_uri  # nothing written outside the results folder
    assert log_to_mlflow(root) == logged  # idempotent: nothing logged twice
    assert len(client.search_runs([client.get_experiment_by_name("clfbench").experiment_id])) == 3
