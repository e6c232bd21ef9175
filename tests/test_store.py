import json

import pytest

from clfbench.config import RunSpec
from clfbench.errors import ClfbenchError
from clfbench.evaluate import RunResult
from clfbench.store import Store


def result(seed=1, acc=0.5):
    spec = RunSpec(method="tfidf-lr", task="sst2", seed=seed)
    return RunResult(spec, {"accuracy": acc, "macro_f1": acc}, [{"id": "0", "gold": "a", "pred": "a"}],
                     {"spec": spec.identity()})


def test_save_is_indexed_and_complete(tmp_path):
    store = Store(tmp_path)
    r = result()
    folder = store.save(r)
    assert (folder / "metrics.json").is_file()
    assert (folder / "predictions.jsonl").read_text().count("\n") == 1
    assert store.is_complete(r.spec.hash())
    [row] = store.runs()
    assert row["accuracy"] == 0.5 and row["run_id"] == folder.name
    assert not any((tmp_path / ".partial").iterdir())


def test_failure_while_writing_leaves_nothing_complete(tmp_path, monkeypatch):
    store = Store(tmp_path)
    r = result()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr("clfbench.store.Path.rename", boom)
    with pytest.raises(RuntimeError):
        store.save(r)
    assert not store.is_complete(r.spec.hash())
    assert not (tmp_path / r.spec.run_id()).exists()
    assert not (tmp_path / "index.sqlite").exists()


def test_folder_without_metrics_is_not_complete(tmp_path):
    store = Store(tmp_path)
    r = result()
    folder = store.save(r)
    (folder / "metrics.json").unlink()
    assert not store.is_complete(r.spec.hash())


def test_runs_of_a_folder_without_index_is_a_clear_error(tmp_path):
    with pytest.raises(ClfbenchError, match="index.sqlite"):
        Store(tmp_path).runs()


def test_numpy_values_are_written_as_json(tmp_path):
    import numpy as np

    r = result()
    r.metrics["n"] = np.int64(3)
    folder = Store(tmp_path).save(r)
    assert json.loads((folder / "metrics.json").read_text())["n"] == 3
