"""Batch inference over big files: streamed in batches, bounded memory, the same predictions."""

import json
import random
import subprocess
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from ray_helpers import ray_cluster_fixture

from clfbench.cli import main
from clfbench.data.texts import Texts
from clfbench.errors import ClfbenchError
from clfbench.methods.base import Classifier
from clfbench.run.config import RunSpec
from clfbench.run.runner import run_grid
from clfbench.serving.batch_predict import LABELS_KEY, predict_file

DEMO = resources.files("clfbench") / "demo_data"
ray_cluster = ray_cluster_fixture()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A tfidf-lr run on the demo tickets, saved with its model."""
    spec = RunSpec(method="tfidf-lr", name="tickets", train_file=str(DEMO / "train.csv"),
                   validation_file=str(DEMO / "validation.csv"), test_file=str(DEMO / "test.csv"),
                   latency_examples=5, params={"C": 1.0}, save_model=True)
    return run_grid([spec], tmp_path_factory.mktemp("runs"), quiet=True, isolate=False)[0]


def make_texts(n: int, seed: int = 0) -> list[str]:
    """n short texts (12 words) from the demo tickets' vocabulary."""
    words = " ".join(pd.read_csv(DEMO / "train.csv")["text"]).split()
    rng = random.Random(seed)
    return [" ".join(rng.choices(words, k=12)) for _ in range(n)]


def write(path: Path, texts: list[str]) -> Path:
    """`texts` in the format of `path`'s suffix, with an extra id column."""
    frame = pd.DataFrame({"id": range(len(texts)), "text": texts})
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=5_000)
    elif path.suffix in (".csv", ".tsv"):
        frame.to_csv(path, sep="\t" if path.suffix == ".tsv" else ",", index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    else:
        path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".tsv", ".jsonl", ".txt"])
def test_streamed_predictions_equal_the_model_on_the_whole_file(run_dir, tmp_path, suffix):
    texts = make_texts(1000) + ["1234", "a, \"quoted\" text"]  # digits stay a text; CSV quoting
    src = write(tmp_path / f"in{suffix}", texts)
    stats = predict_file(run_dir, src, tmp_path / "pred.parquet", batch_size=128)
    assert stats["rows"] == len(texts) and stats["batches"] == 8 and stats["throughput_sps"] > 0
    out = pq.read_table(tmp_path / "pred.parquet")
    model = Classifier.load(run_dir / "model")
    pred, proba = model.classify(Texts(texts))
    assert out.column("row").to_pylist() == list(range(len(texts)))
    assert out.column("text").to_pylist() == texts
    assert out.column("label").to_pylist() == [model.labels[i] for i in pred]
    np.testing.assert_allclose(np.array(out.column("probabilities").to_pylist()), proba, atol=1e-6)
    np.testing.assert_allclose(out.column("score").to_numpy(), proba.max(1), atol=1e-6)
    assert json.loads(out.schema.metadata[LABELS_KEY]) == model.labels
    assert not (tmp_path / "pred.parquet.partial").exists()


def test_bad_input_is_one_clear_error_and_leaves_no_output(run_dir, tmp_path):
    src = write(tmp_path / "in.csv", ["fine text"] * 300 + [" "])
    with pytest.raises(ClfbenchError, match=r"row 301: empty text in column 'text'"):
        predict_file(run_dir, src, tmp_path / "pred.parquet", batch_size=100)
    assert list(tmp_path.glob("pred*")) == []
    with pytest.raises(ClfbenchError, match=r"no column 'body' \(columns: id, text\)"):
        predict_file(run_dir, src, tmp_path / "pred.parquet", text_col="body")
    with pytest.raises(ClfbenchError, match="no saved model"):
        predict_file(tmp_path, src, tmp_path / "pred.parquet")


def test_cli_predict_to_parquet_reports_throughput(run_dir, tmp_path, capsys):
    src = write(tmp_path / "in.jsonl", make_texts(500))
    assert main(["predict", "--run", str(run_dir), "--file", str(src), "--out",
                 str(tmp_path / "p.parquet"), "--batch-size", "100"]) == 0
    err = capsys.readouterr().err
    assert "500 texts predicted in" in err and "texts/s, batch 100, executor local" in err
    assert pq.read_table(tmp_path / "p.parquet").num_rows == 500
    assert main(["predict", "--run", str(run_dir), "--text", "hi", "--out", str(tmp_path / "q.parquet")]) == 2


# Peak RSS of a fresh process over a phase: the kernel's high-water mark (VmHWM), reset after
# warm-up (imports, model) via /proc/self/clear_refs, so no sampling thread and no guessing.
MEASURE = r"""
import gc, json, sys
from pathlib import Path
import psutil
from clfbench.serving.batch_predict import predict_file
run, big, small, out, mode = sys.argv[1:6]
predict_file(run, small, out)  # imports and a first model load, outside the measured phase
from clfbench.data.texts import Texts
from clfbench.data.files import read_table
from clfbench.methods.base import Classifier
gc.collect()
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
base = psutil.Process().memory_info().rss / 2**20
open("/proc/self/clear_refs", "w").write("5")
if mode == "stream":
    stats = predict_file(run, big, out, batch_size=1024)
else:  # the whole file at once, as `predict --file` without --out does
    stats = {"rows": len(Classifier.load(Path(run) / "model").classify(Texts(list(read_table(big)["text"])))[0])}
print(json.dumps({**stats, "growth_mb": hwm() - base}))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc (VmHWM reset)")
def test_200k_texts_stream_with_bounded_memory(run_dir, tmp_path):
    big = write(tmp_path / "big.parquet", make_texts(200_000))
    small = write(tmp_path / "small.parquet", make_texts(10))
    growth = {}
    for mode in ("stream", "whole"):
        proc = subprocess.run([sys.executable, "-c", MEASURE, str(run_dir), str(big), str(small),
                               str(tmp_path / f"{mode}.parquet"), mode],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        stats = json.loads(proc.stdout.strip().splitlines()[-1])
        assert stats["rows"] == 200_000
        growth[mode] = stats["growth_mb"]
        print(f"{mode}: peak RSS growth {stats['growth_mb']:.1f} MB "
              f"({stats.get('throughput_sps', 0):,.0f} texts/s)")
    assert pq.read_metadata(tmp_path / "stream.parquet").num_rows == 200_000
    # Measured: streamed ~33 MB, whole file ~150 MB (pyarrow 25, scikit-learn 1.9).
    assert growth["stream"] < 80 and growth["stream"] < growth["whole"] / 3, growth


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_ray_data_gives_the_same_predictions_in_the_same_order(ray_cluster, run_dir, tmp_path, suffix):
    texts = make_texts(3000, seed=1) + ["1234"]
    src = write(tmp_path / f"in{suffix}", texts)
    local = predict_file(run_dir, src, tmp_path / "local.parquet", batch_size=500)
    remote = predict_file(run_dir, src, tmp_path / "ray.parquet", batch_size=500, executor="ray")
    assert remote["rows"] == local["rows"] == len(texts) and remote["executor"] == "ray"
    a, b = pq.read_table(tmp_path / "local.parquet"), pq.read_table(tmp_path / "ray.parquet")
    for col in ("row", "text", "label"):
        assert a.column(col).to_pylist() == b.column(col).to_pylist()
    np.testing.assert_allclose(np.array(a.column("probabilities").to_pylist()),
                               np.array(b.column("probabilities").to_pylist()), atol=1e-6)
    assert ray_cluster.is_initialized()  # the caller's cluster is left running


def test_ray_data_empty_text_is_a_clear_error(ray_cluster, run_dir, tmp_path):
    src = write(tmp_path / "in.parquet", ["fine text"] * 10 + [""])
    with pytest.raises(ClfbenchError, match="empty text in column 'text'"):
        predict_file(run_dir, src, tmp_path / "p.parquet", executor="ray")
    assert not (tmp_path / "p.parquet").exists()


BAD_FILES = {  # name -> (bytes, what the one line must say); `run` refuses each the same way
    "empty.csv": (b"", "file is empty"),
    "garbage.csv": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), "not valid UTF-8"),
    "utf16.csv": ("text,label\nhello,a\n".encode("utf-16"), "not valid UTF-8"),
    "latin1.csv": ("text,label\ncafé crème,a\n".encode("latin-1"), r"line 2: not valid UTF-8"),
    "header_only.csv": (b"text,label\n", "but no data rows"),
    "unclosed_quote.csv": (b'text,label\nfine,a\n"never closed,b\nmore,a\n', "cannot parse as csv"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
@pytest.mark.parametrize("to_file", [True, False], ids=["out", "stdout"])
def test_predict_refuses_the_files_run_refuses_in_one_line(run_dir, tmp_path, capsys, name, to_file):
    """`predict --file F --out P` used to load the model and crash with a traceback (pandas'
    or the codec's) on these six files, which `run --train F` refuses in one line."""
    import re

    data, expected = BAD_FILES[name]
    src = tmp_path / name
    src.write_bytes(data)
    out = tmp_path / "pred.parquet"
    argv = ["predict", "--run", str(run_dir), "--file", str(src)] + (["--out", str(out)] if to_file else [])
    code = main(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert code == 2 and len(lines) == 1, captured.err
    assert lines[0].startswith(f"clfbench: error: {src}: ") and re.search(expected, lines[0]), lines[0]
    assert captured.out == "" and list(tmp_path.glob("pred*")) == []
    # `run` on the same file: the same kind of one-line refusal
    assert main(["run", "--train", str(src), "--method", "tfidf-lr", "--out", str(tmp_path / "runs"), "-q"]) == 2
    assert re.search(expected, capsys.readouterr().err)


def test_predict_txt_file_not_utf8_or_blank_is_one_line(run_dir, tmp_path, capsys):
    src = tmp_path / "in.txt"
    for data, expected in ((b"caf\xe9\n", "line 1: not valid UTF-8"), (b"\n  \n", "no rows")):
        src.write_bytes(data)
        for extra in ([], ["--out", str(tmp_path / "p.parquet")]):
            assert main(["predict", "--run", str(run_dir), "--file", str(src), *extra]) == 2
            err = capsys.readouterr().err
            assert len(err.strip().splitlines()) == 1 and expected in err, err
