"""Grids: everything validated before work starts; completed runs skipped; interruptions safe."""

from importlib import resources

import pytest

import clfbench.runner as runner
from clfbench.config import RunSpec
from clfbench.errors import ClfbenchError
from clfbench.store import Store

DEMO = resources.files("clfbench") / "demo_data"


def specs(seeds=(1, 2, 3)):
    return [RunSpec(method="tfidf-lr", name="tickets", train_file=str(DEMO / "train.csv"),
                    validation_file=str(DEMO / "validation.csv"), test_file=str(DEMO / "test.csv"),
                    seed=s, latency_examples=5, params={"C": 1.0}) for s in seeds]


def test_interrupted_grid_resumes_without_redoing_finished_runs(tmp_path, monkeypatch):
    real = runner.execute
    calls = []

    def killed_on_second(spec, *a, **k):
        calls.append(spec.seed)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the process were stopped during run 2
        return real(spec, *a, **k)

    monkeypatch.setattr(runner, "execute", killed_on_second)
    with pytest.raises(KeyboardInterrupt):
        runner.run_grid(specs(), tmp_path, quiet=True)
    store = Store(tmp_path)
    assert [r["seed"] for r in store.runs()] == [1]

    calls.clear()
    monkeypatch.setattr(runner, "execute", lambda spec, *a, **k: calls.append(spec.seed) or real(spec, *a, **k))
    runner.run_grid(specs(), tmp_path, quiet=True)
    assert calls == [2, 3]  # run 1 was complete and skipped
    assert sorted(r["seed"] for r in store.runs()) == [1, 2, 3]
    calls.clear()
    runner.run_grid(specs(), tmp_path, quiet=True)
    assert calls == []


def test_same_data_for_every_method_and_seed(tmp_path):
    folders = runner.run_grid(specs((1, 2)), tmp_path, quiet=True)
    ids = [[line for line in (f / "predictions.jsonl").read_text().splitlines()] for f in folders]
    assert len(ids[0]) == len(ids[1]) == 163


def test_bad_input_fails_before_any_run(tmp_path):
    bad = specs((1,)) + [RunSpec(method="tfidf-lr", train_file=str(tmp_path / "missing.csv"))]
    with pytest.raises(ClfbenchError, match="missing.csv: file not found"):
        runner.run_grid(bad, tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()


def test_unknown_method_parameter_fails_before_any_run(tmp_path):
    bad = specs((1,)) + [RunSpec(method="tfidf-lr", task="sst2", params={"epochs": 3})]
    with pytest.raises(ClfbenchError, match="unknown parameter.*epochs"):
        runner.run_grid(bad, tmp_path / "out", quiet=True)
    assert not (tmp_path / "out").exists()
