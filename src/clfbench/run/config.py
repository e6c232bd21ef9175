"""RunSpec: one fully resolved run; grid files expand into many. The hash is the run's identity.

A grid YAML:
    tasks:                                # registered names, or entries with their own files
      - sst2
      - {name: tickets, train_file: train.csv, test_file: test.csv, text_col: body}
    data_dir: my_datasets                 # optional: local files instead of the hub
    methods:
      - tfidf-lr
      - {name: encoder-ft, models: [minilm], params: {epochs: 1}}
    seeds: [99, 100]                      # or one integer
    max_train: 2000
    max_eval: 500
    max_length: 256                       # optional: for every method that takes max_length

Relative paths (`data_dir`, the files, `out`) are relative to the grid file's folder.
`models` takes a list or one string. `max_length` is a parameter shared by the grid: every
method whose class takes `max_length` gets it unless its own `params` set another value (the
value used is in each run's `params`); a grid where no method takes it is an error.
Command-line flags given with a grid (`clfbench run grid.yaml --max-eval 50 --seed 7
--param C=0.5`) override the grid (see `load_grid`); `clfbench.run.flags` turns flags into
RunSpecs, with or without a grid.

Every value is checked against RunSpec's annotated type and range (`check_spec_values`; method
parameters against `clfbench.methods.schema`) when the grid is loaded, naming the file and field.

Learning curves: `train_sizes: [0, 8/class, 32/class, 128, all]` (or `--train-sizes`) runs
each method that trains once per size (`expand_train_sizes`); the runner adds draws at small
sizes (`runner.expand_size_draws`).

Few-shot draws: a method with `params: {draws: N}` runs N times per seed, one run per
(seed, draw) pair (`expand_draws`); seeds [99, 100] with draws 3 are 6 runs.
"""

from __future__ import annotations

import hashlib
import json
import re
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from annotated_types import Ge, Le, MinLen

from clfbench.data.files import read_yaml
from clfbench.errors import ClfbenchError
from clfbench.methods.checkpoints import NOT_FINGERPRINTED

MAX_SIZE_DRAWS = 100
#: Method parameters that say where files go, not what is computed: not part of a run's identity.
#: numpy's legacy seeding (and scikit-learn's random_state) takes 0 .. 2**32 - 1.
Seed = Annotated[int, Ge(0), Le(2**32 - 1)]
Column = Annotated[str, MinLen(1)]


@dataclass
class RunSpec:
    """One resolved run. Field types and ranges are the schema of run options (see `check_spec`)."""

    method: str
    task: str | None = None  # a registered task name; None for the user's own files
    name: str | None = None  # display name for the user's own data (default: train file's folder)
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    seed: Seed = 99
    draw: Annotated[int, Ge(0)] = 0  # few-shot draw index (0..draws-1) when params.draws > 1
    data_seed: Seed = 99  # splits and subsamples: the same for every method and seed
    data_dir: str | None = None
    max_train: Annotated[int, Ge(2)] | None = None  # two examples: the fewest for two classes
    max_eval: Annotated[int, Ge(1)] | None = None
    # Learning curves: train on a nested, stratified subset of train ("N", "N/class" or "all";
    # see `splits.train_subset`); `draw` then picks the subset. None: all of train.
    train_size: str | None = None
    # Draws (subsets) of a size under `splits.SMALL_SIZE` examples (None: `splits.SMALL_SIZE_DRAWS`).
    # Not part of the identity: draw d is the same run whatever the count, so more draws resume.
    size_draws: Annotated[int, Ge(1), Le(MAX_SIZE_DRAWS)] | None = None
    # The user's own data (used when task is None).
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    text_col: Column = "text"
    text_pair_col: Column | None = None
    label_col: Column = "label"
    # Measurement.
    latency_examples: Annotated[int, Ge(1)] = 100
    latency_warmup: Annotated[int, Ge(0)] = 5
    threads: Annotated[int, Ge(1)] | None = None
    save_model: bool = False
    # USD already spent on this configuration by incomplete earlier runs (kept in
    # `.incomplete/`): an API method's `budget_usd` is what is left of it. Set by the runner
    # from the store, not by users; not part of the identity.
    spent_before_usd: float = 0.0

    @property
    def task_label(self) -> str:
        """The task's name, else `name`, else the training file's folder (`tickets/train.csv`:
        tickets; a file in the working folder: that folder's name)."""
        if self.task or self.name:
            return self.task or self.name
        if not self.train_file:
            return "data"
        return Path(self.train_file).resolve().parent.name or Path(self.train_file).stem

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same run (for resume): everything in the spec."""
        d = asdict(self)
        if not d["draw"]:  # runs without draws keep the identity they had before `draw` existed
            del d["draw"]
        if d["train_size"] is None:  # likewise runs without a learning-curve size
            del d["train_size"]
        del d["size_draws"]  # how many draws were asked for, not what this run is
        del d["spent_before_usd"]  # what earlier attempts cost, not what this run is
        # where a training saves its checkpoints changes nothing it computes
        d["params"] = {k: v for k, v in d["params"].items() if k not in NOT_FINGERPRINTED}
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
        draw = f"-d{self.draw}" if self.draw or _n_draws(self) > 1 else ""
        size = f"-n{self.train_size.replace('/class', 'pc')}" if self.train_size else ""
        return "-".join(parts) + f"{size}-s{self.seed}{draw}-{self.hash()[:8]}"


def check_spec_values(values: dict[str, Any], where: str = "",
                      name: Callable[[str], str] = str) -> None:
    """Run options (RunSpec fields in `values`) against their declared types and ranges:
    one ClfbenchError `{where}{name(field)}={value!r} (expected ...)` for the first bad one."""
    from clfbench.methods.schema import check_values

    check_values(_spec_hints(), values, where, name)


def check_spec(spec: RunSpec) -> None:
    """A spec's run options, naming the run (`make_method` checks its method's parameters)."""
    check_spec_values({k: v for k, v in asdict(spec).items() if k != "params"},
                      f"run {spec.task_label} / {spec.method}: ")
    if spec.train_size is not None:
        parse_train_size(spec.train_size, f"run {spec.task_label} / {spec.method}: train_size")


#: A learning-curve size: 0 (the untrained references only), N examples, N per class, or all.
_SIZE = re.compile(r"^\s*(?:(all)|(\d+)\s*(/\s*class)?)\s*$")


def parse_train_size(value: Any, where: str = "--train-sizes") -> str:
    """One learning-curve size in its canonical form ("0", "128", "8/class", "all"), or a
    one-line ClfbenchError naming `where`."""
    m = _SIZE.match(str(value)) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    if m is None or (m.group(2) is not None and m.group(3) and int(m.group(2)) == 0):
        raise ClfbenchError(f"{where}: {value!r} is not a training size (expected 0, N, N/class or all, "
                            "e.g. 0,8/class,32/class,128,all)")
    if m.group(1):
        return "all"
    n = int(m.group(2))
    if not m.group(3) and 0 < n < 2:
        raise ClfbenchError(f"{where}: {value!r}: a training size needs at least 2 examples (two classes)")
    return f"{n}/class" if m.group(3) else str(n)


def parse_train_sizes(value: Any, where: str = "--train-sizes") -> list[str]:
    """`0,8/class,32/class,128,all` (a string) or a YAML list: canonical sizes, duplicates
    dropped, in the order given."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ClfbenchError(f"{where}: expected a list of sizes (0, N, N/class or all), got {value!r}")
    return list(dict.fromkeys(parse_train_size(v, where) for v in items))


def expand_train_sizes(specs: list[RunSpec], sizes: list[str] | None) -> list[RunSpec]:
    """One spec per size for each method that trains; a method without training (zero-/few-shot
    prompting, API models) runs once, as the curves' flat reference. Size 0 only asks for
    those references: no trained method runs on zero examples."""
    if not sizes:
        return specs
    from clfbench.methods.base import get_method

    out = []
    for spec in specs:
        if not get_method(spec.method).needs_training:
            out.append(spec)
        else:
            out.extend(replace(spec, train_size=s) for s in sizes if s != "0")
    return out


@lru_cache(maxsize=1)
def _spec_hints() -> dict[str, Any]:
    return typing.get_type_hints(RunSpec, include_extras=True)


MAX_DRAWS = 1000


def _n_draws(spec: RunSpec) -> int:
    """`params.draws` checked: an integer from 1 to MAX_DRAWS."""
    n = spec.params.get("draws", 1)
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_DRAWS:
        raise ClfbenchError(f"--draws must be an integer from 1 to {MAX_DRAWS}, got {n!r}")
    return n


def draw_seed(seed: int, draw: int) -> int:
    """The seed of draw `draw` (0 <= draw < MAX_DRAWS) of a run seeded `seed`: seed * 1000 + draw.

    One-to-one, so no two (seed, draw) pairs share a few-shot set, even for adjacent seeds
    (99 and 100 with 3 draws give 99000-99002 and 100000-100002).
    """
    return seed * MAX_DRAWS + draw


def expand_draws(specs: list[RunSpec]) -> list[RunSpec]:
    """A spec with `params.draws = N > 1` becomes N runs, draw 0..N-1, for its seed.

    Each draw is its own run (`draw` is part of the hash and the run id) and the method gets
    `params.seed = draw_seed(seed, draw)`: for few-shot methods the seed picks the shot set,
    so each run is one draw. Reports pool runs that differ only by seed and draw (mean and
    std). Expand a list once (expanding again would derive seeds from derived seeds).
    """
    out = []
    for spec in specs:
        n = _n_draws(spec)
        if n == 1:
            out.append(spec)
            continue
        base = spec.params.get("seed", spec.seed)
        out.extend(replace(spec, draw=d, params={**spec.params, "seed": draw_seed(base, d)})
                   for d in range(n))
    return out


def repeat_key(spec: RunSpec) -> str:
    """The spec's identity without its seed and draw: runs sharing it repeat one configuration."""
    ident = spec.identity()
    ident.pop("seed")
    ident.pop("draw", None)
    if spec.draw or _n_draws(spec) > 1:
        ident["params"] = {k: v for k, v in ident["params"].items() if k != "seed"}
    return json.dumps(ident, sort_keys=True, default=str)


def slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.]+", "_", s).strip("_")[:48]


SPEC_FIELDS = {f.name for f in fields(RunSpec)} - {"spent_before_usd"}  # set by the runner
#: Spec fields a grid may set, at its top level or in a task entry (the rest come from its lists).
TASK_KEYS = SPEC_FIELDS - {"task", "method", "model", "seed", "draw", "params", "train_size"}
#: `executor` and `resources` say where runs compute (clfbench.run.executors), not what they are.
GRID_KEYS = {"tasks", "methods", "seeds", "out", "max_length", "executor", "resources",
             "train_sizes"} | TASK_KEYS
#: Grid keys holding paths: relative ones are taken from the grid file's folder.
PATH_KEYS = {"data_dir", "train_file", "validation_file", "test_file", "out"}
#: Spec fields about the user's own files: meaningless for a registered task.
OWN_DATA_KEYS = {"name", "train_file", "validation_file", "test_file", "text_col", "text_pair_col", "label_col"}
#: Spec fields that command-line flags may override in a grid (`seed` replaces `seeds`).
OVERRIDABLE = {"seed", "data_seed", "data_dir", "max_train", "max_eval", "threads",
               "latency_examples", "save_model", "size_draws"}


def load_grid(
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    train_sizes: list[str] | None = None,
) -> tuple[list[RunSpec], dict[str, Any]]:
    """Expand a grid YAML into RunSpecs (tasks x methods x models x seeds).

    Relative paths in the file (PATH_KEYS) are relative to its folder; the returned mapping
    (the raw grid) holds them resolved, `out` included. `overrides`: spec fields given on the
    command line (keys of OVERRIDABLE); they beat the
    grid's values, and `seed` replaces `seeds`. `params`: method parameters given on the
    command line; every method of the grid that takes one gets it (over its own `params`),
    and one that no method takes is an error, so that nothing given is silently ignored.
    `train_sizes` (`--train-sizes`) replaces the grid's `train_sizes:` (`expand_train_sizes`).
    """
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
    out = raw.get("out")
    if out is not None and (not isinstance(out, str) or not out.strip()):
        raise ClfbenchError(f"{path}: out={out!r} (expected a folder path)")
    raw = {k: _from_folder(path, v) if k in PATH_KEYS else v for k, v in raw.items()}
    check_spec_values({k: v for k, v in raw.items() if k in TASK_KEYS}, f"{path}: ")
    if train_sizes is None and "train_sizes" in raw:
        train_sizes = parse_train_sizes(raw["train_sizes"], f"{path}: train_sizes")
    overrides = dict(overrides or {})
    bad = sorted(set(overrides) - OVERRIDABLE)
    if bad:
        raise ClfbenchError(f"{path}: {', '.join(bad)} cannot be overridden in a grid")
    check_spec_values(overrides, "", lambda k: "--" + k.replace("_", "-"))
    seeds = [overrides.pop("seed")] if "seed" in overrides else raw.get("seeds", [99])
    if _is_int(seeds):
        seeds = [seeds]
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) for s in seeds):
        raise ClfbenchError(f"{path}: 'seeds' must be a list of integers")
    for s in seeds:
        check_spec_values({"seed": s}, f"{path}: ", lambda k: "seeds")
    methods = [_method_entry(path, m) for m in raw["methods"]]
    method_params = _method_params(path, raw, methods, params or {})
    common = {k: v for k, v in raw.items() if k in TASK_KEYS}
    specs = []
    for t in raw["tasks"]:
        task = t if isinstance(t, dict) else {"name": t}
        if "name" not in task:
            raise ClfbenchError(f"{path}: every entry of 'tasks' needs a name")
        task_extra = {k: _from_folder(path, v) if k in PATH_KEYS else v
                      for k, v in task.items() if k != "name"}
        bad = sorted(set(task_extra) - TASK_KEYS)
        if bad:
            raise ClfbenchError(f"{path}: task {task['name']}: unknown key(s) {', '.join(bad)}")
        check_spec_values(task_extra, f"{path}: task {task['name']}: ")
        # A task entry with its own files is the user's data, not a registered task.
        own_data = "train_file" in task_extra
        stray = sorted(set(task_extra) & OWN_DATA_KEYS) if not own_data else []
        if stray:
            raise ClfbenchError(f"{path}: task {task['name']}: {', '.join(stray)} {_is_are(stray)} for your own "
                                "files (give the entry a train_file); a registered task has its own files and columns")
        task_fields = {"task": None, "name": task["name"]} if own_data else {"task": task["name"]}
        for meth, meth_params in zip(methods, method_params):
            for model in meth["models"]:
                for seed in seeds:
                    specs.append(
                        RunSpec(
                            **{**common, **task_extra, **overrides, **task_fields},
                            method=meth["name"],
                            model=model,
                            params=dict(meth_params),
                            seed=seed,
                        )
                    )
    return expand_train_sizes(specs, train_sizes), raw


def _from_folder(grid: Path, value: Any) -> Any:
    """A relative path in a grid file is relative to the file's folder, not the working one."""
    if not isinstance(value, str) or not value:
        return value
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else grid.parent / p)


def _is_are(items: list[str]) -> str:
    return "is" if len(items) == 1 else "are"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _method_entry(path: Path, m: Any) -> dict[str, Any]:
    """One entry of `methods` checked: {name, models (a list; [None] for the default), params}."""
    meth = m if isinstance(m, dict) else {"name": m}
    if "name" not in meth:
        raise ClfbenchError(f"{path}: every entry of 'methods' needs a name")
    bad = sorted(set(meth) - {"name", "models", "model", "params"})
    if bad:
        raise ClfbenchError(f"{path}: method {meth['name']}: unknown key(s) {', '.join(bad)}")
    models = meth.get("models") or meth.get("model")
    if models is None:  # the method's default model
        models = [None]
    elif isinstance(models, str):
        models = [models]
    elif not isinstance(models, list) or not all(isinstance(x, str) for x in models):
        raise ClfbenchError(f"{path}: method {meth['name']}: 'models' must be a model name or a list of them")
    params = meth.get("params") or {}
    if not isinstance(params, dict):
        raise ClfbenchError(f"{path}: method {meth['name']}: 'params' must be a mapping")
    from clfbench.methods.base import check_method_params

    check_method_params(meth["name"], params, f"{path}: method {meth['name']}")
    return {"name": meth["name"], "models": models, "params": params}


def _method_params(path: Path, raw: dict[str, Any], methods: list[dict[str, Any]],
                   cli: dict[str, Any]) -> list[dict[str, Any]]:
    """Each method entry's parameters: the grid's shared ones it takes (`max_length`), then its
    own `params`, then the command line's ones it takes. A shared or command-line parameter
    that no method of the grid takes is an error."""
    shared = {}
    if "max_length" in raw:
        if not _is_int(raw["max_length"]) or raw["max_length"] < 1:
            raise ClfbenchError(f"{path}: 'max_length' must be a positive integer, got {raw['max_length']!r}")
        shared["max_length"] = raw["max_length"]
    if not shared and not cli:  # no need to import the methods
        return [dict(m["params"]) for m in methods]
    from clfbench.methods.base import accepted_params

    accepted = [accepted_params(m["name"]) for m in methods]
    names = ", ".join(dict.fromkeys(m["name"] for m in methods))
    for given, where in ((shared, f"{path}: "), (cli, "--param ")):
        for key in given:
            if not any(key in a for a in accepted):
                raise ClfbenchError(f"{where}{key}: no method of the grid takes this parameter (methods: {names})")
    return [{**{k: v for k, v in shared.items() if k in a}, **m["params"],
             **{k: v for k, v in cli.items() if k in a}} for m, a in zip(methods, accepted)]
