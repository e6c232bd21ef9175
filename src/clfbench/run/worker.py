"""Run one configuration in its own fresh process, so that its numbers are its own.

A grid run in one process measures each run on top of the ones before it: peak RSS includes
earlier runs' models, CUDA is initialised by whichever run came first, allocator and thread
pool state carry over. `execute_in_worker` runs `evaluate.execute` in a newly spawned process
(the same unit a distributed executor would schedule) and returns its RunResult.

Failures: a ClfbenchError in the worker is raised again in the caller as it was (one line,
exit 2); any other exception is raised again with the worker's traceback as its cause; a
worker that dies without answering (segfault, out-of-memory kill) raises `WorkerCrashed`.
Ctrl-C in the caller terminates the worker; a worker whose caller is killed exits by itself.
Neither leaves anything in the results store: only the caller writes there.

The job (function and arguments, often hundreds of KB of data) goes to the worker through a
private temporary file, not through `Process.start`: multiprocessing writes the process object
into a pipe whose read end it keeps open itself until the write ends, so a worker killed while
it starts (the OOM killer) would leave that write, and the caller, blocked for ever.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import shutil
import signal
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from clfbench.data.splits import TaskSplits
from clfbench.errors import ClfbenchError
from clfbench.progress import quiet_transformers
from clfbench.run.config import RunSpec
from clfbench.run.evaluate import RunResult, execute

ISOLATION = "process"  # recorded in metrics.json as `isolation`
WORKER_NAME = "clfbench-worker-"  # the name of every worker process, then the function's


class WorkerCrashed(ClfbenchError):
    """The worker process died without returning a result (signal or hard exit)."""

    exit_code = 1


class RemoteTraceback(Exception):
    """The worker's traceback, attached as the cause of an exception raised again here."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)

    def __str__(self) -> str:
        return "\n--- traceback in the worker process ---\n" + self.args[0]


class SavedModel:
    """A model the worker saved to disk; `Store.save` moves it into the run folder."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def save(self, dest: str | Path) -> None:
        shutil.move(str(self.path), str(dest))


def isolate_default() -> bool:
    """A fresh worker process per run unless CLFBENCH_ISOLATE is 0/false/no (debugging)."""
    return os.environ.get("CLFBENCH_ISOLATE", "1").strip().lower() not in ("0", "false", "no")


def run_one(spec: RunSpec, splits: TaskSplits, quiet: bool, isolate: bool,
            scratch: str | Path | None = None) -> RunResult:
    """One run, in a fresh worker process (`isolate`) or in this one; `scratch` receives its model."""
    if isolate:
        return execute_in_worker(spec, splits, quiet, scratch)
    result = execute(spec, splits, quiet=quiet)
    result.metrics["isolation"] = "none"
    return result


def execute_in_worker(spec: RunSpec, splits: TaskSplits, quiet: bool,
                      scratch: str | Path | None = None) -> RunResult:
    """`evaluate.execute` in a fresh process; with `spec.save_model`, the model goes to `scratch`.

    The result's `model` is a `SavedModel` (or None): the fitted model stays in the worker.
    """
    if spec.save_model and scratch is None:
        raise ValueError("execute_in_worker: save_model needs a scratch folder for the model")
    model_dir = Path(scratch) / "model" if spec.save_model else None
    try:
        result = call_in_fresh_process(execute_and_save, spec, splits, quiet, model_dir)
    except WorkerCrashed as e:
        raise WorkerCrashed(f"run {spec.run_id()}: {e}") from None
    result.model = SavedModel(model_dir) if model_dir is not None and model_dir.exists() else None
    result.metrics["isolation"] = ISOLATION
    return result


def execute_and_save(spec: RunSpec, splits: TaskSplits, quiet: bool,
                      model_dir: Path | None) -> RunResult:
    quiet_transformers()  # as the CLI does for a run: no weight-loading reports or bars
    result = execute(spec, splits, quiet=quiet)
    if model_dir is not None and result.model is not None:
        result.model.save(model_dir)
    result.model = None  # stays here: it may not pickle and the caller only needs the files
    return result


def call_in_fresh_process(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """`fn(*args, **kwargs)` in a newly spawned Python process; its return value or its error.

    `fn`, the arguments and the return value must pickle; `fn` must be importable by name.
    The worker inherits stdout/stderr, so its progress output reaches the console.
    """
    ctx = multiprocessing.get_context("spawn")
    job = _write_job(fn, args, kwargs)  # `start` then writes only a few KB: it cannot block
    try:
        receive, send = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_worker_main, args=(send, os.getpid(), job),
                           name=f"{WORKER_NAME}{getattr(fn, '__name__', 'fn')}")
        try:
            with _ctrl_c_deferred():  # a Ctrl-C while starting is raised once `proc` can be stopped
                proc.start()
            send.close()
            wait([receive, proc.sentinel])
            try:
                message = receive.recv() if receive.poll() else None
            except EOFError:
                message = None
            proc.join()
        finally:  # Ctrl-C or any error here: never leave the worker running
            receive.close()
            send.close()
            _stop(proc)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(job)
    if message is None:
        raise WorkerCrashed(f"the worker process died without a result ({_exit_reason(proc.exitcode)}); "
                            "nothing was written for this run")
    status, value, tb = message
    if status == "ok":
        return value
    if isinstance(value, ClfbenchError):
        raise value
    raise value from RemoteTraceback(tb)


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Hold SIGINT back until the block ends, then raise KeyboardInterrupt. Starting a spawned
    process writes its arguments into a pipe; interrupted half-way, the handle of a process
    that exists would be lost and the process left running (main thread only: elsewhere
    Python delivers no signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending and callable(previous):  # the default handler raises KeyboardInterrupt
        previous(signal.SIGINT, None)
    elif pending and previous == signal.SIG_DFL:
        raise KeyboardInterrupt


def _write_job(fn: Callable[..., Any], args: tuple, kwargs: dict) -> str:
    """(fn, args, kwargs) pickled into a new temporary file (readable by this user only); its path."""
    fd, path = tempfile.mkstemp(prefix="clfbench-job-", suffix=".pkl")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump((fn, args, kwargs), f, protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return path


def _worker_main(send: Connection, parent: int, job: str) -> None:
    try:
        try:
            with open(job, "rb") as f:
                fn, args, kwargs = pickle.load(f)
        finally:  # read, then gone: the caller may be killed (SIGKILL) before it cleans up
            with contextlib.suppress(OSError):
                os.unlink(job)
        threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
        message = ("ok", fn(*args, **kwargs), None)
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the caller reports it
        os._exit(130)
    except BaseException as e:  # noqa: B036 - everything goes back to the caller
        message = ("error", e, traceback.format_exc())
    try:
        send.send(message)
    except Exception:  # the exception or value does not pickle: send what can be sent
        status, value, tb = message
        text = f"{type(value).__name__}: {value}"
        send.send((status, ClfbenchError(text) if isinstance(value, ClfbenchError) else RuntimeError(text),
                   tb or traceback.format_exc()))
    send.close()


def _exit_when_orphaned(parent: int, interval: float = 1.0) -> None:
    """Exit when the process that started this worker is gone (e.g. killed with SIGKILL)."""
    while True:
        if os.getppid() != parent:
            os._exit(1)
        threading.Event().wait(interval)


def _stop(proc: multiprocessing.process.BaseProcess) -> None:
    if proc.is_alive():
        proc.terminate()
        proc.join(5)
    if proc.is_alive():  # pragma: no cover - ignores SIGTERM
        proc.kill()
        proc.join()


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return f"exit code {code}"


__all__ = ["ISOLATION", "WORKER_NAME", "SavedModel", "WorkerCrashed", "call_in_fresh_process", "execute_in_worker"]
