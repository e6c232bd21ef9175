"""Server metrics in the Prometheus text exposition format (version 0.0.4), hand-written.

Counters of requests by path and status, a histogram of request latency, and histograms of
the model's batch sizes (texts per call, requests merged per call) and call durations.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Histogram:
    """Cumulative buckets, sum and count, as Prometheus histograms report them."""

    def __init__(self, name: str, help_text: str, buckets: tuple[float, ...]) -> None:
        self.name, self.help, self.buckets = name, help_text, tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf
        self.sum, self.count = 0.0, 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        total = 0
        for bound, n in zip([*map(str, self.buckets), "+Inf"], self.counts):
            total += n
            lines.append(f'{self.name}_bucket{{le="{bound}"}} {total}')
        return [*lines, f"{self.name}_sum {self.sum}", f"{self.name}_count {self.count}"]


class ServerMetrics:
    """Everything /metrics shows; safe to update from the event loop and the model thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.texts = 0
        self.latency = Histogram("clfbench_request_duration_seconds",
                                 "End-to-end time of POST /v1/classify in the server", LATENCY_BUCKETS_S)
        self.batch_texts = Histogram("clfbench_batch_size_texts", "Texts per model call", BATCH_BUCKETS)
        self.batch_requests = Histogram("clfbench_batch_size_requests",
                                        "Requests merged into one model call", BATCH_BUCKETS)
        self.model_seconds = Histogram("clfbench_model_call_seconds", "Duration of one model call",
                                       LATENCY_BUCKETS_S)

    def request(self, method: str, path: str, status: int, seconds: float | None = None) -> None:
        with self._lock:
            self.requests[(method, path, status)] += 1
            if seconds is not None:
                self.latency.observe(seconds)

    def batch(self, n_texts: int, n_requests: int, seconds: float) -> None:
        with self._lock:
            self.texts += n_texts
            self.batch_texts.observe(n_texts)
            self.batch_requests.observe(n_requests)
            self.model_seconds.observe(seconds)

    def render(self, pending: int = 0) -> str:
        with self._lock:
            lines = ["# HELP clfbench_requests_total HTTP requests by method, path and status",
                     "# TYPE clfbench_requests_total counter"]
            for (method, path, status), n in sorted(self.requests.items()):
                lines.append(f'clfbench_requests_total{{method="{_escape(method)}",path="{_escape(path)}",'
                             f'status="{status}"}} {n}')
            lines += ["# HELP clfbench_texts_classified_total Texts classified by the model",
                      "# TYPE clfbench_texts_classified_total counter",
                      f"clfbench_texts_classified_total {self.texts}",
                      "# HELP clfbench_queue_pending Requests waiting for the model",
                      "# TYPE clfbench_queue_pending gauge", f"clfbench_queue_pending {pending}"]
            for h in (self.latency, self.batch_texts, self.batch_requests, self.model_seconds):
                lines += h.render()
        return "\n".join(lines) + "\n"
