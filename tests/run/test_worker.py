"""A run's worker process: results and errors come back, crashes and interruptions are clean."""

import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest

from clfbench.errors import ClfbenchError
from clfbench.run.config import RunSpec
from clfbench.run.prepare import load_data
from clfbench.run.worker import RemoteTraceback, WorkerCrashed, call_in_fresh_process


def workers(parent: psutil.Process | None = None) -> list[psutil.Process]:
    """Spawned workers of `parent` (not multiprocessing's resource tracker)."""
    out = []
    for child in (parent or psutil.Process()).children():
        try:
            if "spawn_main" in " ".join(child.cmdline()):
                out.append(child)
        except psutil.NoSuchProcess:
            pass
    return out


def wait_for_worker(parent: psutil.Process, timeout: float = 120) -> psutil.Process:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = workers(parent)
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError("no worker process started")


def test_runs_in_another_process_and_its_stderr_reaches_the_console(capfd):
    assert call_in_fresh_process(os.getpid) != os.getpid()
    call_in_fresh_process(os.write, 2, b"epoch 1/3\n")
    assert "epoch 1/3" in capfd.readouterr().err


def test_bad_input_in_the_worker_is_the_same_one_line_error(tmp_path):
    spec = RunSpec(method="tfidf-lr", train_file=str(tmp_path / "missing.csv"))
    with pytest.raises(ClfbenchError, match="missing.csv: file not found") as e:
        call_in_fresh_process(load_data, spec)
    assert type(e.value) is ClfbenchError and e.value.exit_code == 2


def test_other_errors_come_back_with_the_workers_traceback():
    with pytest.raises(ValueError, match="invalid literal") as e:
        call_in_fresh_process(int, "not a number")
    assert isinstance(e.value.__cause__, RemoteTraceback)
    assert "Traceback" in str(e.value.__cause__)


def test_a_crashed_worker_is_reported_as_such():
    with pytest.raises(WorkerCrashed, match="killed by SIGABRT.*nothing was written") as e:
        call_in_fresh_process(os.abort)
    assert e.value.exit_code == 1


def test_ctrl_c_while_the_worker_starts_stops_it(monkeypatch):
    """SIGINT arriving inside `Process.start` (CI saw it: the handle was lost and the worker
    left running) is held until the worker can be stopped."""
    real = multiprocessing.context.SpawnProcess.start

    def start_interrupted(self):
        real(self)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)  # Python runs the handler here, inside start

    monkeypatch.setattr(multiprocessing.context.SpawnProcess, "start", start_interrupted)
    try:
        with pytest.raises(KeyboardInterrupt):
            call_in_fresh_process(time.sleep, 600)
        assert workers() == []
    finally:  # a left-over worker would hold up the test process's exit for 10 minutes
        for w in workers():
            w.kill()


def test_ctrl_c_in_the_driver_stops_the_worker():
    seen: list[psutil.Process] = []

    def interrupt():
        seen.append(wait_for_worker(psutil.Process()))
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        call_in_fresh_process(time.sleep, 600)
    assert seen and not seen[0].is_running()
    assert workers() == []


def test_a_worker_whose_driver_is_killed_exits(tmp_path):
    driver_code = (
        "import time\n"
        "from clfbench.run.worker import call_in_fresh_process\n"
        "if __name__ == '__main__':\n"
        "    call_in_fresh_process(time.sleep, 600)\n"
    )
    driver = subprocess.Popen([sys.executable, "-c", driver_code], env={**os.environ, "TMPDIR": str(tmp_path)})
    worker = None
    try:
        worker = wait_for_worker(psutil.Process(driver.pid))
        driver.kill()
        driver.wait()
        gone, alive = psutil.wait_procs([worker], timeout=30)
        assert alive == [], "the worker outlived its killed driver"
        assert list(tmp_path.glob("clfbench-job-*")) == []  # the worker removed the job it read
    finally:
        driver.kill()
        if worker is not None and worker.is_running():
            worker.kill()


def test_a_worker_killed_while_it_starts_is_a_crash_within_seconds(tmp_path):
    """The OOM killer taking the worker before it read its job (~200 KB, more than a pipe
    holds) left the caller blocked for ever writing it, Ctrl-C ignored. Here the worker's
    'python' is a script that SIGKILLs itself before reading anything."""
    killed = tmp_path / "killed-at-start"
    killed.write_text("#!/bin/sh\nkill -9 $$\n")
    killed.chmod(0o755)
    driver_code = f"""
import multiprocessing, pickle, sys, time
from importlib import resources
from clfbench.run.config import RunSpec
from clfbench.run.prepare import load_data
from clfbench.run.worker import WorkerCrashed, execute_in_worker

if __name__ == "__main__":
    demo = resources.files("clfbench") / "demo_data"
    spec = RunSpec(method="tfidf-lr", train_file=str(demo / "train.csv"),
                   validation_file=str(demo / "validation.csv"), test_file=str(demo / "test.csv"))
    splits = load_data(spec)
    assert len(pickle.dumps((spec, splits))) > 150_000  # more than the 64 KB a pipe holds
    multiprocessing.set_executable({str(killed)!r})
    start = time.monotonic()
    try:
        execute_in_worker(spec, splits, quiet=True)
    except WorkerCrashed as e:
        print(f"WorkerCrashed after {{time.monotonic() - start:.1f}} s: {{e}}", flush=True)
        sys.exit(0)
    sys.exit("no error")
"""
    try:
        done = subprocess.run([sys.executable, "-c", driver_code], capture_output=True, text=True,
                              timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("the caller hung on a worker killed while it started")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "killed by SIGKILL (out of memory?)" in done.stdout
    assert float(done.stdout.split("after ")[1].split(" s")[0]) < 30
