"""Grids on a Ray cluster: each run one Ray task in a fresh worker process (`max_calls=1`).

`clfbench run GRID.yaml --executor ray [--address auto|ray://HOST:10001]`; without an
address (and no `ray.init` done by the caller) a local cluster is started for the grid.
The driver claims every run in the store and saves every result it gets back (the worker
returns the metrics, predictions and the saved model as bytes), so the store and its index
are the same as a local run's and resume works the same way. Ray retries a run whose worker
died (`max_retries`); a run that raised an error is not retried and stops the grid.

Resources per run: `DEFAULT_RESOURCES` by method (a GPU for neural methods where the
cluster has one; `num_cpus` = the run's `--threads` when given), overridden by the grid's
`resources: {default: {...}, METHOD: {num_cpus: 2, num_gpus: 0.5, memory: 4GiB}}`.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from clfbench.errors import ClfbenchError
from clfbench.extras import import_optional
from clfbench.run.config import RunSpec
from clfbench.run.executors.local import CRASH_ONCE_ENV, Executor, Job, Outcome, crash_once
from clfbench.run.executors.timing import TIMING_LOCK_ENV, node_lock_path
from clfbench.run.worker import WorkerCrashed

#: Methods that use an accelerator when there is one: they ask for a GPU on a cluster with GPUs.
GPU_METHODS = {"embed-probe", "encoder-ft", "encoder-lora", "llm-prompt", "llm-sft", "decoder-head",
               "setfit", "distill"}
DEFAULT_RESOURCES: dict[str, dict[str, float]] = {"default": {"num_cpus": 1}}
RESOURCE_KEYS = {"num_cpus", "num_gpus", "memory"}
#: A run whose worker process dies is tried this many more times.
MAX_RETRIES = 2
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "kib": 2**10, "mib": 2**20,
          "gib": 2**30}


def import_ray():
    """ray, or one clear error naming the extra to install."""
    return import_optional("ray", "--executor ray")


def check_resources(resources: Any, where: str = "resources") -> dict[str, dict[str, float]]:
    """The grid's `resources:` mapping checked: method (or `default`) -> {num_cpus, num_gpus,
    memory}; memory in bytes or with a unit (`4GiB`, `512MB`)."""
    if resources is None:
        return {}
    if not isinstance(resources, dict):
        raise ClfbenchError(f"{where}: expected a mapping of method -> {{num_cpus, num_gpus, memory}}")
    out: dict[str, dict[str, float]] = {}
    for method, req in resources.items():
        if not isinstance(req, dict) or not set(req) <= RESOURCE_KEYS:
            raise ClfbenchError(f"{where}.{method}: expected a mapping with keys among "
                                f"{', '.join(sorted(RESOURCE_KEYS))}, got {req!r}")
        out[method] = {}
        for key, value in req.items():
            number = _bytes(value) if key == "memory" else value
            if isinstance(number, bool) or not isinstance(number, (int, float)) or number < 0:
                raise ClfbenchError(f"{where}.{method}.{key}={value!r} (expected a number >= 0)")
            out[method][key] = number
    return out


def _bytes(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", value)
    if not m or m.group(2).lower() not in _UNITS:
        return value  # refused by the caller
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def resources_for(spec: RunSpec, grid: dict[str, dict[str, float]], has_gpu: bool) -> dict[str, float]:
    """What one run asks of the cluster: the defaults, its threads, then the grid's settings."""
    req = dict(DEFAULT_RESOURCES["default"])
    if has_gpu and spec.method in GPU_METHODS:
        req["num_gpus"] = 1
    if spec.threads:
        req["num_cpus"] = spec.threads
    return {**req, **grid.get("default", {}), **grid.get(spec.method, {})}


class PackedModel:
    """A model folder carried back from a worker as a tar archive; `save` unpacks it."""

    def __init__(self, folder: Path) -> None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(folder, arcname=".")
        self.data = buf.getvalue()

    def save(self, dest: str | Path) -> None:
        Path(dest).mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(self.data)) as tar:
            tar.extractall(dest, filter="data")


def run_task(spec: RunSpec, splits, quiet: bool, crash_marker: str | None):
    """The body of a run's Ray task (in its own fresh worker process)."""
    from clfbench.run.worker import ISOLATION, execute_and_save

    crash_once(crash_marker)
    os.environ[TIMING_LOCK_ENV] = node_lock_path()
    scratch = Path(tempfile.mkdtemp(prefix="clfbench-model-")) if spec.save_model else None
    try:
        result = execute_and_save(spec, splits, quiet, scratch / "model" if scratch else None)
        if scratch is not None and (scratch / "model").exists():
            result.model = PackedModel(scratch / "model")
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    result.metrics["isolation"] = ISOLATION
    result.metrics["executor"] = {"name": "ray", "node": socket.gethostname(), "pid": os.getpid()}
    return result


class RayExecutor(Executor):
    """Runs as Ray tasks; on `open` connects to `address` (or uses the caller's `ray.init`, or
    starts a new local cluster, shut down again on `close`)."""

    name = "ray"

    def __init__(self, address: str | None = None, resources: dict[str, Any] | None = None,
                 max_retries: int = MAX_RETRIES) -> None:
        import_ray()  # a missing extra fails before any work
        self.resources = check_resources(resources)
        self.address, self.max_retries = address, max_retries
        self._started = False
        self._refs: dict[Any, Job] = {}
        self._splits: dict[int, Any] = {}  # one object in Ray's store per splits object

    def open(self) -> None:
        import ray

        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=True)
            self._started = True
        total = ray.cluster_resources()
        self.has_gpu = total.get("GPU", 0) > 0
        self.capacity = max(1, int(total.get("CPU", 1)))  # runs handed to Ray at once
        self._task = ray.remote(max_calls=1, max_retries=self.max_retries)(run_task)

    def submit(self, job: Job) -> None:
        import ray

        key = id(job.splits)
        if key not in self._splits:
            self._splits[key] = (job.splits, ray.put(job.splits))
        req = resources_for(job.spec, self.resources, self.has_gpu)
        ref = self._task.options(**req).remote(job.spec, self._splits[key][1], job.quiet,
                                               os.environ.get(CRASH_ONCE_ENV))
        self._refs[ref] = job

    def wait(self) -> list[Outcome]:
        import ray

        refs = list(self._refs)
        ray.wait(refs, num_returns=1)
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)  # every one finished by now
        return [(self._refs.pop(ref), _get(ref, self.max_retries)) for ref in ready]

    def running(self) -> int:
        return len(self._refs)

    def close(self) -> None:
        import ray

        for ref in list(self._refs):
            ray.cancel(ref, force=True)
        self._refs.clear()
        self._splits.clear()
        if self._started:
            ray.shutdown()


def _get(ref, retries: int) -> Any:
    """A task's RunResult, or the error it raised (a ClfbenchError as it was)."""
    import ray
    from ray.exceptions import RayTaskError, WorkerCrashedError

    try:
        return ray.get(ref)
    except RayTaskError as e:
        cause = getattr(e, "cause", None)
        return cause if isinstance(cause, Exception) else e
    except WorkerCrashedError as e:
        return WorkerCrashed(f"the Ray worker died on every try ({retries + 1}); "
                             f"nothing was written for this run: {str(e).splitlines()[0]}")
    except Exception as e:  # noqa: BLE001 - handed to the driver
        return e


__all__ = ["DEFAULT_RESOURCES", "GPU_METHODS", "PackedModel", "RayExecutor", "check_resources",
           "resources_for", "run_task"]
