import io
import json
import multiprocessing
import os
import socket
import sqlite3
import time
from pathlib import Path

import pytest
from rich.console import Console

from clfbench.errors import ClfbenchError
from clfbench.results.store import Store, incomplete_reason
from clfbench.run.config import RunSpec
from clfbench.run.evaluate import RunResult

DEMO = Path(__file__).resolve().parents[2] / "src" / "clfbench" / "demo_data"


def result(seed=1, acc=0.5):
    spec = RunSpec(method="tfidf-lr", task="sst2", seed=seed)
    return RunResult(spec, {"accuracy": acc, "macro_f1": acc}, [{"id": "0", "gold": "a", "pred": "a"}],
                     {"spec": spec.identity()})


def test_save_is_indexed_and_complete(tmp_path):
    store = Store(tmp_path)
    r = result()
    folder = store.save(r)
    assert (folder / "metrics.json").is_file()
    assert (folder / "predictions.jsonl").read_text().count("\n") == 1
    assert store.is_complete(r.spec.hash())
    [row] = store.runs()
    assert row["accuracy"] == 0.5 and row["run_id"] == folder.name
    assert not any((tmp_path / ".partial").iterdir())


def test_failure_while_writing_leaves_nothing_complete(tmp_path, monkeypatch):
    store = Store(tmp_path)
    r = result()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr("clfbench.results.store.Path.rename", boom)
    with pytest.raises(RuntimeError):
        store.save(r)
    assert not store.is_complete(r.spec.hash())
    assert not (tmp_path / r.spec.run_id()).exists()
    assert store.runs() == [] and not any((tmp_path / ".partial").iterdir())


def test_folder_without_metrics_is_not_complete(tmp_path):
    store = Store(tmp_path)
    r = result()
    folder = store.save(r)
    (folder / "metrics.json").unlink()
    assert not store.is_complete(r.spec.hash())


def test_runs_of_a_folder_without_index_is_a_clear_error(tmp_path):
    with pytest.raises(ClfbenchError, match="index.sqlite"):
        Store(tmp_path).runs()


def test_numpy_values_are_written_as_json(tmp_path):
    import numpy as np

    r = result()
    r.metrics["n"] = np.int64(3)
    folder = Store(tmp_path).save(r)
    assert json.loads((folder / "metrics.json").read_text())["n"] == 3


# --- concurrent writers -------------------------------------------------------------------
FORK = multiprocessing.get_context("fork")


def _join_all(procs, timeout: float = 120.0) -> list[int]:
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.1, deadline - time.monotonic()))
    codes = []
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join()
        codes.append(p.exitcode)
    return codes


def _saver(root: str, worker: int, n: int, start, errors) -> None:
    start.wait(30)
    failed = []
    for i in range(n):
        try:
            folder = Store(root).save(result(seed=i, acc=worker / 10))
            assert (folder / "metrics.json").is_file()
        except Exception as e:  # noqa: BLE001 - counted and reported by the test
            failed.append(f"{type(e).__name__}: {e}")
    errors.put((worker, failed))


def test_concurrent_saves_all_succeed_and_index_stays_consistent(tmp_path):
    """4 processes x 40 saves of the same 40 runs: every save succeeds, one result per run."""
    start, errors = FORK.Barrier(4), FORK.Queue()
    procs = [FORK.Process(target=_saver, args=(str(tmp_path), w, 40, start, errors)) for w in range(4)]
    for p in procs:
        p.start()
    assert _join_all(procs) == [0, 0, 0, 0]
    failed = dict(errors.get(timeout=5) for _ in procs)
    assert failed == {w: [] for w in range(4)}
    store = Store(tmp_path)
    runs = store.runs()
    assert sorted(r["seed"] for r in runs) == list(range(40))
    for r in runs:  # each indexed folder is whole, and its metrics are one writer's
        folder = tmp_path / r["run_id"]
        assert json.loads((folder / "metrics.json").read_text())["accuracy"] == r["accuracy"]
        assert (folder / "predictions.jsonl").read_text().count("\n") == 1
        assert store.is_complete(result(seed=r["seed"]).spec.hash())
    assert not any((tmp_path / ".partial").iterdir())
    names = {p.name for p in tmp_path.iterdir() if not p.name.startswith("index.sqlite")}
    assert names == {".partial", *(r["run_id"] for r in runs)}  # nothing moved aside is left


def test_a_second_writer_does_not_clobber_a_complete_run(tmp_path):
    first, second = Store(tmp_path), Store(tmp_path)
    folder = first.save(result(acc=0.5))
    assert second.save(result(acc=0.9)) == folder
    assert json.loads((folder / "metrics.json").read_text())["accuracy"] == 0.5
    assert [r["accuracy"] for r in first.runs()] == [0.5]


def test_a_leftover_folder_that_is_not_indexed_is_replaced(tmp_path):
    r = result(acc=0.7)
    (tmp_path / r.spec.run_id()).mkdir(parents=True)
    (tmp_path / r.spec.run_id() / "stale.txt").write_text("from a killed writer")
    folder = Store(tmp_path).save(r)
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "metrics.json", "predictions.jsonl"]


def test_a_read_only_results_folder_can_be_read(tmp_path, monkeypatch):
    """WAL readers need to create index.sqlite-shm; a read-only copy is opened immutable."""
    Store(tmp_path / "runs").save(result())
    real = os.access
    monkeypatch.setattr("clfbench.results.store.os.access", lambda p, mode: real(p, mode) and not mode & os.W_OK)
    assert [r["seed"] for r in Store(tmp_path / "runs").runs()] == [1]
    with pytest.raises(ClfbenchError, match="not writable"):
        Store(tmp_path / "runs").check_writable()


def test_incomplete_result_is_kept_aside_and_not_indexed(tmp_path):
    store = Store(tmp_path)
    r = result()
    r.metrics["inference_info"] = {"incomplete": "3 of 10 requests failed"}
    folder = store.save(r)
    assert folder == tmp_path / ".incomplete" / r.spec.run_id()
    assert (folder / "metrics.json").is_file() and not (tmp_path / r.spec.run_id()).exists()
    assert not store.is_complete(r.spec.hash()) and store.runs() == []
    assert incomplete_reason(r.metrics) == "3 of 10 requests failed"
    assert store.claim(r.spec.hash())  # a re-run computes it again


def test_claims_exclude_other_live_workers_until_released(tmp_path):
    a, b = Store(tmp_path), Store(tmp_path)
    h = result().spec.hash()
    assert a.claim(h, "run-1") and a.claim(h)  # claiming again is fine for the owner
    host, pid, tag = a.claim_owner(h).rsplit(":", 2)
    assert host == socket.gethostname() and int(pid) == os.getpid() and tag
    assert not b.claim(h)  # a live worker holds it (same pid, another Store: still another worker)
    a.release(h)
    assert a.claim_owner(h) is None and b.claim(h)
    b.release(h)
    done = Store(tmp_path)
    done.save(result())
    assert not done.claim(h)  # complete runs are never claimed


def _claim_and_die(root: str, spec_hash: str) -> None:
    assert Store(root).claim(spec_hash)
    os._exit(0)  # no release: as if killed


def test_claim_of_a_dead_process_is_taken_over(tmp_path):
    h = result().spec.hash()
    p = FORK.Process(target=_claim_and_die, args=(str(tmp_path), h))
    p.start()
    assert _join_all([p], 30) == [0]
    store = Store(tmp_path)
    assert store.claim_owner(h).split(":")[1] == str(p.pid)
    assert store.claim(h) and store.claim_owner(h) == store.owner


def test_claim_of_an_exited_unreaped_process_is_taken_over(tmp_path):
    """A zombie (exited, its parent has not reaped it yet) answers kill(pid, 0): its claim
    looked live for 10 minutes, until its heartbeat went stale."""
    from multiprocessing.connection import wait

    h = result().spec.hash()
    p = FORK.Process(target=_claim_and_die, args=(str(tmp_path), h))
    p.start()
    assert wait([p.sentinel], 30)  # exited; not joined, so a zombie
    store = Store(tmp_path)
    assert store.claim_owner(h).split(":")[1] == str(p.pid)
    assert store.live_claim_owner(h) is None
    assert store.claim(h) and store.claim_owner(h) == store.owner
    p.join()


def test_heartbeat_keeps_a_claim_and_a_silent_one_goes_stale(tmp_path):
    h = result().spec.hash()
    holder = Store(tmp_path, heartbeat_s=0.05)
    other = Store(tmp_path, stale_after_s=0.5)
    assert holder.claim(h)
    time.sleep(0.8)
    assert not other.claim(h)  # refreshed by the heartbeat: still live
    holder._beat_stop.set()  # a worker on another host that stopped beating
    with sqlite3.connect(tmp_path / "index.sqlite") as con:
        con.execute("UPDATE claims SET owner = 'elsewhere:1:abc'")
    time.sleep(0.8)
    assert other.claim(h) and other.claim_owner(h) == other.owner


# --- two `run_grid` processes on one folder ------------------------------------------------
def write_tiny_data(d: Path) -> list[str]:
    """Tiny train/validation/test CSVs (2 classes); returns the --train/--validation/--test flags."""
    rows = [("good great fine film " + str(i), "pos") if i % 2 else ("bad awful poor film " + str(i), "neg")
            for i in range(48)]
    flags = []
    for name, part in (("train", rows[:24]), ("validation", rows[24:36]), ("test", rows[36:])):
        path = d / f"{name}.csv"
        path.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in part))
        flags += [f"--{name}", str(path)]
    return flags


def tiny_grid(d: Path, seeds) -> Path:
    """A grid file of tfidf-lr runs on the tiny data, one per seed."""
    flags = write_tiny_data(d)
    files = dict(zip(flags[::2], flags[1::2]))
    grid = d / "grid.yaml"
    grid.write_text(f"""
tasks: [{{name: tiny, train_file: {files['--train']}, validation_file: {files['--validation']},
          test_file: {files['--test']}}}]
methods: [{{name: tfidf-lr, params: {{C: 1.0}}}}]
seeds: {list(seeds)}
latency_examples: 3
""")
    return grid


def count_runs(monkeypatch_or_module, log: Path, delay: float = 0.0) -> None:
    """Make `worker.execute` append each computed run's seed to `log` (then sleep `delay`)."""
    import clfbench.run.worker as worker

    real = worker.execute

    def counted(spec, *a, **k):
        with open(log, "a") as f:
            f.write(f"{spec.seed}\n")
        time.sleep(delay)
        return real(spec, *a, **k)

    monkeypatch_or_module.setattr(worker, "execute", counted)


def _grid_worker(grid: str, out: str, log: str, start) -> None:
    import sys

    from clfbench.cli import main

    count_runs(pytest.MonkeyPatch(), Path(log), 0.3)  # long enough for the other process to meet this claim
    start.wait(30)
    sys.exit(main(["run", grid, "--out", out, "-q"]))


def test_two_cli_processes_on_one_folder_both_exit_0_computing_each_run_once(tmp_path, monkeypatch):
    """Issue 21: the process that met the other's claims exited 1 ("claimed by another process")."""
    import clfbench.run.runner as runner

    monkeypatch.setenv("CLFBENCH_ISOLATE", "0")  # runs in these processes (execute is counted)
    monkeypatch.setattr(runner, "WAIT_POLL_S", 0.1)
    grid = tiny_grid(tmp_path, range(1, 7))
    out, log, start = tmp_path / "runs", tmp_path / "computed.txt", FORK.Barrier(2)
    procs = [FORK.Process(target=_grid_worker, args=(str(grid), str(out), str(log), start))
             for _ in range(2)]
    for p in procs:
        p.start()
    assert _join_all(procs) == [0, 0]
    assert sorted(int(s) for s in log.read_text().split()) == [1, 2, 3, 4, 5, 6]
    assert sorted(r["seed"] for r in Store(out).runs()) == [1, 2, 3, 4, 5, 6]


def _hold_claim(grid: str, out: str, seed: int, others: list[int], ready, abandon: bool) -> None:
    """Another process: claim the run of `seed`, wait until the grid has computed `others`, then
    compute and save it (or, `abandon`, die holding the claim, as if killed)."""
    from clfbench.run.config import load_grid
    from clfbench.run.evaluate import execute
    from clfbench.run.runner import _load_all, splits_for

    specs = {s.seed: s for s in load_grid(grid)[0]}
    spec, store = specs[seed], Store(out)
    assert store.claim(spec.hash(), spec.run_id())
    ready.set()
    deadline = time.monotonic() + 60
    while not all(store.is_complete(specs[s].hash()) for s in others) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # the grid is now waiting (it used to give up here and exit 1)
    if abandon:
        os._exit(0)
    result = execute(spec, splits_for(spec, _load_all([spec])), quiet=True)
    result.metrics["computed_by"] = "holder"
    store.save(result)
    store.release(spec.hash())


@pytest.mark.parametrize("abandon", [False, True], ids=["completed", "abandoned"])
def test_grid_waits_for_a_run_claimed_by_another_live_process(tmp_path, monkeypatch, capsys, abandon):
    """The grid waits for the other process's run, says so, and exits 0 with every run
    complete; a claim abandoned by a killed process is taken over and computed here."""
    import clfbench.run.runner as runner
    from clfbench.cli import main

    monkeypatch.setenv("CLFBENCH_ISOLATE", "0")
    monkeypatch.setattr(runner, "WAIT_POLL_S", 0.1)
    grid, out, log = tiny_grid(tmp_path, (1, 2, 3)), tmp_path / "runs", tmp_path / "computed.txt"
    ready = FORK.Event()
    holder = FORK.Process(target=_hold_claim, args=(str(grid), str(out), 1, [2, 3], ready, abandon))
    holder.start()
    try:
        assert ready.wait(60)
        count_runs(monkeypatch, log)
        assert main(["run", str(grid), "--out", str(out)]) == 0
    finally:
        assert _join_all([holder], 60) == [0]
    err = " ".join(capsys.readouterr().err.split())  # unwrapped
    who = f"another process (pid {holder.pid} on {socket.gethostname()})"
    assert f"claimed by {who}: waiting for it" in err
    assert f"waiting for 1 run(s) claimed by {who}: tiny / tfidf-lr / seed 1" in err
    assert err.count("waiting for 1 run(s)") == 1  # printed when the set changes, not at every poll
    runs = {r["seed"]: r for r in Store(out).runs()}
    assert sorted(runs) == [1, 2, 3]
    with sqlite3.connect(out / "index.sqlite") as con:
        assert con.execute("SELECT owner FROM claims").fetchall() == []  # every claim released
    if abandon:  # taken over: computed here, once
        assert f"{who} left tiny / tfidf-lr / seed 1 unfinished" in err and "running it here" in err
        assert sorted(int(s) for s in log.read_text().split()) == [1, 2, 3]
        assert "computed_by" not in runs[1]
    else:  # computed by the other process only
        assert f"done by {who}: tiny / tfidf-lr / seed 1" in err and "running it here" not in err
        assert sorted(int(s) for s in log.read_text().split()) == [2, 3]
        assert runs[1]["computed_by"] == "holder"


def test_grid_with_free_slots_waits_for_another_worker_and_ctrl_c_stops_the_wait(tmp_path, monkeypatch):
    """With several slots (`--workers N`) the driver waits the same way; Ctrl-C while
    waiting stops the grid and leaves the other worker's claim alone."""
    import threading

    import clfbench.run.runner as runner
    from clfbench.run.config import load_grid
    from clfbench.run.executors import SequentialExecutor

    class TwoSlots(SequentialExecutor):
        capacity = 2

    monkeypatch.setattr(runner, "WAIT_POLL_S", 0.05)
    specs = load_grid(tiny_grid(tmp_path, (1, 2, 3)))[0]
    out, other = tmp_path / "runs", Store(tmp_path / "runs")  # another worker (same process)
    assert other.claim(specs[0].hash())

    def finish_after_the_others():
        while not all(other.is_complete(s.hash()) for s in specs[1:]):
            time.sleep(0.05)
        time.sleep(0.3)
        other.save(RunResult(specs[0], {"accuracy": 1.0, "macro_f1": 1.0, "by": "other"},
                             [{"id": "0", "gold": "pos", "pred": "pos"}], {"spec": specs[0].identity()}))
        other.release(specs[0].hash())

    finisher = threading.Thread(target=finish_after_the_others, daemon=True)
    finisher.start()
    buf = io.StringIO()
    runner.run_grid(specs, out, console=Console(file=buf, width=400), executor=TwoSlots(False))
    finisher.join(30)
    err = buf.getvalue()
    assert "1 waiting for another process" in err and err.count("waiting for 1 run(s) claimed by") == 1
    assert {r["seed"]: r.get("by") for r in Store(out).runs()} == {1: "other", 2: None, 3: None}

    more = load_grid(tiny_grid(tmp_path, (4, 5)))[0]
    assert other.claim(more[0].hash())

    real_sleep = time.sleep

    def interrupt(seconds):  # Ctrl-C during the grid's wait (the runs' own sleeps go on)
        if seconds == runner.WAIT_POLL_S:
            raise KeyboardInterrupt
        real_sleep(seconds)

    monkeypatch.setattr(runner, "WAIT_POLL_S", 0.0517)
    monkeypatch.setattr(runner.time, "sleep", interrupt)
    with pytest.raises(KeyboardInterrupt):
        runner.run_grid(more, out, quiet=True, executor=TwoSlots(False))
    assert Store(out).is_complete(more[1].hash()) and not Store(out).is_complete(more[0].hash())
    assert other.claim_owner(more[0].hash()) == other.owner  # still the other worker's
    other.release(more[0].hash())


# --- unusable folders and corrupted files: one line, exit 2, no traceback ------------------
@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A results folder with one tfidf-lr run saved with its model."""
    from clfbench.cli import main

    d = tmp_path_factory.mktemp("saved")
    out = d / "runs"
    assert main(["run", "--method", "tfidf-lr", *write_tiny_data(d), "--name", "tiny",
                 "--latency-examples", "2", "--save-model", "--out", str(out), "-q"]) == 0
    return out


@pytest.fixture
def runs_copy(saved_run, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(saved_run, tmp_path / "runs"))


def run_folder(out: Path) -> Path:
    return next(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))


def cli_error(capsys, *args: str) -> str:
    """Run the CLI expecting a one-line error with exit 2; returns the line."""
    from clfbench.cli import main

    rc = main(list(args))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("clfbench: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("where", ["file", "under_file", "read_only"])
def test_unusable_out_fails_before_any_work(tmp_path, capsys, monkeypatch, where):
    import clfbench.run.worker as worker

    monkeypatch.setattr(worker, "execute", lambda *a, **k: pytest.fail("computed before checking --out"))
    monkeypatch.setenv("CLFBENCH_ISOLATE", "0")
    (tmp_path / "file.txt").write_text("not a folder")
    out = {"file": tmp_path / "file.txt", "under_file": tmp_path / "file.txt" / "sub",
           "read_only": tmp_path / "ro" / "runs"}[where]
    if where == "read_only":
        if os.geteuid() == 0:
            pytest.skip("root can write into read-only folders")
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
    err = cli_error(capsys, "run", "--method", "tfidf-lr", *write_tiny_data(tmp_path),
                    "--out", str(out), "-q")
    assert str(out) in err


def test_garbage_index_is_a_clear_error(runs_copy, capsys):
    (runs_copy / "index.sqlite").write_bytes(b"this is not a database" * 100)
    for cmd in (["results", str(runs_copy)], ["report", str(runs_copy), "--out", str(runs_copy / "rep")]):
        assert "index.sqlite" in cli_error(capsys, *cmd)
    err = cli_error(capsys, "run", "--method", "tfidf-lr", *write_tiny_data(runs_copy.parent),
                    "--out", str(runs_copy), "-q")
    assert "index.sqlite" in err


@pytest.mark.parametrize("name", ["metrics.json", "config.json"])
def test_garbage_run_files_are_clear_errors(runs_copy, capsys, name):
    path = run_folder(runs_copy) / name
    path.write_text(path.read_text()[:40])  # truncated
    if name == "metrics.json":
        assert str(path) in cli_error(capsys, "results", str(runs_copy))
    assert str(path) in cli_error(capsys, "report", str(runs_copy), "--out", str(runs_copy / "rep"))


def test_report_on_a_missing_folder_creates_nothing(tmp_path, capsys):
    missing = tmp_path / "nope"
    assert str(missing) in cli_error(capsys, "report", str(missing))
    assert not missing.exists()


@pytest.mark.parametrize("damage", ["truncated_model", "garbage_model", "broken_method_json",
                                    "method_json_not_an_object"])
def test_corrupted_saved_model_is_a_clear_error(runs_copy, capsys, damage):
    model = run_folder(runs_copy) / "model"
    target = {"truncated_model": "pipeline.skops", "garbage_model": "pipeline.skops",
              "broken_method_json": "method.json", "method_json_not_an_object": "method.json"}[damage]
    path = model / target
    data = path.read_bytes()
    path.write_bytes({"truncated_model": data[: len(data) // 2], "garbage_model": os.urandom(300),
                      "broken_method_json": data[:-10], "method_json_not_an_object": b"[1, 2]"}[damage])
    err = cli_error(capsys, "predict", "--run", str(run_folder(runs_copy)), "--text", "good film")
    assert str(path) in err


def test_remove_if_empty_takes_only_a_folder_with_nothing_kept(tmp_path):
    """What a failed grid may remove: an index with no run and no claim, nothing else."""
    empty = Store(tmp_path / "empty")
    empty.claim("h1")
    empty.release("h1")  # the index exists, its claim released
    assert empty.remove_if_empty() and not (tmp_path / "empty").exists()

    with_run = Store(tmp_path / "with-run")
    with_run.save(result())
    assert not with_run.remove_if_empty() and len(with_run.runs()) == 1

    claimed = Store(tmp_path / "claimed")
    claimed.claim("h2")  # another process's run in progress
    assert not claimed.remove_if_empty() and claimed.index_path.exists()
    claimed.release("h2")

    other = Store(tmp_path / "other")
    other.claim("h3")
    other.release("h3")
    (other.root / "notes.txt").write_text("the user's")
    assert not other.remove_if_empty() and (other.root / "notes.txt").exists()


def test_a_failed_grid_leaves_a_folder_it_did_not_create(tmp_path, monkeypatch):
    from clfbench.run import runner

    def failing(todo, data, store, *a, **k):  # a run claimed, then failed in its fit
        store.claim(todo[0].hash())
        store.release(todo[0].hash())
        assert store.index_path.exists()
        raise ClfbenchError("the run failed")

    monkeypatch.setattr(runner, "_drive", failing)
    spec = RunSpec(method="tfidf-lr", name="t", train_file=str(DEMO / "train.csv"),
                   test_file=str(DEMO / "test.csv"))
    for out, kept in ((tmp_path / "new", False), (tmp_path / "existing", True)):
        if kept:
            out.mkdir()
        with pytest.raises(ClfbenchError):
            runner.run_grid([spec], out, quiet=True, isolate=False)
        assert out.exists() == kept


def test_a_full_disk_mid_save_is_one_line_and_leaves_no_half_written_run(tmp_path, monkeypatch, capsys):
    """ENOSPC while the second run was saved used to end in `OSError: [Errno 28]` and a traceback."""
    import errno

    from clfbench.cli import main
    from clfbench.results import store as store_module

    monkeypatch.setenv("CLFBENCH_ISOLATE", "0")
    grid, out = tiny_grid(tmp_path, [1, 2]), tmp_path / "runs"
    real, saved = store_module._write_json, []

    def write_json(path, payload):
        if path.name == "metrics.json":
            saved.append(path)
            if len(saved) == 2:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real(path, payload)

    monkeypatch.setattr(store_module, "_write_json", write_json)
    assert main(["run", str(grid), "--out", str(out), "-q"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    assert lines[0].startswith(f"clfbench: error: {out}: cannot save run ")
    assert "No space left on device (free some space and run again" in lines[0]
    store = Store(out)
    assert len(store.runs()) == 1 and not any((out / ".partial").iterdir())
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == sorted(
        [store.runs()[0]["run_id"], "index.sqlite"])
    monkeypatch.setattr(store_module, "_write_json", real)
    assert main(["run", str(grid), "--out", str(out), "-q"]) == 0
    assert len(Store(out).runs()) == 2


@pytest.mark.parametrize("field, value", [
    ("accuracy", "high"), ("macro_f1", [0.5]), ("n_train", "many"), ("latency_ms_p50", True),
    ("train_seconds", {"s": 1}), ("splits", "train"), ("fit_info", [1, 2]),
])
def test_metrics_with_wrong_types_are_one_line(runs_copy, capsys, field, value):
    """A metrics.json edited or damaged into the wrong types used to end `results` in a
    traceback (a format code on a string, int() of a word, .get on a list)."""
    path = run_folder(runs_copy) / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics[field] = value
    path.write_text(json.dumps(metrics))
    for fmt in ("table", "markdown", "csv"):
        err = cli_error(capsys, "results", str(runs_copy), "--format", fmt)
        assert f"{path}: field {field!r} is {value!r} (expected" in err, err


@pytest.mark.parametrize("index", ["empty", "other_sqlite"])
def test_an_empty_or_foreign_index_is_an_error_not_an_empty_table(runs_copy, capsys, index):
    """A 0-byte index.sqlite (a full disk, a bad copy) used to show an empty table, exit 0."""
    path = runs_copy / "index.sqlite"
    for extra in ("-wal", "-shm"):
        (runs_copy / f"index.sqlite{extra}").unlink(missing_ok=True)
    path.unlink()
    if index == "empty":
        path.write_bytes(b"")
    else:
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE notes (x)")
        con.commit()
        con.close()
    expected = "empty (0 bytes)" if index == "empty" else "not a clfbench index (no runs table)"
    for cmd in (["results", str(runs_copy)], ["report", str(runs_copy), "--out", str(runs_copy / "rep")]):
        err = cli_error(capsys, *cmd)
        assert f"{path}: {expected}" in err, err
    assert not (runs_copy / "rep").exists()


def test_orphaned_partial_folders_are_cleaned_and_a_live_writers_kept(tmp_path, monkeypatch):
    """A save cut short by SIGKILL left `.partial/<run>.<uuid>/` behind for ever."""
    import subprocess
    import sys

    from clfbench.run.runner import run_grid

    monkeypatch.setenv("CLFBENCH_ISOLATE", "0")
    out = tmp_path / "runs"
    store = Store(out)
    store.save(result())
    partial = out / ".partial"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        host = socket.gethostname()
        folders = {name: partial / f"r-{name}.0123" for name in ("dead", "live", "old", "recent")}
        for folder in folders.values():
            folder.mkdir()
            (folder / "predictions.jsonl").write_text("{}\n")
        (folders["dead"] / ".owner").write_text(f"{host}:{dead}:abc")
        (folders["live"] / ".owner").write_text(f"{host}:{live.pid}:abc")
        os.utime(folders["old"], (time.time() - 7200, time.time() - 7200))  # no owner, 2 h old
        spec = RunSpec(method="tfidf-lr", name="tiny", latency_examples=3,
                       **{f"{k.lstrip('-')}_file": v for k, v in
                          zip(*[iter(write_tiny_data(tmp_path))] * 2)})
        run_grid([spec], out, quiet=True)
        left = sorted(p.name for p in partial.iterdir())
    finally:
        live.kill()
        live.wait()
    assert left == ["r-live.0123", "r-recent.0123"]
    assert not any(p.name == ".owner" for p in out.rglob(".owner") if ".partial" not in str(p))
