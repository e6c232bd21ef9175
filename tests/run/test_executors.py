"""Executors: a local pool and a Ray cluster give the same runs as one at a time, resume the
same way, retry a run whose worker died, and time one run at a time per node."""

import json
import os
import threading
import time
from importlib import resources
from pathlib import Path

import pytest
from ray_helpers import ray_cluster_fixture

from clfbench.cli import main
from clfbench.errors import ClfbenchError
from clfbench.methods.base import Classifier
from clfbench.results.store import Store
from clfbench.run.config import RunSpec
from clfbench.run.executors import (
    CRASH_ONCE_ENV,
    LocalPoolExecutor,
    SequentialExecutor,
    executor_settings,
    make_executor,
)
from clfbench.run.executors.timing import TimingLock
from clfbench.run.runner import run_grid

DEMO = resources.files("clfbench") / "demo_data"
C_VALUES = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
QUALITY = ("accuracy", "macro_f1", "weighted_f1", "mcc", "per_class", "confusion_matrix",
           "degenerate", "fit_info")
ray_cluster = ray_cluster_fixture()


def grid(c_values=C_VALUES, **kw) -> list[RunSpec]:
    """tfidf-lr on the demo tickets, one run per C."""
    return [RunSpec(method="tfidf-lr", name="tickets", train_file=str(DEMO / "train.csv"),
                    validation_file=str(DEMO / "validation.csv"), test_file=str(DEMO / "test.csv"),
                    latency_examples=5, params={"C": c}, **kw) for c in c_values]


def by_c(out: Path) -> dict[float, dict]:
    return {r["fit_info"]["C"]: r for r in Store(out).runs()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict[float, dict]:
    """The grid one run at a time, in this process: the metrics every executor must match."""
    out = tmp_path_factory.mktemp("reference")
    run_grid(grid(), out, quiet=True, isolate=False)
    return by_c(out)


def assert_same_quality(runs: dict[float, dict], reference: dict[float, dict]) -> None:
    assert sorted(runs) == sorted(reference) == sorted(C_VALUES)
    for c, run in runs.items():
        for key in QUALITY:
            if key in reference[c]:
                assert run[key] == reference[c][key], (c, key)


# --- the timing lock -----------------------------------------------------------------------
def test_a_timed_run_waits_until_no_other_run_computes(tmp_path):
    path = str(tmp_path / "timing.lock")
    events: list[str] = []
    a_in, a_out = threading.Event(), threading.Event()

    def run_a():
        with TimingLock(path).run():
            events.append("a computes")
            a_in.set()
            a_out.wait(10)
            events.append("a done")

    def run_b():
        a_in.wait(10)
        with TimingLock(path).run() as lock:
            with lock.timed():
                events.append("b timed")

    threads = [threading.Thread(target=run_a), threading.Thread(target=run_b)]
    for t in threads:
        t.start()
    a_in.wait(10)
    time.sleep(0.3)
    assert events == ["a computes"]  # b waits: a still computes
    a_out.set()
    for t in threads:
        t.join(10)
    assert events == ["a computes", "a done", "b timed"]
    lock = TimingLock(path)
    assert lock.exclusive and "flock" in lock.how
    assert TimingLock().exclusive and "one at a time" in TimingLock().how  # no lock asked for


# --- choosing an executor --------------------------------------------------------------------
def test_executor_settings_from_grid_and_flags():
    assert executor_settings(None) == {"name": "local"}
    assert executor_settings("ray", address="auto") == {"name": "ray", "address": "auto"}
    assert executor_settings({"name": "local", "workers": 2}, workers=3)["workers"] == 3
    assert isinstance(make_executor("local"), SequentialExecutor)
    with pytest.raises(ClfbenchError, match="workers=0"):
        executor_settings({"name": "local", "workers": 0})
    with pytest.raises(ClfbenchError, match="expected local, ray"):
        executor_settings({"name": "local", "nodes": 2})
    with pytest.raises(ClfbenchError, match="expected one of local, ray"):
        make_executor("dask")
    with pytest.raises(ClfbenchError, match="--address is for --executor ray"):
        make_executor("local", address="auto")


def test_ray_resources_per_method():
    from clfbench.run.executors.ray import check_resources, resources_for

    spec = grid((1.0,))[0]
    assert resources_for(spec, {}, has_gpu=True) == {"num_cpus": 1}
    ft = RunSpec(method="encoder-ft", task="sst2", threads=2)
    assert resources_for(ft, {}, has_gpu=False) == {"num_cpus": 2}
    assert resources_for(ft, {}, has_gpu=True) == {"num_cpus": 2, "num_gpus": 1}
    req = check_resources({"default": {"num_cpus": 2}, "encoder-ft": {"num_gpus": 0.5, "memory": "4GiB"}})
    assert resources_for(ft, req, has_gpu=True) == {"num_cpus": 2, "num_gpus": 0.5, "memory": 4 * 2**30}
    assert resources_for(spec, req, has_gpu=True) == {"num_cpus": 2}
    with pytest.raises(ClfbenchError, match=r"resources.encoder-ft.num_gpus=-1"):
        check_resources({"encoder-ft": {"num_gpus": -1}})
    with pytest.raises(ClfbenchError, match="keys among memory, num_cpus, num_gpus"):
        check_resources({"encoder-ft": {"gpus": 1}})


# --- the local pool ----------------------------------------------------------------------------
def test_local_pool_runs_the_grid_side_by_side_with_the_same_results(tmp_path, reference):
    out = tmp_path / "runs"
    folders = run_grid(grid(), out, quiet=True, executor=LocalPoolExecutor(2))
    assert len(folders) == 6
    runs = by_c(out)
    assert_same_quality(runs, reference)
    for run in runs.values():
        assert run["isolation"] == "process"
        assert run["timing_exclusive"] is True and "flock" in run["timing_exclusive_how"]
    assert os.environ.get("CLFBENCH_TIMING_LOCK") is None  # restored after the grid
    assert run_grid(grid(), out, quiet=True, executor=LocalPoolExecutor(2)) == []  # resume


def test_local_pool_interrupted_stops_its_workers_and_releases_claims(tmp_path, monkeypatch):
    import multiprocessing

    def interrupted(self, result):
        raise KeyboardInterrupt  # Ctrl-C while the first result is saved; the other run computes

    monkeypatch.setattr(Store, "save", interrupted)
    specs = grid((0.5, 1.0, 2.0))
    with pytest.raises(KeyboardInterrupt):
        run_grid(specs, tmp_path, quiet=True, executor=LocalPoolExecutor(2))
    deadline = time.monotonic() + 10
    while any(p.name.startswith("clfbench-worker-") for p in multiprocessing.active_children()):
        assert time.monotonic() < deadline, "a worker outlived the interrupted grid"
        time.sleep(0.1)
    assert all(Store(tmp_path).claim_owner(s.hash()) is None for s in specs)


# --- Ray -----------------------------------------------------------------------------------------
def test_ray_grid_same_metrics_and_resume(ray_cluster, tmp_path, reference):
    out = tmp_path / "runs"
    run_grid(grid(C_VALUES[:2]), out, quiet=True, isolate=False)  # 2 of 6 already complete
    folders = run_grid(grid(), out, quiet=True, executor=make_executor("ray"))
    assert len(folders) == 4  # the 2 complete runs were skipped, exactly as locally
    runs = by_c(out)
    assert_same_quality(runs, reference)
    assert len(Store(out).runs()) == 6
    for c in C_VALUES[2:]:
        assert runs[c]["executor"]["name"] == "ray" and runs[c]["isolation"] == "process"
        assert runs[c]["timing_exclusive"] is True and "flock" in runs[c]["timing_exclusive_how"]
    assert len({runs[c]["executor"]["pid"] for c in C_VALUES[2:]}) == 4  # a fresh process each
    assert run_grid(grid(), out, quiet=True, executor=make_executor("ray")) == []
    assert ray_cluster.is_initialized()  # the caller's cluster is left running


def test_ray_retries_a_run_whose_worker_died_mid_run(ray_cluster, tmp_path, monkeypatch):
    marker = tmp_path / "crashed-once"
    monkeypatch.setenv(CRASH_ONCE_ENV, str(marker))
    spec = grid((1.0,), save_model=True)[0]
    folders = run_grid([spec], tmp_path / "runs", quiet=True, executor=make_executor("ray"))
    assert marker.exists()  # the first attempt's worker died (os._exit) ...
    metrics = json.loads((folders[0] / "metrics.json").read_text())
    assert metrics["executor"]["pid"] != int(marker.read_text())  # ... and another one finished it
    assert Store(tmp_path / "runs").is_complete(spec.hash())
    assert Store(tmp_path / "runs").claim_owner(spec.hash()) is None  # claim released
    model = Classifier.load(folders[0] / "model")  # the model came back from the worker
    assert model.labels == ["account", "billing", "delivery", "returns", "technical"]


def test_ray_error_in_a_run_is_raised_as_it_was(ray_cluster, tmp_path):
    bad = grid((1.0,))[0]
    bad.params = {"C": 1.0, "max_features": 0}  # scikit-learn refuses it inside the worker
    with pytest.raises(Exception, match="max_features"):
        run_grid([bad], tmp_path / "runs", quiet=True, executor=make_executor("ray"))
    assert Store(tmp_path / "runs").claim_owner(bad.hash()) is None


def test_cli_grid_with_executor_ray(ray_cluster, tmp_path, capsys):
    demo = Path(str(DEMO))
    (tmp_path / "grid.yaml").write_text(f"""
tasks:
  - {{name: tickets, train_file: {demo / 'train.csv'}, validation_file: {demo / 'validation.csv'},
     test_file: {demo / 'test.csv'}}}
methods:
  - {{name: tfidf-lr, params: {{C: 1.0}}}}
seeds: [1, 2]
latency_examples: 5
executor: ray
resources: {{tfidf-lr: {{num_cpus: 1}}}}
""")
    assert main(["run", str(tmp_path / "grid.yaml"), "--out", str(tmp_path / "runs")]) == 0
    err = capsys.readouterr().err
    assert "progress: 2 done, 0 running, 0 queued" in err
    assert {r["seed"] for r in Store(tmp_path / "runs").runs()} == {1, 2}
    assert main(["run", str(tmp_path / "grid.yaml"), "--workers", "2", "--out", str(tmp_path / "x")]) == 2
