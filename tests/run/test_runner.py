"""Grids: everything validated before work starts; completed runs skipped; interruptions safe."""

import io
import json
from importlib import resources

import numpy as np
import psutil
import pytest
from rich.console import Console

import clfbench.run.runner as runner
import clfbench.run.worker as worker
from clfbench.errors import ClfbenchError
from clfbench.results.store import Store
from clfbench.run.config import RunSpec

DEMO = resources.files("clfbench") / "demo_data"


def specs(seeds=(1, 2, 3)):
    return [RunSpec(method="tfidf-lr", name="tickets", train_file=str(DEMO / "train.csv"),
                    validation_file=str(DEMO / "validation.csv"), test_file=str(DEMO / "test.csv"),
                    seed=s, latency_examples=5, params={"C": 1.0}) for s in seeds]


@pytest.mark.parametrize("isolate", [False, True], ids=["in-process", "worker"])
def test_interrupted_grid_resumes_without_redoing_finished_runs(tmp_path, monkeypatch, isolate):
    name = "execute_in_worker" if isolate else "execute"
    real = getattr(worker, name)
    calls = []

    def killed_on_second(spec, *a, **k):
        calls.append(spec.seed)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the process were stopped during run 2
        return real(spec, *a, **k)

    monkeypatch.setattr(worker, name, killed_on_second)
    with pytest.raises(KeyboardInterrupt):
        runner.run_grid(specs(), tmp_path, quiet=True, isolate=isolate)
    store = Store(tmp_path)
    assert [r["seed"] for r in store.runs()] == [1]
    assert store.runs()[0]["isolation"] == ("process" if isolate else "none")

    calls.clear()
    monkeypatch.setattr(worker, name, lambda spec, *a, **k: calls.append(spec.seed) or real(spec, *a, **k))
    runner.run_grid(specs(), tmp_path, quiet=True, isolate=isolate)
    assert calls == [2, 3]  # run 1 was complete and skipped
    assert sorted(r["seed"] for r in store.runs()) == [1, 2, 3]
    calls.clear()
    runner.run_grid(specs(), tmp_path, quiet=True, isolate=isolate)
    assert calls == []


def test_a_runs_peak_memory_is_its_own_not_the_grids(tmp_path):
    """In one process a run's peak RSS included everything the process held before it."""
    held = np.ones(400 * 2**20 // 8)  # 400 MB that an earlier run's model might still hold
    parent_rss = psutil.Process().memory_info().rss / 2**20
    folders = runner.run_grid(specs((1,)), tmp_path / "worker", quiet=True, isolate=True)
    in_process = runner.run_grid(specs((1,)), tmp_path / "same", quiet=True, isolate=False)
    worker = json.loads((folders[0] / "metrics.json").read_text())
    same = json.loads((in_process[0] / "metrics.json").read_text())
    assert worker["isolation"] == "process" and same["isolation"] == "none"
    assert same["peak_memory_mb"] >= parent_rss - 50
    assert worker["peak_memory_mb"] < parent_rss - 300
    assert held.sum() > 0


def test_a_model_fitted_in_the_worker_is_saved_with_the_run_and_threads_bounded_there(tmp_path):
    from clfbench.data.texts import Texts
    from clfbench.methods.base import Classifier

    spec = specs((1,))[0]
    spec.save_model, spec.threads = True, 1
    folder = runner.run_grid([spec], tmp_path, quiet=True, isolate=True)[0]
    env = json.loads((folder / "config.json").read_text())["env"]
    assert env["torch_threads"] == 1 and {p["num_threads"] for p in env["thread_pools"]} == {1}
    model = Classifier.load(folder / "model")
    saved = [json.loads(line)["pred"] for line in (folder / "predictions.jsonl").read_text().splitlines()]
    test = runner.load_data(spec).test
    pred, _ = model.classify(Texts(test.texts[:20]))
    assert [model.labels[i] for i in pred] == saved[:20]  # the very model that made the predictions


@pytest.mark.parametrize("env, isolation", [(None, "process"), ("0", "none")])
def test_the_cli_runs_each_configuration_in_a_fresh_process(tmp_path, monkeypatch, env, isolation):
    from clfbench.cli import main

    if env is None:
        monkeypatch.delenv("CLFBENCH_ISOLATE", raising=False)
    else:
        monkeypatch.setenv("CLFBENCH_ISOLATE", env)  # debugging: everything in one process
    own = ["--train", str(DEMO / "train.csv"), "--test", str(DEMO / "test.csv")]
    assert main(["run", "--method", "tfidf-lr", *own, "--latency-examples", "5", "-q",
                 "--out", str(tmp_path)]) == 0
    assert Store(tmp_path).runs()[0]["isolation"] == isolation


def test_threads_bound_blas_for_the_whole_run_and_are_restored(tmp_path, monkeypatch):
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    from clfbench.methods.tfidf_lr import TfidfLogReg

    seen = []
    real_fit = TfidfLogReg.fit

    def fit(self, *a, **k):
        seen.append(({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"},
                     torch.get_num_threads()))
        return real_fit(self, *a, **k)

    monkeypatch.setattr(TfidfLogReg, "fit", fit)
    spec = specs((1,))[0]
    spec.threads = 1
    with threadpool_limits(limits=3):
        torch.set_num_threads(3)
        folder = runner.run_grid([spec], tmp_path, quiet=True, isolate=False)[0]
        after = {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}
        assert after == {3} and torch.get_num_threads() == 3
    torch.set_num_threads(1)
    assert seen == [({1}, 1)]
    env = json.loads((folder / "config.json").read_text())["env"]
    assert env["torch_threads"] == 1
    assert {p["num_threads"] for p in env["thread_pools"]} == {1}


def test_a_contended_run_is_flagged_on_the_console(tmp_path, monkeypatch):
    real = worker.execute

    def contended(spec, *a, **k):
        result = real(spec, *a, **k)
        result.metrics["machine_load"].update(other_cpu_pct=87.0, contended=True)
        return result

    monkeypatch.setattr(worker, "execute", contended)
    out = io.StringIO()
    runner.run_grid(specs((1,)), tmp_path, console=Console(file=out, width=200), isolate=False)
    assert "latencies measured under contention: other processes used 87% CPU" in out.getvalue()
    load = Store(tmp_path).runs()[0]["machine_load"]
    assert set(load) >= {"system_cpu_pct", "own_cpu_pct", "other_cpu_pct", "loadavg_before", "contended"}


def test_same_data_for_every_method_and_seed(tmp_path):
    folders = runner.run_grid(specs((1, 2)), tmp_path, quiet=True, isolate=False)
    ids = [[line for line in (f / "predictions.jsonl").read_text().splitlines()] for f in folders]
    n_test = len((DEMO / "test.csv").read_text(encoding="utf-8").strip().splitlines()) - 1
    assert len(ids[0]) == len(ids[1]) == n_test == 1000


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
