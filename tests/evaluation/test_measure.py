import time

import numpy as np

import clfbench.evaluation.measure as measure
from clfbench.data.texts import Texts


def test_latency_is_per_example_after_warmup(monkeypatch):
    calls, syncs = [], []
    monkeypatch.setattr(measure, "synchronize", lambda: syncs.append(len(calls)))
    X = Texts([f"t{i}" for i in range(200)])
    out = measure.measure_latency(lambda x: calls.append(list(x.texts)), X, n=120, warmup=7)
    assert len(calls) == 7 + 120 and all(len(c) == 1 for c in calls)
    assert out["latency_n"] == 120
    assert out["latency_ms_p50"] <= out["latency_ms_p95"] <= out["latency_ms_p99"]
    assert len(syncs) == 1 + 120  # once after warm-up, then after every timed call


def test_latency_uses_all_examples_when_fewer_than_n():
    out = measure.measure_latency(lambda x: None, Texts(["a", "b", "c"]), n=100, warmup=1)
    assert out["latency_n"] == 3


def test_percentiles_are_numpy_percentiles():
    s = list(np.linspace(0.001, 0.1, 100))
    out = measure.percentiles_ms(s)
    assert out["latency_ms_p95"] == np.percentile(np.array(s) * 1000, 95)


def test_throughput_times_one_call_over_everything():
    sizes = []
    out = measure.measure_throughput(lambda x: sizes.append(len(x)), Texts(["x"] * 100), warmup_examples=10)
    assert sizes == [10, 100] and out["throughput_sps"] > 0


def test_peak_memory_sees_an_allocation_freed_inside_the_block():
    import psutil

    base = psutil.Process().memory_info().rss / 2**20
    mem = measure.PeakMemory(interval=0.001)
    with mem.track():
        block = np.ones(256 * 2**20 // 8)  # 256 MB, touched, then freed before the block ends
        block.sum()
        time.sleep(0.05)  # let the sampler see it
        del block
    assert mem.peak_rss_mb >= base + 200
    assert psutil.Process().memory_info().rss / 2**20 < mem.peak_rss_mb - 100
    assert mem.peak_gpu_mb is None


class FakeCuda:
    """torch.cuda on a machine with a GPU that nothing has used yet in this process."""

    def __init__(self):
        self.initialized = False

    def is_available(self):
        return True

    def is_initialized(self):
        return self.initialized

    def init(self):
        self.initialized = True

    def reset_peak_memory_stats(self):
        assert self.initialized, "CUDA must be initialised before its stats are reset"

    def max_memory_allocated(self):
        return 123 * 2**20 if self.initialized else 0

    def synchronize(self):
        pass


def test_first_run_of_a_process_gets_a_gpu_peak(monkeypatch):
    import torch

    monkeypatch.setattr(torch, "cuda", FakeCuda())
    mem = measure.PeakMemory()
    with mem.track():
        pass
    assert mem.peak_gpu_mb == 123


def pool_threads() -> set[int]:
    from threadpoolctl import threadpool_info

    return {p["num_threads"] for p in threadpool_info() if p["user_api"] in ("blas", "openmp")}


def test_limit_threads_bounds_blas_openmp_and_torch_then_restores():
    import sklearn.linear_model  # noqa: F401 - loads scikit-learn's OpenMP runtime too
    import torch
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=3):
        torch.set_num_threads(3)
        with measure.limit_threads(1):
            assert pool_threads() == {1}
            assert torch.get_num_threads() == 1
        assert pool_threads() == {3}
        assert torch.get_num_threads() == 3
        with measure.limit_threads(None):  # no --threads: leave everything as it is
            assert pool_threads() == {3}


def scripted_snapshots(monkeypatch, busy_cores: float, own_cores: float):
    """Two CPU snapshots 2 s apart with the given busy and own CPU use in between."""
    shots = iter([(0.0, 0.0, 0.0), (2.0, 2.0 * busy_cores, 2.0 * own_cores)])
    monkeypatch.setattr(measure, "_cpu_snapshot", lambda cpus: next(shots))


def test_own_cpu_use_is_not_contention(monkeypatch):
    scripted_snapshots(monkeypatch, busy_cores=1.1, own_cores=1.0)  # we keep one core busy
    load = measure.MachineLoad()
    with load.track():
        pass
    s = load.summary
    assert (s["system_cpu_pct"], s["own_cpu_pct"], s["other_cpu_pct"]) == (110.0, 100.0, 10.0)
    assert s["contended"] is False


def test_other_processes_cpu_use_is_contention(monkeypatch):
    scripted_snapshots(monkeypatch, busy_cores=1.5, own_cores=1.0)
    load = measure.MachineLoad()
    with load.track():
        pass
    assert load.summary["other_cpu_pct"] == 50.0 and load.summary["contended"] is True


def test_a_share_below_the_clock_resolution_is_not_contention(monkeypatch):
    shots = iter([(0.0, 0.0, 0.0), (0.04, 0.055, 0.04)])  # 40 ms: 1.5 ticks of "other"
    monkeypatch.setattr(measure, "_cpu_snapshot", lambda cpus: next(shots))
    load = measure.MachineLoad()
    with load.track():
        pass
    assert load.summary["other_cpu_pct"] == 37.5  # above the threshold, within the tick noise
    assert load.summary["resolution_pct"] > 25.0 and load.summary["contended"] is False


def test_a_busy_neighbour_process_is_recorded_as_contention():
    import subprocess
    import sys

    spin = "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass\n"
    load = measure.MachineLoad()
    neighbour = subprocess.Popen([sys.executable, "-c", spin])
    try:
        time.sleep(0.2)  # the neighbour is spinning
        with load.track():
            time.sleep(1.0)  # we do nothing: whatever was busy was someone else
    finally:
        neighbour.wait()
    s = load.summary
    assert s["own_cpu_pct"] < 20
    assert s["other_cpu_pct"] >= 25 and s["contended"] is True
    assert s["cpus"] >= 1 and len(s["loadavg_before"]) == 3
