"""Thread count of a run: --threads when given, else torch's default less the cores that other
processes keep busy (a load sample before the run), recorded with the reason."""

from __future__ import annotations

import json

import pytest
import torch
from neural_helpers import toy_data

from clfbench.data.splits import TaskSplits
from clfbench.evaluation import measure
from clfbench.run.config import RunSpec
from clfbench.run.evaluate import execute


def fake_load(other_cpu_pct: float, cpus: int = 2):
    """A load sample as `measure.sample_load` returns it, and a counter of its calls."""
    calls = []

    def sample() -> dict:
        calls.append(1)
        return {"seconds": 0.5, "cpus": cpus, "other_cpu_pct": other_cpu_pct,
                "loadavg_before": [3.0, 2.0, 1.0]}

    return sample, calls


@pytest.mark.parametrize("default, cpus, other_pct, expected", [
    (2, 2, 0.0, 2),     # idle machine: torch's default
    (2, 2, 40.0, 2),    # under half a core busy: not counted
    (2, 2, 110.0, 1),   # one core busy (the MiniLM case): one thread
    (2, 2, 400.0, 1),   # more than every core busy: still at least one
    (8, 16, 500.0, 8),  # spare CPUs beyond torch's default: unchanged
    (8, 8, 250.0, 5),   # 2.5 cores busy count as 3
])
def test_threads_for_load(default, cpus, other_pct, expected):
    assert measure.threads_for_load(default, cpus, other_pct) == expected


@pytest.fixture
def two_torch_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_busy_cores_lower_the_default_and_say_why(two_torch_threads):
    sample, calls = fake_load(150.0)
    choice = measure.choose_threads(None, sample)
    assert (choice.threads, choice.default, choice.chosen_by, choice.limit) == (1, 2, "load", 1)
    assert calls == [1]
    assert choice.line().startswith("threads: 1 (torch's default 2, lowered because other processes "
                                    "used 150% CPU (100% = one core) of 2 usable CPUs in a 0.5 s sample")
    record = choice.record()
    assert record["used"] == 1 and record["load_sample"]["other_cpu_pct"] == 150.0
    idle = measure.choose_threads(None, fake_load(10.0)[0])
    assert (idle.threads, idle.chosen_by, idle.limit) == (2, "default", None)  # pools left as they are


def test_threads_given_or_one_thread_take_no_sample(two_torch_threads):
    sample, calls = fake_load(150.0)
    given = measure.choose_threads(2, sample)
    assert (given.threads, given.chosen_by, given.limit) == (2, "--threads", 2)
    assert given.record()["why"] == "set with --threads" and given.record()["load_sample"] is None
    torch.set_num_threads(1)
    one = measure.choose_threads(None, sample)
    assert (one.threads, one.chosen_by, one.limit) == (1, "default", None)
    assert calls == []


def test_a_run_on_a_busy_machine_uses_fewer_threads_and_records_it(two_torch_threads, monkeypatch, capsys):
    sample, calls = fake_load(120.0)
    monkeypatch.setattr(measure, "sample_load", sample)
    splits = TaskSplits(train=toy_data(60, 0), validation=toy_data(30, 1), test=toy_data(20, 2), notes={})
    result = execute(RunSpec(method="tfidf-lr", name="toy", latency_examples=2), splits, quiet=False)
    assert calls == [1]
    assert torch.get_num_threads() == 2  # restored after the run
    threads = result.metrics["threads"]
    assert threads["used"] == 1 and threads["default"] == 2 and threads["chosen_by"] == "load"
    env = result.config["env"]
    assert env["torch_threads"] == 1 and env["threads"] == threads  # the run had 1 thread
    assert {p["num_threads"] for p in env["thread_pools"]} == {1}  # BLAS/OpenMP bounded too
    json.dumps(result.metrics)  # it is saved as JSON
    assert "  threads: 1 (torch's default 2, lowered because other processes used 120% CPU" \
        in capsys.readouterr().err
    # --threads wins, and the quiet run prints nothing about it
    given = execute(RunSpec(method="tfidf-lr", name="toy", latency_examples=2, threads=2), splits)
    assert given.metrics["threads"]["chosen_by"] == "--threads" and calls == [1]
    assert "threads:" not in capsys.readouterr().err


def test_the_sample_sees_a_busy_neighbour():
    import subprocess
    import sys
    import time

    spin = "import time\nt = time.time()\nwhile time.time() - t < 1.2: pass\n"
    neighbour = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.2)
        load = measure.sample_load(0.5)
    finally:
        neighbour.wait()
    assert load["other_cpu_pct"] >= 50 and load["seconds"] >= 0.5
    assert measure.threads_for_load(load["cpus"], load["cpus"], load["other_cpu_pct"]) < load["cpus"] \
        or load["cpus"] == 1
