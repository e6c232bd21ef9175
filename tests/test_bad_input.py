"""Bad input is refused before any work: one line naming the file, row or field, exit code 2.

tests/bad_input/ holds one file per case (grids and CSV files; data/ holds the good files the
grids point at). Each goes through `clfbench.cli.main` as a user would run it; EXPECTED says
what its one-line error must contain, and must list every file of the corpus.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from cli_helpers import refused

from clfbench.cli import main
from clfbench.data.files import MAX_CLASSES, check_class_count, frame_to_labeled, read_table
from clfbench.data.splits import resolve_splits
from clfbench.data.texts import LabeledTexts
from clfbench.errors import ClfbenchError
from clfbench.methods.base import make_method
from clfbench.run.config import RunSpec
from clfbench.run.runner import run_grid

CORPUS = Path(__file__).parent / "bad_input"
GOOD = CORPUS / "data"

#: corpus file -> a regex its one-line error must match (the file's name is checked as well).
EXPECTED = {
    "max_train_zero.yaml": r"max_train=0 \(expected a value >= 2\)",
    "max_train_one.yaml": r"max_train=1 \(expected a value >= 2\)",
    "max_train_lots.yaml": r"max_train='lots' \(expected an integer\)",
    "max_eval_zero_in_task.yaml": r"task reviews: max_eval=0 \(expected a value >= 1\)",
    "seed_negative.yaml": r"seeds=-1 \(expected a value >= 0\)",
    "seed_too_big.yaml": r"seeds=4294967296 \(expected a value <= 4294967295\)",
    "threads_negative.yaml": r"threads=-1 \(expected a value >= 1\)",
    "latency_examples_zero.yaml": r"latency_examples=0 \(expected a value >= 1\)",
    "save_model_string.yaml": r"save_model='yes' \(expected true or false\)",
    "label_col_empty.yaml": r"label_col='' \(expected a non-empty string\)",
    "params_list.yaml": r"method tfidf-lr: 'params' must be a mapping",
    "class_weight_bogus.yaml": r"method tfidf-lr: parameter class_weight='bogus' \(expected 'balanced'\)",
    "ngram_max_zero.yaml": r"method tfidf-lr: parameter ngram_max=0 \(expected a value >= 1\)",
    "epochs_negative.yaml": r"method encoder-ft: parameter epochs=-1 \(expected a value >= 1\)",
    "batch_size_zero.yaml": r"method encoder-ft: parameter batch_size=0 \(expected a value >= 1\)",
    "unique_labels.csv": r"column 'label': 20 distinct labels in 20 rows .*--label-col",
    "true_and_one.csv": r"labels '1' and 'true' would be two classes",
    "case_variants.csv": r"labels 'Pos' and 'pos' would be two classes",
    "duplicate_header.csv": r"line 1: column 'text' appears twice in the header",
    "out_number.yaml": r"out=5 \(expected a folder path\)",
    "fraction_label.csv": r"row 8: label '0\.5' in column 'label' is a fraction among the integer classes 0, 1",
}


def test_every_corpus_file_has_an_expectation():
    corpus = sorted(p.name for p in CORPUS.iterdir() if p.is_file())
    assert corpus == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_bad_file_is_refused_in_one_line(name, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CLFBENCH_ISOLATE", "0")  # a run that wrongly starts stays in-process
    path = CORPUS / name
    if path.suffix == ".yaml":
        argv = ["run", str(path)]
    else:
        argv = ["run", "--train", str(path), "--method", "tfidf-lr"]
    line = refused(argv, tmp_path / "runs", capsys)
    assert str(path) in line
    assert re.search(EXPECTED[name], line), line


@pytest.mark.parametrize("flags, expected", [
    (["--max-train", "0"], "--max-train=0 (expected a value >= 2)"),
    (["--max-train", "-5"], "--max-train=-5 (expected a value >= 2)"),
    (["--max-train", "1"], "--max-train=1 (expected a value >= 2)"),
    (["--max-eval", "0"], "--max-eval=0 (expected a value >= 1)"),
    (["--seed", "-1"], "--seed=-1 (expected a value >= 0)"),
    (["--seed", "4294967296"], "--seed=4294967296 (expected a value <= 4294967295)"),
    (["--data-seed", "-3"], "--data-seed=-3 (expected a value >= 0)"),
    (["--threads", "-1"], "--threads=-1 (expected a value >= 1)"),
    (["--latency-examples", "0"], "--latency-examples=0 (expected a value >= 1)"),
    (["--param", "class_weight=bogus"], "parameter class_weight='bogus' (expected 'balanced')"),
    (["--param", "ngram_max=0"], "parameter ngram_max=0 (expected a value >= 1)"),
    (["--param", "min_df=two"], "parameter min_df='two' (expected an integer)"),
    (["--param", "C=-1"], "C must be a positive number, got -1"),
])
def test_each_bad_flag_is_refused_in_one_line(flags, expected, tmp_path, capsys):
    argv = ["run", "--train", str(GOOD / "train.csv"), "--test", str(GOOD / "test.csv"),
            "--method", "tfidf-lr", *flags]
    assert expected in refused(argv, tmp_path / "runs", capsys)


def test_bad_flags_are_refused_with_a_grid_too(tmp_path, capsys):
    grid = tmp_path / "grid.yaml"
    shutil.copytree(GOOD, tmp_path / "data")
    grid.write_text((CORPUS / "max_train_zero.yaml").read_text().replace("max_train: 0", ""))
    line = refused(["run", str(grid), "--max-eval", "0"], tmp_path / "runs", capsys)
    assert "--max-eval=0 (expected a value >= 1)" in line


def test_negative_epochs_are_refused_before_training(tmp_path, capsys):
    """encoder-ft --epochs -1 used to write a result from an untrained head."""
    argv = ["run", "--train", str(GOOD / "train.csv"), "--method", "encoder-ft", "--epochs", "-1"]
    assert "parameter epochs=-1 (expected a value >= 1)" in refused(argv, tmp_path / "runs", capsys)


def test_specs_built_in_python_are_checked_before_the_first_run(tmp_path):
    good = RunSpec(method="tfidf-lr", train_file=str(GOOD / "train.csv"), latency_examples=2)
    bad = replace(good, seed=2**32)
    with pytest.raises(ClfbenchError, match=r"^run data / tfidf-lr: seed=4294967296 "
                                            r"\(expected a value <= 4294967295\)$"):
        run_grid([good, bad], tmp_path / "runs", quiet=True, isolate=False)
    assert not (tmp_path / "runs").exists()


def test_method_parameters_are_checked_by_type_and_range_in_python_too():
    with pytest.raises(ClfbenchError, match=r"parameter max_features=0 \(expected a value >= 1\)"):
        make_method("tfidf-lr", max_features=0)
    with pytest.raises(ClfbenchError, match=r"parameter epochs=True \(expected an integer\)"):
        make_method("encoder-ft", epochs=True)
    with pytest.raises(ClfbenchError, match=r"parameter warmup_ratio=1.5 \(expected a value <= 1\)"):
        make_method("encoder-ft", warmup_ratio=1.5)
    # Valid values pass unchanged, whichever member of the hint they match.
    m = make_method("encoder-ft", eval_batch_size="auto", lr_grid=[1e-5, 3e-5], epochs=1)
    assert m.eval_batch_size == "auto" and m.lr_grid == [1e-5, 3e-5]
    assert make_method("tfidf-lr", c_grid=0.5).c_grid == (0.5,)  # a bare number: one-value grid


def test_onnx_backend_without_onnxruntime_is_refused_when_built(monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(ClfbenchError, match=r"backend 'onnx' needs onnxruntime, not installed: "
                                            r'pip install "clfbench\[onnx\]"'):
        make_method("encoder-ft", backend="onnx")
    argv = ["run", "--train", str(GOOD / "train.csv"), "--method", "encoder-ft", "--backend", "onnx"]
    assert "needs onnxruntime" in refused(argv, tmp_path / "runs", capsys)


def test_a_split_that_comes_out_empty_is_named_before_any_method_runs():
    """Every class a singleton: no test example can be held out (scikit-learn failed on it)."""
    data = LabeledTexts([f"text {i}" for i in range(6)], labels=np.arange(6),
                        label_names=[f"c{i}" for i in range(6)])
    with pytest.raises(ClfbenchError, match=r"^mine.csv: the test split is empty: 6 training "
                                            r"examples in 6 classes"):
        resolve_splits({"train": data}, 99, source="mine.csv")


def test_more_classes_than_memory_allows_is_refused_up_front():
    """50,000 distinct labels tried to allocate 37 GiB; the limit is checked on the file."""
    k = MAX_CLASSES + 1
    data = LabeledTexts(["t"] * 2 * k, labels=np.repeat(np.arange(k), 2),
                        label_names=[str(i) for i in range(k)])
    with pytest.raises(ClfbenchError, match=r"train.csv: column 'y': 10,001 distinct labels in "
                                            r"20,002 rows \(at most 10,000"):
        check_class_count(data, "train.csv", "y")


def test_a_label_spelled_like_a_missing_value_is_a_class_with_a_warning(tmp_path, capsys):
    path = tmp_path / "train.csv"
    path.write_text("text,label\na,pos\nb,NaN\nc,pos\nd,NaN\n")
    data = frame_to_labeled(read_table(path), str(path), "text", "label")
    assert data.label_names == ["NaN", "pos"]
    err = capsys.readouterr().err
    assert f"warning: {path}: row 2: label 'NaN' in column 'label' is a class of its own (2 rows)" in err


def test_user_strings_are_printed_and_drawn_literally(tmp_path, capsys, monkeypatch):
    """A name with rich markup, labels with mathtext `$`, a `|` in markdown: all as written."""
    pytest.importorskip("matplotlib")
    monkeypatch.setenv("CLFBENCH_ISOLATE", "0")
    rows = ["text,label"] + [f"cheap offer {i},fee $^$" for i in range(8)] + \
        [f"free offer {i},no fee $\\nope$" for i in range(8)]
    (tmp_path / "train.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "runs"
    name = "[/]x|y"
    assert main(["run", "--train", str(tmp_path / "train.csv"), "--method", "tfidf-lr",
                 "--name", name, "--latency-examples", "2", "--out", str(out)]) == 0
    assert f"{name} / tfidf-lr" in capsys.readouterr().err
    assert main(["results", str(out)]) == 0
    assert name in capsys.readouterr().out
    assert main(["results", str(out), "--format", "markdown"]) == 0
    assert "| [/]x\\|y |" in capsys.readouterr().out
    assert main(["report", str(out), "--bootstrap", "50"]) == 0
    assert len(list((out / "report" / "plots").glob("*.png"))) >= 2


def test_max_train_below_two_per_class_is_refused_once_the_classes_are_known(tmp_path, capsys):
    """--max-train 100 on 77 classes (1.3 per class) used to run; 154 is the fewest allowed."""
    import csv

    train = tmp_path / "intents.csv"
    with open(train, "w", newline="") as f:
        rows = [(f"question {i} about topic {c} word{c}x{i}", f"intent_{c}") for c in range(77) for i in range(6)]
        csv.writer(f).writerows([("text", "label"), *rows])
    line = refused(["run", "--train", str(train), "--method", "tfidf-lr", "--max-train", "100"],
                   tmp_path / "runs", capsys)
    assert line == (f"clfbench: error: {train}: --max-train 100 (max_train) is fewer than two training "
                    "examples per class: the training split has 77 classes, so use at least 154")
    grid = tmp_path / "grid.yaml"
    grid.write_text(f"tasks: [{{name: intents, train_file: {train}}}]\nmethods: [tfidf-lr]\nmax_train: 153\n")
    assert "--max-train 153 (max_train)" in refused(["run", str(grid)], tmp_path / "runs", capsys)
    assert main(["run", "--train", str(train), "--method", "tfidf-lr", "--max-train", "154",
                 "--latency-examples", "2", "--out", str(tmp_path / "runs"), "-q"]) == 0


_BAD_FILES = {
    "template_missing": ("template", None, "prompt template file not found"),
    "template_yaml": ("template", "user: [unclosed\n", r"line \d+: invalid YAML"),
    "template_key": ("template", "instructions: typo\n", r"unknown template key\(s\) instructions"),
    "template_jinja": ("template", "user: '{{ oops'\n", "template key 'user'"),
    "descriptions_missing": ("label_descriptions", None, "label descriptions file not found"),
    "descriptions_list": ("label_descriptions", "- a\n- b\n", "label descriptions must be a mapping"),
    "prices_missing": ("prices", None, "price file not found"),
    "prices_negative": ("prices", "models:\n  m: {input: -1, output: 2}\n", r"models\.m\.input"),
}


@pytest.mark.parametrize("case", sorted(_BAD_FILES))
def test_files_a_parameter_names_are_read_before_the_first_run_of_a_grid(case, tmp_path, capsys,
                                                                         monkeypatch):
    """A bad template, descriptions or price file of the grid's last run used to be read in
    that run: the tfidf-lr run before it was computed and saved, and the error came late."""
    monkeypatch.setenv("CLFBENCH_ISOLATE", "0")
    param, text, expected = _BAD_FILES[case]
    path = tmp_path / f"{param}.yaml"
    if text is not None:
        path.write_text(text)
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        f"tasks: [{{name: reviews, train_file: {GOOD / 'train.csv'}, test_file: {GOOD / 'test.csv'}}}]\n"
        "latency_examples: 2\n"
        "methods:\n  - tfidf-lr\n"
        "  - {name: llm-api, model: m, params: {base_url: 'http://127.0.0.1:9/v1', "
        f"{param}: '{path}'}}}}\n"
    )
    line = refused(["run", str(grid)], tmp_path / "runs", capsys)
    assert str(path) in line and re.search(expected, line), line


def test_a_distill_teachers_price_file_is_read_before_any_work(tmp_path, capsys):
    from clfbench.run.prepare import preflight

    spec = RunSpec(method="distill", train_file=str(GOOD / "train.csv"),
                   params={"teacher": {"method": "llm-api", "model": "m",
                                       "base_url": "http://127.0.0.1:9/v1",
                                       "prices": str(tmp_path / "nope.yaml")}})
    with pytest.raises(ClfbenchError, match=r"nope\.yaml: price file not found"):
        preflight(spec)


def test_html_in_names_is_escaped_in_markdown_tables(tmp_path, capsys, monkeypatch):
    """A task name with raw HTML went into `results --format markdown` and the report's
    Markdown tables as markup (a script tag, an image) instead of as text."""
    monkeypatch.setenv("CLFBENCH_ISOLATE", "0")
    shutil.copy(GOOD / "train.csv", tmp_path / "train.csv")
    out, name = tmp_path / "runs", "<img src=x onerror=alert(1)> & <b>co</b>"
    assert main(["run", "--train", str(tmp_path / "train.csv"), "--method", "tfidf-lr",
                 "--name", name, "--latency-examples", "2", "--out", str(out), "-q"]) == 0
    capsys.readouterr()
    assert main(["results", str(out), "--format", "markdown"]) == 0
    table = capsys.readouterr().out
    escaped = "&lt;img src=x onerror=alert(1)> & &lt;b>co&lt;/b>"
    assert f"| {escaped} |" in table and "<img" not in table and "<b>" not in table
    assert main(["report", str(out), "--bootstrap", "50"]) == 0
    performance = (out / "report" / "performance_table.md").read_text()
    assert escaped in performance, performance
    for md in (out / "report").glob("*.md"):
        assert "<img" not in md.read_text() and "<b>" not in md.read_text(), md


def test_fractional_labels_that_are_all_fractions_are_classes_with_a_warning(capsys):
    """Scores such as 0.5 and 1.5 as labels were silently classes; now a warning says so."""
    df = pd.DataFrame({"text": [f"t{i}" for i in range(6)], "label": [0.5, 1.5, 2.5, 0.5, 1.5, 2.5]})
    data = frame_to_labeled(df, "scores.jsonl", "text", "label")
    assert data.label_names == ["0.5", "1.5", "2.5"]
    err = capsys.readouterr().err
    assert "scores.jsonl: row 1: label '0.5' in column 'label' is a fractional number" in err, err


def test_a_ten_row_file_warns_that_its_validation_split_is_one_example(tmp_path, capsys, monkeypatch):
    """A 10-row file left a one-example validation split (epoch selection, tuning and the
    degenerate check on one example) without a word."""
    monkeypatch.setenv("CLFBENCH_ISOLATE", "0")
    train = tmp_path / "ten.csv"
    train.write_text("text,label\n" + "".join(
        f"{'good great' if i % 2 else 'bad awful'} film {i},{'pos' if i % 2 else 'neg'}\n" for i in range(10)))
    out = tmp_path / "runs"
    assert main(["run", "--train", str(train), "--method", "tfidf-lr", "--latency-examples", "2",
                 "--out", str(out), "-q"]) == 0
    err = capsys.readouterr().err
    assert (f"clfbench: warning: {train}: the validation split has only 1 example(s) "
            "(carved: 10% of train, stratified): too few") in err, err
    [metrics] = [json.loads(p.read_text()) for p in out.glob("*/metrics.json")]
    assert metrics["splits"]["sizes"]["validation"] == 1 and metrics["splits"]["warnings"]
    # a complete folder: nothing to run, nothing to warn about
    assert main(["run", "--train", str(train), "--method", "tfidf-lr", "--latency-examples", "2",
                 "--out", str(out), "-q"]) == 0
    assert "validation split" not in capsys.readouterr().err


def test_a_distill_pool_file_is_read_before_the_first_run_of_a_grid(tmp_path, capsys, monkeypatch):
    """The pool file was read in distill's fit: the grid's earlier runs were computed first."""
    monkeypatch.setenv("CLFBENCH_ISOLATE", "0")
    pool = tmp_path / "pool.csv"
    pool.write_text("review\nfine text\n")  # no `text` column
    grid = tmp_path / "grid.yaml"
    grid.write_text(
        f"tasks: [{{name: reviews, train_file: {GOOD / 'train.csv'}, test_file: {GOOD / 'test.csv'}}}]\n"
        "latency_examples: 2\n"
        "methods:\n  - tfidf-lr\n"
        "  - {name: distill, params: {teacher: {method: llm-api, model: m, "
        f"base_url: 'http://127.0.0.1:9/v1'}}, pool: '{pool}'}}}}\n"
    )
    line = refused(["run", str(grid)], tmp_path / "runs", capsys)
    assert f"{pool}: no text column 'text'" in line, line
