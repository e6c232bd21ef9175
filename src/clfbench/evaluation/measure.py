"""Timing and memory, measured the same way for every method.

Latency: one example per call (tokenization and everything else inside `predict_proba`
included), after warm-up calls, with the device synchronized around each call.
Throughput: all evaluation examples in one `predict_proba` call at the method's batch size,
after warm-up. Memory: peak process RSS sampled in a background thread, and the GPU's max
allocated bytes where a GPU is used. Threads: `limit_threads` bounds torch and every BLAS/OpenMP
pool for a run; `choose_threads` picks the count when the user did not (torch's default, less
the cores other processes keep busy in a short sample before the run). Load: `MachineLoad`
records how busy the CPUs this process may use were while it was timing, and how much of that
was other processes.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psutil

from clfbench.data.texts import Texts
from clfbench.progress import progress


def synchronize(device: Any = None) -> None:
    """Wait for queued device work so that a timer measures finished work: on `device` (a
    torch.device) when given, else on every initialised accelerator."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return
    if device is not None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
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
    predict: Callable[[Texts], object], X: Texts, n: int = 100, warmup: int = 5,
    show_progress: bool = False,
) -> dict[str, float]:
    """Per-example latency at batch 1 over the first `n` examples (all if fewer).

    `show_progress`: a progress bar, updated outside the timed calls."""
    n = min(n, len(X))
    for i in range(min(warmup, len(X))):
        predict(X.subset([i]))
    synchronize()
    times = []
    for i in progress(range(n), "latency at batch 1", show_progress):
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
    """torch.cuda, initialised, when a GPU is available (so a process's first run is measured too)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return None
    if not torch.cuda.is_available():
        return None
    torch.cuda.init()
    return torch.cuda


@contextmanager
def limit_threads(threads: int | None) -> Iterator[None]:
    """Bound torch's threads and every BLAS/OpenMP pool to `threads` for the block; restore after.

    torch.set_num_threads alone leaves numpy/scipy's OpenBLAS and scikit-learn's OpenMP at one
    thread per core, which on a loaded machine makes a run's timings depend on its neighbours.
    """
    if not threads:
        yield
        return
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


# Other processes using more than this share of one core, averaged over the timing, make the
# run's latencies and throughput "measured under contention".
CONTENTION_PCT = 25.0


def _cpu_snapshot(cpus: list[int]) -> tuple[float, float, float]:
    """(wall seconds, busy CPU seconds summed over `cpus`, this process's CPU seconds)."""
    per_cpu = psutil.cpu_times(percpu=True)
    busy = 0.0
    for i in cpus:
        t = per_cpu[i]
        busy += sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0)
    own = psutil.Process().cpu_times()
    return time.monotonic(), busy, own.user + own.system


def _usable_cpus() -> list[int]:
    """The CPUs this process may run on (its affinity), as indexes into psutil's per-CPU times."""
    n = len(psutil.cpu_times(percpu=True))
    try:
        cpus = sorted(c for c in os.sched_getaffinity(0) if c < n)
    except AttributeError:  # pragma: no cover - macOS, Windows
        cpus = []
    return cpus or list(range(n))


@dataclass
class MachineLoad:
    """How busy the CPUs this process may use were during a block, and who kept them busy.

    CPU shares are in percent of one core (200 = two cores fully busy). `other_cpu_pct` is
    the usable CPUs' busy time minus this process's own CPU time: the machine's other work.
    The kernel counts CPU time in clock ticks (10 ms), so over a short block a share is only
    known to within `resolution_pct`; a run is `contended` when other processes' share
    exceeds both the threshold and that resolution.
    """

    threshold_pct: float = CONTENTION_PCT
    summary: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def track(self) -> Iterator[MachineLoad]:
        cpus = _usable_cpus()
        load_before = _loadavg()
        t0, busy0, own0 = _cpu_snapshot(cpus)
        try:
            yield self
        finally:
            t1, busy1, own1 = _cpu_snapshot(cpus)
            wall = max(t1 - t0, 1e-9)
            busy_pct = 100.0 * (busy1 - busy0) / wall
            own_pct = 100.0 * (own1 - own0) / wall
            other_pct = max(0.0, busy_pct - own_pct)
            resolution_pct = 100.0 * _clock_tick() * (len(cpus) + 1) / wall
            self.summary = {
                "seconds": round(wall, 3),
                "cpus": len(cpus),
                "cpu_count": os.cpu_count(),
                "system_cpu_pct": round(busy_pct, 1),
                "own_cpu_pct": round(own_pct, 1),
                "other_cpu_pct": round(other_pct, 1),
                "loadavg_before": load_before,
                "loadavg_after": _loadavg(),
                "threshold_pct": self.threshold_pct,
                "resolution_pct": round(resolution_pct, 1),
                "contended": bool(other_pct > max(self.threshold_pct, resolution_pct)),
            }


#: Seconds of idle load sampling before a run whose thread count the user did not set.
LOAD_SAMPLE_S = 0.5


def sample_load(seconds: float = LOAD_SAMPLE_S) -> dict[str, Any]:
    """`MachineLoad`'s summary over `seconds` while this process sleeps: other processes' CPU use now."""
    load = MachineLoad()
    with load.track():
        time.sleep(seconds)
    return load.summary


def threads_for_load(default: int, cpus: int, other_cpu_pct: float) -> int:
    """`default` threads, less the cores other processes keep busy, within the `cpus` this
    process may use; at least 1. `other_cpu_pct`: their CPU use, 100 = one core; a core counts
    as busy from half of it on.

    A torch thread sharing its core with another process stalls every parallel region of the
    run while it waits for the core: with other jobs busy on both cores, embed-probe on MiniLM
    measured a batch-1 p50 of 148 ms with 2 threads and 53 ms with 1.
    """
    busy = math.floor(max(0.0, other_cpu_pct) / 100.0 + 0.5)
    return max(1, min(default, cpus - busy))


@dataclass
class ThreadChoice:
    """The CPU thread count of a run and why (`metrics.json` `threads`, `config.json` `env.threads`)."""

    threads: int
    default: int  # torch's thread count before the run (its default: the physical cores)
    chosen_by: str  # "--threads", "default" or "load"
    load: dict[str, Any] | None = None  # the sample, when one was taken

    @property
    def limit(self) -> int | None:
        """What `limit_threads` gets: None (torch's default) leaves every pool as it is."""
        return None if self.chosen_by == "default" else self.threads

    def why(self) -> str:
        if self.chosen_by == "--threads":
            return "set with --threads"
        if self.load is None:
            return f"torch's default ({self.default}); no load sample needed for 1 thread"
        seen = (f"other processes used {self.load['other_cpu_pct']:.0f}% CPU (100% = one core) of "
                f"{self.load['cpus']} usable CPUs in a {self.load['seconds']:.1f} s sample before the run")
        if self.chosen_by == "load":
            return f"torch's default {self.default}, lowered because {seen}; --threads N overrides"
        return f"torch's default ({self.default}); {seen}"

    def line(self) -> str:
        """The console line: 'threads: 1 (torch's default 2, lowered because ...)'."""
        return f"threads: {self.threads} ({self.why()})"

    def record(self) -> dict[str, Any]:
        keep = ("seconds", "cpus", "other_cpu_pct", "loadavg_before")
        return {"used": self.threads, "default": self.default, "chosen_by": self.chosen_by,
                "why": self.why(),
                "load_sample": {k: self.load.get(k) for k in keep} if self.load is not None else None}


def choose_threads(requested: int | None, sample: Callable[[], dict[str, Any]] | None = None) -> ThreadChoice:
    """A run's thread count: `requested` (--threads) when given, else torch's current count
    lowered by `threads_for_load` on a load `sample` (default `sample_load`) taken now.

    Without --threads, torch uses one thread per physical core whatever else runs there, and
    the timings then measure the neighbours as much as the method. One thread needs no sample.
    """
    import torch

    default = torch.get_num_threads()
    if requested:
        return ThreadChoice(int(requested), default, "--threads")
    if default <= 1:
        return ThreadChoice(default, default, "default")
    load = (sample or sample_load)()
    threads = threads_for_load(default, int(load["cpus"]), float(load["other_cpu_pct"]))
    return ThreadChoice(threads, default, "load" if threads < default else "default", load)


def _clock_tick() -> float:
    """Seconds per kernel clock tick, the unit CPU times are counted in."""
    try:
        return 1.0 / os.sysconf("SC_CLK_TCK")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - Windows
        return 0.01


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):  # pragma: no cover - Windows
        return None
