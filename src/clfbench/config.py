"""RunSpec: one fully resolved run; grid files expand into many. The hash is the run's identity.

A grid YAML:
    tasks:                                # registered names, or entries with their own files
      - sst2
      - {name: tickets, train_file: train.csv, test_file: test.csv, text_col: body}
    data_dir: ../shared/datasets          # optional: local files instead of the hub
    methods:
      - tfidf-lr
      - {name: encoder-ft, models: [minilm], params: {epochs: 1}}
    seeds: [99, 100]
    max_train: 2000
    max_eval: 500
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from clfbench.errors import ClfbenchError
from clfbench.io import read_yaml


@dataclass
class RunSpec:
    method: str
    task: str | None = None  # a registered task name; None for the user's own files
    name: str | None = None  # display name for the user's own data (default: train file's stem)
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seed: int = 99
    data_seed: int = 99  # splits and subsamples: the same for every method and seed
    data_dir: str | None = None
    max_train: int | None = None
    max_eval: int | None = None
    # The user's own data (used when task is None).
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    text_col: str = "text"
    text_pair_col: str | None = None
    label_col: str = "label"
    # Measurement.
    latency_examples: int = 100
    latency_warmup: int = 5
    threads: int | None = None
    save_model: bool = False

    @property
    def task_label(self) -> str:
        return self.task or self.name or Path(self.train_file or "data").stem

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same run (for resume): everything in the spec."""
        d = asdict(self)
        for key in ("data_dir", "train_file", "validation_file", "test_file"):
            if d[key] is not None:
                d[key] = str(Path(d[key]).resolve())
        return d

    def hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def run_id(self) -> str:
        model = slug(Path(self.model).name if self.model else "")
        parts = [slug(self.task_label), self.method] + ([model] if model else [])
        return "-".join(parts) + f"-s{self.seed}-{self.hash()[:8]}"


def expand_draws(specs: list[RunSpec]) -> list[RunSpec]:
    """A spec with `params.draws = N > 1` becomes N runs with seeds seed..seed+N-1.

    For few-shot methods the seed picks the shot set, so each run is one draw; reports
    group runs that differ only by seed and show mean and std over them.
    """
    out = []
    for spec in specs:
        n = spec.params.get("draws", 1)
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ClfbenchError(f"--draws must be a positive integer, got {n!r}")
        out.extend(replace(spec, seed=spec.seed + i) for i in range(n))
    return out


def slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", s).strip("_")[:48]


SPEC_FIELDS = {f.name for f in fields(RunSpec)}
GRID_KEYS = {"tasks", "methods", "seeds", "out"} | (SPEC_FIELDS - {"task", "method", "model", "seed"})


def load_grid(path: str | Path) -> tuple[list[RunSpec], dict[str, Any]]:
    """Expand a grid YAML into RunSpecs (tasks x methods x models x seeds)."""
    path = Path(path)
    raw = read_yaml(path, "grid file")
    if not isinstance(raw, dict):
        raise ClfbenchError(f"{path}: expected a mapping with 'tasks' and 'methods'")
    unknown = sorted(set(raw) - GRID_KEYS)
    if unknown:
        raise ClfbenchError(f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(GRID_KEYS))}")
    for key in ("tasks", "methods"):
        if not raw.get(key) or not isinstance(raw[key], list):
            raise ClfbenchError(f"{path}: '{key}' must be a non-empty list")
    seeds = raw.get("seeds", [99])
    if not isinstance(seeds, list) or not all(isinstance(s, int) for s in seeds):
        raise ClfbenchError(f"{path}: 'seeds' must be a list of integers")
    common = {k: v for k, v in raw.items() if k in SPEC_FIELDS}
    specs = []
    for t in raw["tasks"]:
        task = t if isinstance(t, dict) else {"name": t}
        if "name" not in task:
            raise ClfbenchError(f"{path}: every entry of 'tasks' needs a name")
        task_extra = {k: v for k, v in task.items() if k != "name"}
        bad = sorted(set(task_extra) - SPEC_FIELDS)
        if bad:
            raise ClfbenchError(f"{path}: task {task['name']}: unknown key(s) {', '.join(bad)}")
        # A task entry with its own files is the user's data, not a registered task.
        own_data = "train_file" in task_extra
        task_fields = {"task": None, "name": task["name"]} if own_data else {"task": task["name"]}
        for m in raw["methods"]:
            meth = m if isinstance(m, dict) else {"name": m}
            if "name" not in meth:
                raise ClfbenchError(f"{path}: every entry of 'methods' needs a name")
            bad = sorted(set(meth) - {"name", "models", "model", "params"})
            if bad:
                raise ClfbenchError(f"{path}: method {meth['name']}: unknown key(s) {', '.join(bad)}")
            models = meth.get("models") or [meth.get("model")]
            for model in models:
                for seed in seeds:
                    specs.append(
                        RunSpec(
                            **{**common, **task_extra, **task_fields},
                            method=meth["name"],
                            model=model,
                            params=dict(meth.get("params") or {}),
                            seed=seed,
                        )
                    )
    return specs, raw
