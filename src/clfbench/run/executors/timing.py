"""Timing fairness when runs execute side by side: one node-wide lock, shared and exclusive.

A run executed by a concurrent executor (`--workers N`, Ray) holds the node's timing lock
*shared* for its whole life (data, fit, checks) and *exclusive* while it is timed (the
throughput pass and the batch-1 latencies). So while one run is timed, no other run on the
same node computes anything: it neither trains nor is timed, and shares neither CPU slots nor
GPUs with the timed one. Runs still train side by side. The lock is an `flock` on a file in
the node's temporary folder (`CLFBENCH_TIMING_LOCK` names it), so every clfbench process of
every concurrent grid on the node takes part, and a killed process releases it.

Runs executed one at a time (the default local executor) take no lock: nothing else of the
grid runs beside them. Each run records `timing_exclusive` and `timing_exclusive_how` in
metrics.json.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The lock file of the node, set in a worker's environment by concurrent executors.
TIMING_LOCK_ENV = "CLFBENCH_TIMING_LOCK"

SEQUENTIAL_HOW = "runs one at a time (local executor, 1 worker); other processes: see machine_load"


def node_lock_path() -> str:
    """The node-local lock file every concurrent clfbench run on this machine shares."""
    return str(Path(tempfile.gettempdir()) / "clfbench-timing.lock")


class TimingLock:
    """Shared for a run's life, exclusive while it is timed; a no-op without a lock file."""

    def __init__(self, path: str | None = None) -> None:
        self.requested = path if path is not None else os.environ.get(TIMING_LOCK_ENV) or None
        self.path = self.requested
        self._fd: int | None = None
        try:
            import fcntl  # noqa: F401 - POSIX only
        except ImportError:  # pragma: no cover - Windows: no flock
            self.path = None

    @property
    def exclusive(self) -> bool:
        """False only when a concurrent executor asked for the lock and flock is missing."""
        return self.path is not None or self.requested is None

    @property
    def how(self) -> str:
        if self.requested is None:
            return SEQUENTIAL_HOW
        if self.path is None:  # pragma: no cover - Windows
            return "not exclusive: concurrent runs and no flock on this platform"
        return (f"node-wide flock {self.path}: held shared by every concurrent run while it "
                "computes, exclusive while timed")

    @contextmanager
    def run(self) -> Iterator[TimingLock]:
        """Hold the lock shared for the block (a whole run)."""
        if self.path is None:
            yield self
            return
        import fcntl

        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError:  # another user's lock file: flock works on a read-only handle
            self._fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_SH)
            yield self
        finally:
            os.close(self._fd)  # releases the lock
            self._fd = None

    @contextmanager
    def timed(self) -> Iterator[None]:
        """Exclusive for the block; shared again afterwards (call inside `run`)."""
        if self._fd is None:
            yield
            return
        import fcntl

        fcntl.flock(self._fd, fcntl.LOCK_UN)  # never wait for EX while holding SH: no deadlock
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_SH)  # a downgrade: never blocks on other SH holders


__all__ = ["TIMING_LOCK_ENV", "TimingLock", "node_lock_path"]
