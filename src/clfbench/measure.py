"""Timing and memory, measured the same way for every method.

Latency: one example per call (tokenization and everything else inside `predict_proba`
included), after warm-up calls, with the device synchronized around each call.
Throughput: all evaluation examples in one `predict_proba` call at the method's batch size,
after warm-up. Memory: peak process RSS sampled in a background thread, and the GPU's max
allocated bytes where a GPU is used.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import psutil

from clfbench.data import Texts


def synchronize() -> None:
    """Wait for queued device work so that a timer measures finished work."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()
    mps = getattr(torch, "mps", None)
    if mps is not None and torch.backends.mps.is_available():
        mps.synchronize()


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000.0
    return {
        "latency_ms_p50": float(np.percentile(ms, 50)),
        "latency_ms_p95": float(np.percentile(ms, 95)),
        "latency_ms_p99": float(np.percentile(ms, 99)),
        "latency_ms_mean": float(ms.mean()),
        "latency_n": int(len(ms)),
    }


def measure_latency(
    predict: Callable[[Texts], object], X: Texts, n: int = 100, warmup: int = 5
) -> dict[str, float]:
    """Per-example latency at batch 1 over the first `n` examples (all if fewer)."""
    n = min(n, len(X))
    for i in range(min(warmup, len(X))):
        predict(X.subset([i]))
    synchronize()
    times = []
    for i in range(n):
        one = X.subset([i])
        t0 = time.perf_counter()
        predict(one)
        synchronize()
        times.append(time.perf_counter() - t0)
    return percentiles_ms(times)


def measure_throughput(
    predict: Callable[[Texts], object], X: Texts, warmup_examples: int = 32
) -> dict[str, float]:
    """Samples per second for one call over all of `X`, after a warm-up call on a slice."""
    if warmup_examples > 0:
        predict(X.subset(range(min(warmup_examples, len(X)))))
        synchronize()
    t0 = time.perf_counter()
    predict(X)
    synchronize()
    elapsed = time.perf_counter() - t0
    return {"throughput_sps": float(len(X) / elapsed), "throughput_seconds": float(elapsed)}


@dataclass
class PeakMemory:
    """Peak RSS (MB) of this process while the block runs; GPU max allocated if on CUDA."""

    interval: float = 0.01
    peak_rss_mb: float = 0.0
    peak_gpu_mb: float | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak_rss_mb = max(self.peak_rss_mb, proc.memory_info().rss / 2**20)
            self._stop.wait(self.interval)

    @contextmanager
    def track(self):
        gpu = _cuda()
        if gpu is not None:
            gpu.reset_peak_memory_stats()
        self._stop.clear()
        thread = threading.Thread(target=self._sample, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join()
            self.peak_rss_mb = max(self.peak_rss_mb, psutil.Process().memory_info().rss / 2**20)
            if gpu is not None:
                self.peak_gpu_mb = gpu.max_memory_allocated() / 2**20


def _cuda():
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda
    return None
