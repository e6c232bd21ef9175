"""clfbench.data.files: reading tables and turning them into labeled texts, with one-line errors."""

import numpy as np
import pandas as pd
import pytest

from clfbench.data.files import frame_to_labeled, infer_label_names, read_table
from clfbench.errors import ClfbenchError


def write(path, text: str | bytes):
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_reads_every_format_the_same(tmp_path):
    rows = [{"text": "good, \"quoted\" film", "label": "pos"}, {"text": "bad", "label": "neg"}]
    df = pd.DataFrame(rows)
    df.to_csv(tmp_path / "a.csv", index=False)
    df.to_csv(tmp_path / "a.tsv", sep="\t", index=False)
    df.to_json(tmp_path / "a.jsonl", orient="records", lines=True)
    df.to_json(tmp_path / "a.json", orient="records")
    df.to_parquet(tmp_path / "a.parquet")
    for ext in ("csv", "tsv", "jsonl", "json", "parquet"):
        got = read_table(tmp_path / f"a.{ext}")
        assert got["text"].tolist() == df["text"].tolist(), ext
        assert got["label"].tolist() == ["pos", "neg"], ext


def test_csv_cells_stay_strings_and_bom_is_dropped(tmp_path):
    p = write(tmp_path / "a.csv", "\ufefftext,label\nNA,007\nnull,1\n")
    df = read_table(p)
    assert list(df.columns) == ["text", "label"]
    assert df["text"].tolist() == ["NA", "null"] and df["label"].tolist() == ["007", "1"]


def test_tsv_without_quoting_keeps_quote_characters(tmp_path):
    p = write(tmp_path / "a.tsv", 'sentence\tlabel\n" a quote starts here \t1\nplain\t0\n')
    df = read_table(p, quoting="none")
    assert df["sentence"].tolist() == ['" a quote starts here ', "plain"]


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("empty.csv", "", r"empty.csv: file is empty"),
        ("header.csv", "text,label\n", r"header.csv: has a header \(text, label\) but no data rows"),
        ("blank.csv", "\n\n", r"blank.csv: file has no data"),
        ("bad.jsonl", '{"text": "a"}\n\n{"text": \n', r"bad.jsonl: line 3: not valid JSON"),
        ("list.jsonl", '{"text": "a"}\n[1, 2]\n', r"list.jsonl: line 2: expected a JSON object"),
        ("bad.json", '[{"text": "a"},\n {"text": }]', r"bad.json: line 2: not valid JSON"),
        ("scalar.json", "3", r"scalar.json: expected a JSON array of objects"),
        ("ragged.csv", "text,label\na,b\nc,d,e\n", r"ragged.csv: cannot parse as csv: Expected 2 fields in line 3"),
        ("data.xlsx", "x", r"data.xlsx: unknown file type '.xlsx'"),
        ("bad.parquet", "not parquet", r"bad.parquet: cannot parse as parquet"),
    ],
)
def test_bad_files_give_one_line_naming_file_and_line(tmp_path, name, content, message):
    with pytest.raises(ClfbenchError, match=message) as e:
        read_table(write(tmp_path / name, content))
    assert "\n" not in str(e.value)


def test_undecodable_bytes_name_the_line(tmp_path):
    p = write(tmp_path / "latin1.csv", b"text,label\nfine,a\n" + "caf\xe9,b\n".encode("latin-1"))
    with pytest.raises(ClfbenchError, match=r"latin1.csv: line 3: not valid UTF-8 \(byte 0xe9 at column 4\)"):
        read_table(p)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ClfbenchError, match="nope.csv: file not found"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(ClfbenchError, match="is a folder, expected a file"):
        read_table(tmp_path)


def frame(**cols):
    return pd.DataFrame(cols)


def test_labels_by_name_index_or_map():
    names = ["negative", "positive"]
    by_name = frame_to_labeled(frame(t=["a", "b"], y=["positive", "negative"]), "f", "t", "y", label_names=names)
    by_index = frame_to_labeled(frame(t=["a", "b"], y=["1", "0"]), "f", "t", "y", label_names=names)
    by_map = frame_to_labeled(frame(t=["a", "b"], y=[4, 3]), "f", "t", "y", label_names=names,
                              label_map={4: "positive", 3: "negative"})
    for d in (by_name, by_index, by_map):
        assert d.labels.tolist() == [1, 0] and d.label_names == names
    booleans = frame_to_labeled(frame(t=["a", "b"], y=[True, False]), "f", "t", "y", label_names=["false", "true"])
    assert booleans.labels.tolist() == [1, 0]


def test_user_labels_are_inferred_sorted_numerically():
    assert infer_label_names([10, 2, 2.0, "1"]) == ["1", "2", "10"]
    assert infer_label_names(["b", "a", "b"]) == ["a", "b"]
    d = frame_to_labeled(frame(t=["a", "b", "c"], y=[10, 2, 10]), "f", "t", "y")
    assert d.label_names == ["2", "10"] and d.labels.tolist() == [1, 0, 1]


def test_ids_are_prefixed_and_must_be_unique():
    d = frame_to_labeled(frame(t=["a", "b"], y=["x", "y"]), "f", "t", "y", id_prefix="train.csv:")
    assert d.ids == ["train.csv:1", "train.csv:2"]
    d = frame_to_labeled(frame(t=["a", "b"], y=["x", "y"], k=[7, 9]), "f", "t", "y", id_col="k", id_prefix="d:")
    assert d.ids == ["d:7", "d:9"]
    with pytest.raises(ClfbenchError, match=r"f: row 3: id 'd:7' in column 'k' repeats row 1"):
        frame_to_labeled(frame(t=["a", "b", "c"], y=["x"] * 3, k=[7, 8, 7]), "f", "t", "y", id_col="k", id_prefix="d:")


@pytest.mark.parametrize(
    "df,kwargs,message",
    [
        (frame(txt=["a"], y=["x"]), {}, r"src: no text column 'text' \(columns: txt, y\)"),
        (frame(text=["a"], y=["x"]), {"pair_col": "p"}, r"src: no text pair column 'p'"),
        (frame(text=["a"], lab=["x"]), {}, r"src: no label column 'y'"),
        (frame(text=["a", " "], y=["x", "y"]), {}, r"src: row 2: empty text in column 'text'"),
        (frame(text=["a", None], y=["x", "y"]), {}, r"src: row 2: empty text in column 'text'"),
        (frame(text=["a", "b"], p=["q", np.nan], y=["x", "y"]), {"pair_col": "p"}, r"src: row 2: empty text in column 'p'"),
        (frame(text=["a", "b"], y=["x", ""]), {}, r"src: row 2: missing label in column 'y'"),
        (frame(text=["a", "b"], y=["x", "z"]), {"label_names": ["x", "y"]}, r"src: row 2: label 'z' in column 'y' is not one of"),
        (frame(text=["a"], y=["x"]), {"label_names": ["x", "y"], "label_map": {"x": "nope"}}, r"src: label_map maps to 'nope'"),
    ],
)
def test_frame_errors_name_the_row_or_column(df, kwargs, message):
    with pytest.raises(ClfbenchError, match=message):
        frame_to_labeled(df, "src", "text", "y", **kwargs)


def test_unlabeled_frame_for_predict():
    d = frame_to_labeled(frame(text=["a", "b"]), "f", "text", None, label_names=["x", "y"])
    assert d.labels.tolist() == [-1, -1] and d.label_names == ["x", "y"]


def test_very_long_texts_are_kept_whole(tmp_path):
    long = "word " * 50_000
    pd.DataFrame({"text": [long, "short"], "label": ["a", "b"]}).to_csv(tmp_path / "long.csv", index=False)
    d = frame_to_labeled(read_table(tmp_path / "long.csv"), "long.csv", "text", "label")
    assert d.texts[0] == long
