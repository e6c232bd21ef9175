"""`clfbench export`: a self-contained folder whose reload predicts what the run predicted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from clfbench.errors import ClfbenchError
from clfbench.serving.export import export_run, load_export


def reference(run: Path) -> tuple[list[str], list[str], np.ndarray | None, list[str], list[str] | None]:
    """Texts, predicted labels and probabilities of the run's predictions.jsonl, its labels and
    the second texts of pairs (None for single texts)."""
    rows = [json.loads(x) for x in (run / "predictions.jsonl").read_text().splitlines()]
    labels = json.loads((run / "model" / "method.json").read_text())["labels"]
    proba = (np.array([[r["probabilities"][n] for n in labels] for r in rows])
             if "probabilities" in rows[0] else None)
    pairs = [r["text_pair"] for r in rows] if "text_pair" in rows[0] else None
    return [r["text"] for r in rows], [r["pred"] for r in rows], proba, labels, pairs


def assert_same_predictions(run: Path, export: Path, atol: float) -> None:
    texts, preds, proba, labels, pairs = reference(run)
    model = load_export(export)
    assert model.labels == labels
    got, got_proba = model.classify(texts, pairs)
    assert [labels[i] for i in got] == preds
    if proba is not None:
        np.testing.assert_allclose(got_proba, proba, atol=atol)


CASES = [  # method, tiny architecture, method params, export format, probability tolerance
    ("tfidf-lr", None, {"C": 1.0}, None, 1e-6),
    ("embed-probe", "bert", {"C": 1.0}, "onnx", 1e-4),
    ("encoder-ft", "bert", {"tune": "off", "epochs": 1}, "onnx", 1e-4),
    ("encoder-ft", "bert", {"tune": "off", "epochs": 1}, "torch", 1e-6),
    ("decoder-head", "qwen2", {"tune": "off", "epochs": 1}, "torch", 1e-6),
    ("llm-prompt", "qwen2", {}, None, 1e-6),
    ("llm-sft", "qwen2", {"tune": "off", "epochs": 1, "max_length": 128}, None, 1e-6),
]


@pytest.mark.parametrize("method, arch, params, fmt, atol", CASES,
                         ids=[f"{c[0]}-{c[3] or 'default'}" for c in CASES])
def test_reloaded_export_predicts_what_the_run_predicted(make_run, tmp_path, method, arch, params, fmt, atol):
    run = make_run(method, arch, **params)
    out = export_run(run, tmp_path / "export", fmt)
    meta = json.loads((out / "export.json").read_text())
    assert meta["method"] == method and meta["run_id"] == run.name
    assert_same_predictions(run, out, atol)


@pytest.mark.parametrize("method, arch, fmt", [("encoder-ft", "bert", "onnx"), ("decoder-head", "qwen2", "torch"),
                                               ("tfidf-lr", None, None)])
def test_text_pairs_are_prepared_as_the_method_did(make_run, tmp_path, method, arch, fmt):
    params = {"C": 1.0} if method == "tfidf-lr" else {"tune": "off", "epochs": 1}
    run = make_run(method, arch, pairs=True, **params)
    assert_same_predictions(run, export_run(run, tmp_path / "export", fmt), 1e-4)


def test_int8_export_rechecks_near_ties_in_fp32_and_keeps_the_runs_labels(make_run, tmp_path):
    run = make_run("encoder-ft", "bert", tune="off", epochs=1)
    out = export_run(run, tmp_path / "int8", "onnx-int8")
    onnx = json.loads((out / "export.json").read_text())["onnx"]
    assert onnx["file"] == "model.int8.onnx" and (out / "onnx" / onnx["recheck_file"]).is_file()
    assert onnx["recheck_margin"] is not None and onnx["agreement_with_fp32"] >= 0.998
    texts, preds, _, labels, _ = reference(run)
    got, _ = load_export(out).classify(texts)
    assert [labels[i] for i in got] == preds  # calibrated on these texts: every flip re-checked
    off = load_export(export_run(run, tmp_path / "int8-off", "onnx-int8", recheck=None))
    assert off.recheck is None


def test_model_card_has_provenance_intervals_cost_and_config(make_run, tmp_path):
    run = make_run("tfidf-lr", C=1.0)
    out = export_run(run, tmp_path / "export")
    card = json.loads((out / "model_card.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    acc = card["metrics"]["accuracy"]
    assert acc["value"] == pytest.approx(metrics["accuracy"]) and acc["ci95"][0] <= acc["value"] <= acc["ci95"][1]
    assert acc["ci95"][1] - acc["ci95"][0] > 0
    assert card["data"]["splits"]["sizes"]["test"] == card["data"]["n_test"] == 40
    assert card["measured"]["latency_ms_p50"] == metrics["latency_ms_p50"]
    assert card["measured"]["peak_memory_mb"] == metrics["peak_memory_mb"]
    assert card["config"]["spec"]["method"] == "tfidf-lr" and card["clfbench_version"]
    md = (out / "MODEL_CARD.md").read_text()
    assert run.name in md and "95% CI" in md and "accuracy" in md


@pytest.mark.parametrize("kind", ["tfidf", "onnx"])
def test_loading_an_export_needs_no_training_code(make_run, tmp_path, kind):
    run = make_run("tfidf-lr", C=1.0) if kind == "tfidf" else make_run("encoder-ft", "bert", tune="off", epochs=1)
    out = export_run(run, tmp_path / "export")
    code = ("import sys; from clfbench.serving.export import load_export; "
            f"m = load_export({str(out)!r}); print(m.labels[m.classify(['where is my parcel'])[0][0]]); "
            "print(sorted(k for k in sys.modules if k.startswith(('clfbench.methods', 'clfbench.run.evaluate', 'clfbench.run.runner', 'peft', 'optuna'))))")
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines[0] in json.loads((out / "export.json").read_text())["labels"]
    assert lines[1] == "[]"


def test_export_refuses_what_it_cannot_do(make_run, tmp_path):
    run = make_run("tfidf-lr", C=1.0)
    with pytest.raises(ClfbenchError, match="exports as sklearn, not 'onnx'"):
        export_run(run, tmp_path / "a", "onnx")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(ClfbenchError, match="not an empty folder"):
        export_run(run, tmp_path / "full")
    with pytest.raises(ClfbenchError, match="no saved model"):
        export_run(tmp_path, tmp_path / "b")
    with pytest.raises(ClfbenchError, match="not an export"):
        load_export(tmp_path)


def test_cli_export_with_format_and_recheck_off(make_run, tmp_path, capsys):
    from clfbench.cli import main

    run = make_run("encoder-ft", "bert", tune="off", epochs=1)
    out = tmp_path / "cli"
    assert main(["export", str(run), "--out", str(out), "--format", "onnx-int8", "--recheck", "off"]) == 0
    assert "MODEL_CARD.md" in capsys.readouterr().out
    onnx = json.loads((out / "export.json").read_text())["onnx"]
    assert onnx["file"] == "model.int8.onnx" and onnx["recheck_margin"] is None
    assert main(["export", str(run), "--out", str(out)]) == 2  # not empty: a one-line error


def test_cli_serves_a_run_folder_by_exporting_it_on_the_fly(make_run, monkeypatch):
    from fastapi.testclient import TestClient

    from clfbench.cli import main
    from clfbench.serving import app as serving_app

    run = make_run("tfidf-lr", C=1.0)
    seen = {}

    def fake_serve(app, host, port):  # what uvicorn would serve, exercised in-process
        with TestClient(app) as client:
            seen["card"] = client.get("/v1/model").json()
            seen["results"] = client.post("/v1/classify", json={"text": "where is my parcel"}).json()["results"]
        seen["where"] = (host, port)

    monkeypatch.setattr(serving_app, "serve", fake_serve)  # (a real server would never return)
    assert main(["serve", str(run), "--port", "8123"]) == 0
    assert seen["card"]["export"]["run_id"] == run.name and seen["where"] == ("127.0.0.1", 8123)
    assert seen["results"][0]["label"] in seen["card"]["labels"]


def test_an_export_with_a_crafted_pickle_is_refused_and_runs_nothing(make_run, tmp_path, monkeypatch):
    """Issue 23.3: a tfidf-lr export holds pipeline.skops (no pickle); a pipeline.joblib put in
    its place is not unpickled (what `serve` loads) unless CLFBENCH_TRUST_PICKLES=1."""
    import pickle
    import shutil

    out = export_run(make_run("tfidf-lr", C=1.0), tmp_path / "export")
    assert (out / "pipeline.skops").is_file() and not list(out.glob("*.joblib"))
    crafted = tmp_path / "crafted"
    shutil.copytree(out, crafted)
    (crafted / "pipeline.skops").unlink()
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (crafted / "pipeline.joblib").write_bytes(pickle.dumps(Evil()))
    monkeypatch.delenv("CLFBENCH_TRUST_PICKLES", raising=False)
    with pytest.raises(ClfbenchError, match="a pickle, which runs any code"):
        load_export(crafted)
    assert not marker.exists()

@pytest.mark.parametrize("damage, expected", [
    ("truncated", r"predictions\.jsonl: line \d+: not valid JSON"),
    ("no_gold", r"predictions\.jsonl: line 2: field 'gold' missing"),
    ("unknown_gold", r"predictions\.jsonl: row 1: gold label 'nope' is not one of the saved model's labels"),
    ("not_utf8", r"predictions\.jsonl: line 1: not valid UTF-8|predictions\.jsonl: not valid UTF-8"),
])
def test_export_of_a_damaged_predictions_file_is_one_line_and_writes_nothing(
        make_run, tmp_path, capsys, damage, expected):
    """A truncated predictions.jsonl used to end `export` in a JSONDecodeError traceback."""
    import re
    import shutil

    from clfbench.cli import main

    run = Path(shutil.copytree(make_run("tfidf-lr", C=1.0), tmp_path / "run"))
    path = run / "predictions.jsonl"
    data = path.read_bytes()
    lines = data.decode().splitlines(keepends=True)
    if damage == "truncated":
        data = data[: len(data) - len(lines[-1]) // 2 - 1]
    elif damage == "no_gold":
        row = json.loads(lines[1])
        del row["gold"]
        data = "".join([lines[0], json.dumps(row) + "\n", *lines[2:]]).encode()
    elif damage == "unknown_gold":
        data = "".join([json.dumps({**json.loads(lines[0]), "gold": "nope"}) + "\n", *lines[1:]]).encode()
    else:
        data = b"\xff\xfe" + data
    path.write_bytes(data)
    out = tmp_path / "export"
    assert main(["export", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"clfbench: error: {path}") and re.search(expected, err[0]), err
    assert not out.exists()
