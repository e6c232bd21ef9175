"""The results store: one folder per run plus an SQLite index of completed runs.

Safe for any number of concurrent writers (processes, hosts sharing the folder):

- A worker *claims* a run before computing it (`claim`, a row in the index's `claims` table
  inserted inside `BEGIN IMMEDIATE`), so no two workers compute the same run. A claim names
  its owner (`host:pid:uuid`) and is refreshed by a heartbeat thread; a claim whose owner is
  a dead process on this host, or whose heartbeat is older than `stale_after_s`, is taken over.
- A run is written into a folder private to its writer, `DIR/.partial/<run-id>.<uuid>/`, and
  moved into place with one rename, under the index's write lock, only when every file is
  written; the index row is committed in the same transaction. A second writer of a run
  that is already complete discards its copy (the first result stands). A run killed midway
  therefore leaves nothing that looks complete, and a re-run skips exactly the runs whose
  resolved config (hash) is indexed.
- A result that a method marks incomplete (`inference_info()["incomplete"]`, e.g. API
  requests that failed) is kept in `DIR/.incomplete/<run-id>/` for inspection, never
  indexed: a re-run computes it again. What it spent (with what earlier incomplete runs of
  the same configuration spent) is kept there in `spend.json`: the re-run's `budget_usd` is
  what is left (`spent_before`), so a budget bounds a configuration across re-runs.
- The index runs in WAL mode with a busy timeout, so concurrent commits wait, not fail.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import random
import shutil
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from clfbench.errors import ClfbenchError, WriteFailed

log = logging.getLogger(__name__)

INDEX = "index.sqlite"
PARTIAL = ".partial"
PARTIAL_OWNER = ".owner"  # in a folder being written under PARTIAL: the writer's `Store.owner`
INCOMPLETE = ".incomplete"
#: In an incomplete run's folder: what its configuration has spent so far (USD), so that a
#: re-run's budget is what is left of `budget_usd`.
SPEND_FILE = "spend.json"
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    hash TEXT UNIQUE NOT NULL,
    task TEXT, method TEXT, model TEXT, seed INTEGER,
    finished_at REAL,
    metrics TEXT
)
"""
CLAIMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    hash TEXT PRIMARY KEY,
    run_id TEXT,
    owner TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    heartbeat REAL NOT NULL
)
"""
SUMMARY_KEYS = (
    "accuracy", "macro_f1", "mcc", "latency_ms_p50", "latency_ms_p95", "latency_ms_p99",
    "throughput_sps", "peak_memory_mb", "train_seconds",
)
#: How long a connection waits for another writer's lock before giving up.
DB_TIMEOUT_S = 60.0
#: Claims are refreshed this often while held ...
HEARTBEAT_S = 30.0
#: ... and taken over by another worker when not refreshed for this long.
STALE_AFTER_S = 600.0


def config_spend(metrics: dict[str, Any]) -> float | None:
    """USD this configuration has cost so far: the run's spend (settled and uncertain) plus
    what incomplete earlier runs of it spent; None for a run that spends nothing."""
    info = metrics.get("inference_info")
    if not isinstance(info, dict) or info.get("usd_spent") is None:
        return None
    return sum(float(info.get(k) or 0.0) for k in ("usd_spent", "usd_uncertain", "usd_spent_before"))


def incomplete_reason(metrics: dict[str, Any]) -> str | None:
    """Why a result is not a finished run (`metrics["incomplete"]`, or the method's
    `inference_info()["incomplete"]`), or None when it is one."""
    info = metrics.get("inference_info")
    reason = metrics.get("incomplete") or (info.get("incomplete") if isinstance(info, dict) else None)
    return str(reason) if reason else None


#: Fields of metrics.json the tables read, by the JSON type each must have (or null).
NUMBER_FIELDS = (*SUMMARY_KEYS, "n_train")
OBJECT_FIELDS = ("fit_info", "splits", "inference_info")


def check_metric_types(metrics: dict[str, Any], path: Path) -> None:
    """A field of metrics.json with the wrong type (an edited or damaged file) is one line
    naming the file and field, not a traceback where a table formats or sorts it."""
    for key in NUMBER_FIELDS:
        v = metrics.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise ClfbenchError(f"{path}: field {key!r} is {v!r} (expected a number or null)")
    for key in OBJECT_FIELDS:
        v = metrics.get(key)
        if v is not None and not isinstance(v, dict):
            raise ClfbenchError(f"{path}: field {key!r} is {v!r} (expected an object or null)")
    for key in ("train_size", "degenerate"):
        v = metrics.get(key)
        if isinstance(v, (list, dict)):
            raise ClfbenchError(f"{path}: field {key!r} is {v!r} (expected a single value)")


def read_json(path: Path) -> Any:
    """A JSON file of a results folder; a missing, unreadable or broken file is one clear error."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ClfbenchError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ClfbenchError(f"{path}: cannot be read ({type(e).__name__})") from None
    except json.JSONDecodeError as e:
        raise ClfbenchError(
            f"{path}: corrupted (not valid JSON: {e.msg} at line {e.lineno})"
        ) from None


class Store:
    """Run folders under `root` and their index; nothing is created until a run is written."""

    def __init__(self, root: str | Path, *, stale_after_s: float = STALE_AFTER_S,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        self.root = Path(root)
        self.stale_after_s = float(stale_after_s)
        self.heartbeat_s = float(heartbeat_s)
        self._owner: tuple[int, str] | None = None
        self._held: set[str] = set()
        self._held_lock = threading.Lock()
        self._beat_stop = threading.Event()
        self._beat: threading.Thread | None = None

    @property
    def index_path(self) -> Path:
        return self.root / INDEX

    @property
    def owner(self) -> str:
        """`host:pid:uuid` of this Store in this process (a forked child gets its own)."""
        if self._owner is None or self._owner[0] != os.getpid():
            self._owner = (os.getpid(), f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}")
        return self._owner[1]

    # --- checks ---------------------------------------------------------------------------
    def check_writable(self) -> None:
        """Fail at once, in one line, if runs cannot be written under `root` (creates nothing)."""
        target = self.root
        while not target.exists() and target != target.parent:
            target = target.parent
        if not target.is_dir():
            raise ClfbenchError(f"{self.root}: exists and is not a folder; results need a folder"
                                if target == self.root else
                                f"{self.root}: cannot create the results folder: {target} is a file")
        if not os.access(target, os.W_OK | os.X_OK):
            raise ClfbenchError(f"{self.root}: results folder not writable ({target}: permission denied)")
        if self.index_path.exists():
            with self._db() as con:
                _tables(con)  # a garbage index fails here, not after the compute

    def remove_if_empty(self) -> bool:
        """Delete the results folder when it holds nothing but an index without runs or claims
        (a grid that created it and failed before keeping anything); True if it did."""
        if not self.index_path.exists():
            return False
        index_files = {INDEX, f"{INDEX}-wal", f"{INDEX}-shm", f"{INDEX}-journal"}
        others = [p for p in self.root.iterdir() if p.name not in index_files
                  and not (p.is_dir() and not any(p.iterdir()))]  # empty folders (.partial) do not count
        if others:
            return False
        with self._db() as con:
            tables = _tables(con)
            used = any(con.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() for t in ("runs", "claims")
                       if t in tables)
        if used:
            return False
        shutil.rmtree(self.root, ignore_errors=True)
        return True

    # --- the index ------------------------------------------------------------------------
    @contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection to the index; with `write`, inside `BEGIN IMMEDIATE` (committed on success).

        Every sqlite failure (a corrupted file, a lock held past the timeout) becomes one
        ClfbenchError naming the index."""
        try:
            con = self._open(write)
        except sqlite3.Error as e:
            raise self._db_error(e) from None
        try:
            if write:
                con.execute("BEGIN IMMEDIATE")
            yield con
            if write:
                con.execute("COMMIT")
        except sqlite3.Error as e:
            _rollback(con)
            raise self._db_error(e) from None
        except BaseException:
            _rollback(con)
            raise
        finally:
            con.close()

    def _open(self, write: bool) -> sqlite3.Connection:
        if write:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise ClfbenchError(f"{self.root}: cannot create the results folder ({e.strerror})") from None
        elif not os.access(self.root, os.W_OK):
            # A read-only copy: WAL would need to create its -shm file next to the index.
            uri = self.index_path.resolve().as_uri() + "?immutable=1"
            return sqlite3.connect(uri, uri=True, isolation_level=None)
        deadline = time.monotonic() + DB_TIMEOUT_S
        while True:  # WAL switch and schema need a write lock; opening may meet a recovering db
            con = sqlite3.connect(self.index_path, timeout=DB_TIMEOUT_S, isolation_level=None)
            try:
                con.execute(f"PRAGMA busy_timeout = {int(DB_TIMEOUT_S * 1000)}")
                if write:
                    con.execute("PRAGMA journal_mode = WAL")
                    con.execute(SCHEMA)
                    con.execute(CLAIMS_SCHEMA)
                return con
            except sqlite3.OperationalError as e:
                con.close()
                if not _is_busy(e) or time.monotonic() > deadline:
                    raise
                time.sleep(random.uniform(0.01, 0.1))
            except BaseException:
                con.close()
                raise

    def _db_error(self, e: sqlite3.Error) -> ClfbenchError:
        if _is_busy(e):
            return ClfbenchError(f"{self.index_path}: locked by another process for over {DB_TIMEOUT_S:g} s")
        return ClfbenchError(f"{self.index_path}: corrupted or not a clfbench index ({e}); "
                             "move it away to start a new one")

    def _indexed(self, con: sqlite3.Connection, spec_hash: str) -> bool:
        if "runs" not in _tables(con):  # another process has only just created the file
            return False
        row = con.execute("SELECT run_id FROM runs WHERE hash = ?", (spec_hash,)).fetchone()
        return row is not None and (self.root / row[0] / "metrics.json").is_file()

    def is_complete(self, spec_hash: str) -> bool:
        if not self.index_path.exists():
            return False
        with self._db() as con:
            return self._indexed(con, spec_hash)

    # --- claims -----------------------------------------------------------------------------
    def claim(self, spec_hash: str, run_id: str | None = None) -> bool:
        """Claim a run for this worker. False when it is complete or claimed by another live
        worker; True when claimed (again) by this one, or taken over from a stale claim."""
        now = time.time()
        with self._db(write=True) as con:
            if self._indexed(con, spec_hash):
                return False
            row = con.execute("SELECT owner, heartbeat FROM claims WHERE hash = ?",
                              (spec_hash,)).fetchone()
            if row is not None and row[0] != self.owner and not self._stale(row[0], row[1], now):
                return False
            if row is not None and row[0] != self.owner:
                log.warning("taking over the stale claim of %s on run %s", row[0], run_id or spec_hash)
            con.execute("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?, ?)",
                        (spec_hash, run_id, self.owner, now, now))
        with self._held_lock:
            self._held.add(spec_hash)
            if self._beat is None or not self._beat.is_alive() or self._beat_stop.is_set():
                self._beat_stop = threading.Event()  # each heartbeat thread has its own stop
                self._beat = threading.Thread(target=self._heartbeat, args=(self._beat_stop,),
                                              daemon=True, name="clfbench-store-heartbeat")
                self._beat.start()
        return True

    def release(self, spec_hash: str) -> None:
        """Give up this worker's claim on a run (saved or not); another worker may take it."""
        with self._held_lock:
            self._held.discard(spec_hash)
            if not self._held:
                self._beat_stop.set()
        if self.index_path.exists():
            with self._db(write=True) as con:
                con.execute("DELETE FROM claims WHERE hash = ? AND owner = ?", (spec_hash, self.owner))

    def claim_owner(self, spec_hash: str) -> str | None:
        """The owner of a run's claim, or None."""
        if not self.index_path.exists():
            return None
        with self._db() as con:
            if "claims" not in _tables(con):
                return None
            row = con.execute("SELECT owner FROM claims WHERE hash = ?", (spec_hash,)).fetchone()
        return row[0] if row else None

    def live_claim_owner(self, spec_hash: str) -> str | None:
        """The owner of another worker's live claim on a run, or None (no claim, this worker's
        own, or a stale one that `claim` would take over): what a waiting worker polls."""
        if not self.index_path.exists():
            return None
        with self._db() as con:
            if "claims" not in _tables(con):
                return None
            row = con.execute("SELECT owner, heartbeat FROM claims WHERE hash = ?", (spec_hash,)).fetchone()
        if row is None or row[0] == self.owner or self._stale(row[0], row[1], time.time()):
            return None
        return row[0]

    def _stale(self, owner: str, heartbeat: float, now: float) -> bool:
        """A claim is stale when its owner is a dead process on this host, or silent too long."""
        host, pid, _ = ([*owner.rsplit(":", 2), "", ""])[:3]
        if host == socket.gethostname() and pid.isdigit() and not _pid_alive(int(pid)):
            return True
        return now - float(heartbeat) > self.stale_after_s

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(self.heartbeat_s):
            try:
                with self._db(write=True) as con:
                    con.execute("UPDATE claims SET heartbeat = ? WHERE owner = ?",
                                (time.time(), self.owner))
            except ClfbenchError as e:  # a missed beat only ages the claim
                log.warning("claim heartbeat failed: %s", e)

    # --- runs ---------------------------------------------------------------------------------
    def save(self, result) -> Path:
        """Write a RunResult atomically and index it. Returns the run folder.

        An incomplete result goes to `.incomplete/<run-id>/` and is not indexed. When the run
        is already complete (another writer finished it first), this copy is discarded and
        the existing folder is returned."""
        spec = result.spec
        run_id, spec_hash = spec.run_id(), spec.hash()
        reason = incomplete_reason(result.metrics)
        partial = self.root / PARTIAL / f"{run_id}.{uuid.uuid4().hex}"
        trash: list[Path] = []  # replaced folders, deleted once the index lock is released
        try:
            partial.mkdir(parents=True)
            (partial / PARTIAL_OWNER).write_text(self.owner)  # whose it is, for `clean_partials`
            _write_json(partial / "config.json", result.config)
            with open(partial / "predictions.jsonl", "w", encoding="utf-8") as f:
                for row in result.predictions:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            if spec.save_model and result.model is not None:
                result.model.save(partial / "model")
            for name, payload in result.extra.items():
                _write_json(partial / name, payload)
            _write_json(partial / "metrics.json", result.metrics)  # last: marks the folder complete
            (partial / PARTIAL_OWNER).unlink()
            final = self.root / run_id
            with self._db(write=True) as con:
                if self._indexed(con, spec_hash):
                    log.warning("run %s was completed by another writer; keeping that one", run_id)
                    return final
                if reason is not None:
                    spent = config_spend(result.metrics)
                    if spent is not None:
                        _write_json(partial / SPEND_FILE, {"usd": spent, "hash": spec_hash})
                    dest = self.root / INCOMPLETE / run_id
                    dest.parent.mkdir(exist_ok=True)
                    trash += self._move_into_place(partial, dest)
                    return dest
                trash += self._move_into_place(partial, final)
                con.execute(
                    "INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (run_id, spec_hash, spec.task_label, spec.method, spec.model, spec.seed,
                     time.time(), json.dumps({k: result.metrics.get(k) for k in SUMMARY_KEYS},
                                             default=_json_default)),
                )
            return final
        except OSError as e:  # a full disk mid-save: one line; the partial folder goes below
            raise WriteFailed(
                f"{self.root}: cannot save run {run_id}: {e.strerror or e}"
                + (" (free some space and run again: completed runs are kept)"
                   if e.errno in (errno.ENOSPC, errno.EDQUOT) else "")
            ) from None
        finally:
            for folder in (partial, *trash):
                if folder.exists():
                    shutil.rmtree(folder, ignore_errors=True)

    def spent_before(self, spec_hash: str, run_id: str) -> float:
        """USD spent on this configuration by its incomplete earlier runs (0 when none)."""
        f = self.root / INCOMPLETE / run_id / SPEND_FILE
        try:
            rec = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return 0.0
        if not isinstance(rec, dict) or rec.get("hash") != spec_hash:
            return 0.0
        usd = rec.get("usd")
        return max(0.0, float(usd)) if isinstance(usd, (int, float)) and not isinstance(usd, bool) else 0.0

    def clean_partials(self) -> list[Path]:
        """Delete what killed writers left under `.partial/` (a save cut short by SIGKILL or a
        lost machine): folders whose owner is a dead process on this host, or untouched for
        longer than a claim stays valid. A live writer's folder is kept. The folders removed."""
        folder = self.root / PARTIAL
        if not folder.is_dir():
            return []
        removed, now = [], time.time()
        for p in folder.iterdir():
            try:
                owned = p.is_dir() and (p / PARTIAL_OWNER).is_file()
                owner = (p / PARTIAL_OWNER).read_text().strip() if owned else ""
                touched = p.stat().st_mtime
            except OSError:  # its writer has just moved or deleted it
                continue
            if owner and owner.startswith(f"{socket.gethostname()}:{os.getpid()}:"):
                continue  # this process's own save
            if self._stale(owner, touched, now) if owner else now - touched > self.stale_after_s:
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p)
        return removed

    def _move_into_place(self, src: Path, dest: Path) -> list[Path]:
        """Rename `src` to `dest`; a leftover `dest` (not an indexed run) is moved aside first
        and returned for deletion. Called under the index's write lock, so no other Store
        moves the same folder."""
        aside = []
        if dest.exists():
            aside.append(self.root / PARTIAL / f"{dest.name}.{uuid.uuid4().hex}.old")
            dest.rename(aside[0])
        src.rename(dest)
        return aside

    def runs(self) -> list[dict[str, Any]]:
        """Completed runs, oldest first, with their full metrics.json."""
        if not self.index_path.exists():
            raise ClfbenchError(f"{self.root}: no clfbench results here ({INDEX} missing)")
        if self.index_path.stat().st_size == 0:  # truncated to nothing: not "no runs yet"
            raise ClfbenchError(f"{self.index_path}: empty (0 bytes), not a clfbench index; "
                                "move it away to start a new one")
        with self._db() as con:
            if "runs" not in _tables(con):  # every index a run wrote has the table
                raise ClfbenchError(f"{self.index_path}: not a clfbench index (no runs table); "
                                    "move it away to start a new one")
            rows = con.execute(
                "SELECT run_id, task, method, model, seed FROM runs ORDER BY finished_at"
            ).fetchall()
        out = []
        for run_id, task, method, model, seed in rows:
            path = self.root / run_id / "metrics.json"
            if path.is_file():
                metrics = read_json(path)
                if not isinstance(metrics, dict):
                    raise ClfbenchError(f"{path}: corrupted (expected a JSON object)")
                check_metric_types(metrics, path)
                out.append({"run_id": run_id, "task": task, "method": method, "model": model,
                            "seed": seed, "path": str(self.root / run_id), **metrics})
        return out


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _is_busy(e: sqlite3.Error) -> bool:
    msg = str(e).lower()
    return isinstance(e, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg)


def _rollback(con: sqlite3.Connection) -> None:
    if con.in_transaction:
        try:
            con.execute("ROLLBACK")
        except sqlite3.Error:
            pass


def _pid_alive(pid: int) -> bool:
    """Whether a process of this host runs; a zombie (exited, not yet reaped by its parent)
    does not: its claim would otherwise look live until its heartbeat went stale."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    try:  # Linux: "pid (comm) S ...", the state after the last ')'
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            return f.read().rpartition(")")[2].split()[:1] != ["Z"]
    except OSError:  # no /proc (macOS), or the process has just gone
        return True


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, default=_json_default, ensure_ascii=False),
                    encoding="utf-8")


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return str(o)
