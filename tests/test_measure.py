import time

import numpy as np

import clfbench.measure as measure
from clfbench.data import Texts


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
