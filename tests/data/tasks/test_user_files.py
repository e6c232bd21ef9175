"""A user's own files: every format and label kind, and every bad input, via library and CLI."""

import json

import pandas as pd
import pytest

from clfbench.cli import main
from clfbench.data.tasks.loading import load_user_files
from clfbench.errors import ClfbenchError


def table(n=40, labels=("spam", "ham"), pairs=False, prefix="msg"):
    rows = {"text": [f"{prefix} {i} {labels[i % len(labels)]} words" for i in range(n)],
            "label": [labels[i % len(labels)] for i in range(n)]}
    if pairs:
        rows["context"] = [f"context {i}" for i in range(n)]
    return pd.DataFrame(rows)


def save(df, path):
    ext = path.suffix
    if ext == ".csv":
        df.to_csv(path, index=False)
    elif ext == ".tsv":
        df.to_csv(path, sep="\t", index=False)
    elif ext == ".jsonl":
        df.to_json(path, orient="records", lines=True)
    elif ext == ".json":
        df.to_json(path, orient="records")
    else:
        df.to_parquet(path)
    return path


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".jsonl", ".json", ".parquet"])
def test_each_format_with_string_labels(tmp_path, ext):
    train = save(table(60), tmp_path / f"train{ext}")
    test = save(table(20, prefix="t"), tmp_path / f"test{ext}")
    s = load_user_files(train, test=test, data_seed=1)
    assert s.label_names == ["ham", "spam"]
    assert len(s.test) == 20 and len(s.train) + len(s.validation) == 60
    assert s.test.ids[0] == f"test{ext}:1"
    assert "user files: train=" in s.notes["origin"]
    assert s.train.label_names[s.train.labels[0]] in s.train.texts[0]


def test_integer_labels_and_text_pairs(tmp_path):
    train = save(table(60, labels=(0, 1, 2), pairs=True), tmp_path / "train.parquet")
    val = save(table(15, labels=(2, 0, 1), pairs=True, prefix="v"), tmp_path / "val.jsonl")
    test = table(15, labels=("1", "2", "0"), pairs=True, prefix="t")  # strings this time
    test = save(test, tmp_path / "test.csv")
    s = load_user_files(train, val, test, pair_col="context", data_seed=1)
    assert s.label_names == ["0", "1", "2"]
    assert s.train.is_pair and s.test.pairs[0] == "context 0"
    assert [s.test.label_names[k] for k in s.test.labels[:3]] == ["1", "2", "0"]
    assert (len(s.train), len(s.validation), len(s.test)) == (60, 15, 15)


def test_only_a_train_file_is_carved_into_three(tmp_path):
    s = load_user_files(save(table(100), tmp_path / "all.csv"), data_seed=4)
    assert (len(s.train), len(s.validation), len(s.test)) == (63, 7, 30)
    assert s.notes["test_source"].startswith("carved")


def test_max_train_max_eval_on_user_files(tmp_path):
    train = save(table(200, labels=("a", "b", "c", "d")), tmp_path / "train.csv")
    s = load_user_files(train, data_seed=2, max_train=40, max_eval=20)
    assert (len(s.train), len(s.test)) == (40, 20)
    assert s.train.class_counts().tolist() == [10, 10, 10, 10]


def test_columns_can_be_renamed(tmp_path):
    df = table(30).rename(columns={"text": "body", "label": "category"})
    s = load_user_files(save(df, tmp_path / "t.csv"), text_col="body", label_col="category")
    assert len(s.train) + len(s.validation) + len(s.test) == 30


# ---- bad inputs: one ClfbenchError line naming the file and row/line/column ------------------


def bad_case(tmp_path, case):
    """Write the files for one bad-input case; return (train, test, expected message parts)."""
    good = save(table(30), tmp_path / "train.csv")
    if case == "missing file":
        return tmp_path / "nope.csv", None, ["nope.csv", "file not found"]
    if case == "empty file":
        (tmp_path / "empty.csv").write_text("")
        return tmp_path / "empty.csv", None, ["empty.csv", "file is empty"]
    if case == "header only":
        (tmp_path / "head.csv").write_text("text,label\n")
        return tmp_path / "head.csv", None, ["head.csv", "has a header (text, label) but no data rows"]
    if case == "missing column":
        save(table(30).rename(columns={"text": "sentence"}), tmp_path / "cols.csv")
        return tmp_path / "cols.csv", None, ["cols.csv", "no text column 'text'", "columns: sentence, label"]
    if case == "unknown test label":
        df = table(10, prefix="t")
        df.loc[3, "label"] = "eggs"
        return good, save(df, tmp_path / "test.csv"), ["test.csv: row 4", "'eggs'", f"labels in {good}"]
    if case == "single class":
        return save(table(30, labels=("spam",)), tmp_path / "one.csv"), None, ["one.csv", "only one class ('spam')"]
    if case == "empty text":
        df = table(30)
        df.loc[6, "text"] = "   "
        return save(df, tmp_path / "blank.csv"), None, ["blank.csv: row 7", "empty text in column 'text'"]
    if case == "missing label":
        df = table(30)
        df.loc[2, "label"] = ""
        return save(df, tmp_path / "nolabel.csv"), None, ["nolabel.csv: row 3", "missing label"]
    if case == "undecodable bytes":
        p = tmp_path / "latin.csv"
        p.write_bytes(b"text,label\nfine,spam\nalso fine,ham\nna\xefve,spam\n")
        return p, None, ["latin.csv: line 4", "not valid UTF-8"]
    if case == "folder":
        (tmp_path / "data.csv").mkdir()
        return tmp_path / "data.csv", None, ["data.csv", "is a folder, expected a file"]
    if case == "bad jsonl line":
        p = tmp_path / "t.jsonl"
        p.write_text(json.dumps({"text": "a", "label": "x"}) + "\n{oops\n")
        return p, None, ["t.jsonl: line 2", "not valid JSON"]
    raise AssertionError(case)


CASES = ["missing file", "empty file", "header only", "missing column", "unknown test label",
         "single class", "empty text", "missing label", "undecodable bytes", "folder", "bad jsonl line"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_library(tmp_path, case):
    train, test, parts = bad_case(tmp_path, case)
    with pytest.raises(ClfbenchError) as e:
        load_user_files(train, test=test)
    message = str(e.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


@pytest.mark.parametrize("case", CASES)
def test_bad_input_cli(tmp_path, capsys, case):
    train, test, parts = bad_case(tmp_path, case)
    out = tmp_path / "runs"
    argv = ["run", "--train", str(train), "--method", "tfidf-lr", "--out", str(out), "-q"]
    if test is not None:
        argv += ["--test", str(test)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("clfbench: error: ")
    for part in parts:
        assert part in err[0], (part, err[0])
    assert not out.exists()  # nothing written


def test_train_is_required():
    with pytest.raises(ClfbenchError, match="--train FILE is required"):
        load_user_files(None)
