"""The command line: happy paths through the real pipeline, and one-line errors with exit 2."""

import json
from importlib import resources

import pytest

from clfbench.cli import main

DEMO = resources.files("clfbench") / "demo_data"
OWN = ["--train", str(DEMO / "train.csv"), "--validation", str(DEMO / "validation.csv"),
       "--test", str(DEMO / "test.csv"), "--name", "tickets"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    assert main(["run", "--method", "tfidf-lr", *OWN, "--out", str(out), "--save-model",
                 "--latency-examples", "10", "-q"]) == 0
    return out


def test_run_writes_the_documented_files(run_dir):
    [folder] = [p for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    metrics = json.loads((folder / "metrics.json").read_text())
    for key in ("accuracy", "macro_f1", "mcc", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99",
                "throughput_sps", "peak_memory_mb", "train_seconds"):
        assert isinstance(metrics[key], float), key
    assert metrics["accuracy"] > 0.7
    assert metrics["backend"] == "native" and metrics["latency"]["latency_n"] == 10
    config = json.loads((folder / "config.json").read_text())
    assert config["spec"]["seed"] == 99 and config["env"]["packages"]["torch"]
    rows = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 163 and set(rows[0]) >= {"id", "text", "gold", "pred", "probabilities"}
    assert sum(rows[0]["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    acc = sum(r["gold"] == r["pred"] for r in rows) / len(rows)
    assert acc == pytest.approx(metrics["accuracy"])


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "markdown"])
def test_results_formats(run_dir, capsys, fmt):
    assert main(["results", str(run_dir), "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "tfidf-lr" in out and "tickets" in out
    if fmt == "json":
        assert json.loads(out)[0]["method"] == "tfidf-lr"


def test_predict_with_a_saved_model(run_dir, capsys, tmp_path):
    [folder] = [p for p in run_dir.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert main(["predict", "--run", str(folder), "--text", "I was charged twice for my order",
                 "--text", "the parcel never arrived, tracking is stuck"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in rows] == ["billing", "delivery"]
    f = tmp_path / "texts.txt"
    f.write_text("please delete my account\n\n")
    assert main(["predict", "--run", str(folder), "--file", str(f)]) == 0
    assert json.loads(capsys.readouterr().out)["label"] == "account"


def test_quiet_run_prints_nothing(tmp_path, capsys):
    assert main(["run", "--method", "tfidf-lr", *OWN, "--out", str(tmp_path), "--latency-examples", "5", "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


@pytest.mark.parametrize("args, message", [
    (["run", "--task", "nope", "--method", "tfidf-lr"], "unknown task 'nope'"),
    (["run", "--task", "sst2", "--method", "nope"], "unknown method 'nope'"),
    (["run", "--task", "sst2"], "give --method"),
    (["run", "--method", "tfidf-lr", *OWN, "--epochs", "2"], "unknown parameter(s) epochs"),
    (["results", "/nonexistent/runs"], "no clfbench results here"),
    (["predict", "--run", "/nonexistent/run", "--text", "x"], "no saved model"),
])
def test_errors_are_one_line_with_exit_2(tmp_path, capsys, args, message):
    assert main([*args, "--out", str(tmp_path / "out")] if args[0] == "run" else args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_bad_grid_yaml(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    grid.write_text("tasks: [sst2\nmethods: tfidf-lr\n")
    assert main(["run", str(grid), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "grid.yaml" in err and "invalid YAML" in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def own_grid(tmp_path, methods="[{name: tfidf-lr, params: {C: 2.0}}]", extra=""):
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"""
tasks: [{{name: tickets, train_file: {DEMO / 'train.csv'}, validation_file: {DEMO / 'validation.csv'},
          test_file: {DEMO / 'test.csv'}}}]
methods: {methods}
seeds: [1]
max_eval: 100
latency_examples: 2
{extra}""")
    return grid


def test_run_flags_override_a_grid_and_are_reported(tmp_path, capsys):
    """`run grid.yaml --max-eval 50 --seed 7 --param C=0.5` used to run with the grid's values."""
    out = tmp_path / "out"
    assert main(["run", str(own_grid(tmp_path)), "--max-eval", "50", "--seed", "7", "--param", "C=0.5",
                 "--out", str(out)]) == 0
    assert "overrides from the command line: max_eval=50, seed=7, params C=0.5\n" in capsys.readouterr().err
    [metrics] = [json.loads(p.read_text()) for p in out.glob("*/metrics.json")]
    [config] = [json.loads(p.read_text()) for p in out.glob("*/config.json")]
    assert config["spec"]["max_eval"] == 50 and config["spec"]["seed"] == 7
    assert config["spec"]["params"] == {"C": 0.5} and metrics["fit_info"]["C"] == 0.5
    assert metrics["n_examples"] == 50


@pytest.mark.parametrize("flags, message", [
    (["--param", "epochs=1"], "--param epochs: no method of the grid takes this parameter (methods: tfidf-lr)"),
    (["--shots", "3"], "--param shots: no method of the grid takes"),
    (["--task", "sst2", "--method", "tfidf-lr"], "--task, --method cannot be used with a grid file"),
    (["--train", "x.csv"], "--train cannot be used with a grid file"),
])
def test_grid_flags_that_cannot_apply_are_one_line_errors(tmp_path, capsys, flags, message):
    assert main(["run", str(own_grid(tmp_path)), *flags, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_grid_out_is_used_unless_out_is_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = own_grid(tmp_path, extra="out: from-grid")
    assert main(["run", str(grid), "-q"]) == 0
    assert (tmp_path / "from-grid" / "index.sqlite").is_file()
    assert not (tmp_path / "clfbench-runs").exists()
