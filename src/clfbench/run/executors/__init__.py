"""Where a grid's runs execute: one at a time here (default), a local pool, or a Ray cluster.

The driver (`runner.run_grid`) validates the grid, reads the data, claims each run in the
store and saves every result; an executor only computes runs, each in a fresh process:

- `SequentialExecutor`: one run at a time (`--workers 1`, the default).
- `LocalPoolExecutor`: `--workers N` runs side by side, each in its own spawned process.
- `RayExecutor` (`executors.ray`): each run a Ray task in a fresh worker process, with the
  resources its method asks for; a worker lost mid-run is retried by Ray.

Concurrent executors make timings exclusive per node (`executors.timing`).
"""

from __future__ import annotations

from typing import Any

from clfbench.errors import ClfbenchError
from clfbench.run.executors.local import (
    CRASH_ONCE_ENV,
    Executor,
    Job,
    LocalPoolExecutor,
    Outcome,
    SequentialExecutor,
    crash_once,
)

EXECUTORS = ("local", "ray")


def executor_settings(grid: Any, name: str | None = None, workers: int | None = None,
                      address: str | None = None, where: str = "grid") -> dict[str, Any]:
    """{name, workers, address} from a grid's `executor:` (a name, or a mapping with `name`,
    `workers`, `address`), with the command line's `--executor/--workers/--address` winning."""
    given = {"name": grid} if isinstance(grid, str) else dict(grid or {})
    if not isinstance(grid, (str, dict, type(None))) or not set(given) <= {"name", "workers", "address"}:
        raise ClfbenchError(f"{where}: executor: expected local, ray, or a mapping with name, "
                            f"workers, address; got {grid!r}")
    settings = {**given, **{k: v for k, v in (("name", name), ("workers", workers),
                                               ("address", address)) if v is not None}}
    settings.setdefault("name", "local")
    n = settings.get("workers")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ClfbenchError(f"{where}: workers={n!r} (expected an integer >= 1)")
    return settings


def make_executor(name: str = "local", workers: int | None = None, address: str | None = None,
                  resources: dict[str, Any] | None = None) -> Executor:
    """The executor a grid asked for (`--executor`, `--workers`, `--address`, `resources:`);
    `resources` are Ray's scheduling requests, unused by the local executor."""
    if name not in EXECUTORS:
        raise ClfbenchError(f"--executor={name!r} (expected one of {', '.join(EXECUTORS)})")
    if name == "ray":
        if workers is not None:
            raise ClfbenchError("--workers is for the local executor; Ray runs as many runs as "
                                "the cluster's resources allow (see `resources:` in the grid)")
        from clfbench.run.executors.ray import RayExecutor

        return RayExecutor(address=address, resources=resources)
    if address is not None:
        raise ClfbenchError("--address is for --executor ray")
    if workers is None or workers == 1:
        return SequentialExecutor()
    return LocalPoolExecutor(workers)


__all__ = ["CRASH_ONCE_ENV", "EXECUTORS", "Executor", "Job", "LocalPoolExecutor", "Outcome",
           "SequentialExecutor", "crash_once", "executor_settings", "make_executor"]
