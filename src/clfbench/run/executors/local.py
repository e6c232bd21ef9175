"""The local executors: one run at a time in this process's thread, or a pool of spawned
worker processes; and the `Executor` interface every executor (`executors.ray` too) implements."""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from clfbench.data.splits import TaskSplits
from clfbench.errors import ClfbenchError
from clfbench.run.config import RunSpec
from clfbench.run.executors.timing import TIMING_LOCK_ENV, node_lock_path

#: Test hook: a marker file path; a run whose marker is missing creates it and dies at once
#: (`os._exit`), as a worker killed mid-run would. The retry finds the marker and completes.
CRASH_ONCE_ENV = "CLFBENCH_TEST_CRASH_ONCE"


@dataclass
class Job:
    """One claimed run handed to an executor; `scratch` receives its model (local workers)."""

    spec: RunSpec
    splits: TaskSplits
    quiet: bool
    scratch: str | None = None


Outcome = tuple[Job, Any]  # (job, RunResult or the exception it raised)


class Executor(ABC):
    """Computes jobs; the driver submits at most `capacity` at a time and saves the results."""

    name: str = ""
    capacity: int = 1

    def __enter__(self) -> Executor:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:  # noqa: B027 - optional: executors with nothing to start
        """Start the workers (called when the grid starts, after its input was checked)."""

    def close(self) -> None:  # noqa: B027 - optional: executors with nothing to free
        """Stop whatever still runs (after an error or Ctrl-C) and free the workers."""

    @abstractmethod
    def submit(self, job: Job) -> None: ...

    @abstractmethod
    def wait(self) -> list[Outcome]:
        """Block until at least one submitted job is finished; those jobs and their outcomes."""

    @abstractmethod
    def running(self) -> int:
        """Jobs computing now (the rest of the submitted ones wait for a slot)."""


class SequentialExecutor(Executor):
    """One run at a time in the calling thread (`worker.run_one`: a fresh process per run
    unless `isolate` is False; None: CLFBENCH_ISOLATE decides). Ctrl-C stops the run at once."""

    name = "local"

    def __init__(self, isolate: bool | None = None) -> None:
        self.isolate = isolate
        self._done: list[Outcome] = []

    def submit(self, job: Job) -> None:
        from clfbench.run import worker

        try:
            isolate = worker.isolate_default() if self.isolate is None else self.isolate
            result = worker.run_one(job.spec, job.splits, job.quiet, isolate, job.scratch)
        except Exception as e:  # noqa: BLE001 - handed to the driver, which stops the grid
            result = e
        self._done.append((job, result))

    def wait(self) -> list[Outcome]:
        done, self._done = self._done, []
        return done

    def running(self) -> int:
        return 0


class LocalPoolExecutor(Executor):
    """`workers` runs side by side on this machine, each in its own spawned process
    (`worker.execute_in_worker`, driven by one thread per slot), with exclusive timings."""

    name = "local"

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ClfbenchError(f"--workers={workers} (expected a value >= 1)")
        self.capacity = workers
        self._futures: dict[cf.Future, Job] = {}

    def open(self) -> None:
        self._pool = cf.ThreadPoolExecutor(max_workers=self.capacity, thread_name_prefix="clfbench-run")
        self._env_before = os.environ.get(TIMING_LOCK_ENV)
        os.environ[TIMING_LOCK_ENV] = node_lock_path()  # inherited by the spawned workers

    def submit(self, job: Job) -> None:
        from clfbench.run import worker

        future = self._pool.submit(worker.run_one, job.spec, job.splits, job.quiet, True, job.scratch)
        self._futures[future] = job

    def wait(self) -> list[Outcome]:
        done, _ = cf.wait(self._futures, return_when=cf.FIRST_COMPLETED)
        out = []
        for f in done:
            job = self._futures.pop(f)
            out.append((job, f.exception() or f.result()))
        return out

    def running(self) -> int:
        return sum(f.running() for f in self._futures)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if any(not f.done() for f in self._futures):  # Ctrl-C: stop the runs still computing
            from clfbench.run.worker import WORKER_NAME

            for proc in multiprocessing.active_children():
                if proc.name.startswith(WORKER_NAME):
                    proc.terminate()
        if self._env_before is None:
            os.environ.pop(TIMING_LOCK_ENV, None)
        else:
            os.environ[TIMING_LOCK_ENV] = self._env_before


def crash_once(marker: str | None) -> None:
    """The test hook of CRASH_ONCE_ENV: die without a word the first time `marker` is seen."""
    if marker and not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
        os._exit(1)
