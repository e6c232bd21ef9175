"""Run options given one by one (the flags of `clfbench run`) merged into RunSpecs, with or
without a grid file; method parameters given as `KEY=VALUE` or as their own flags; the executor
they ask for. Plain values in, RunSpecs out: the command line parses and calls these, and so
can Python code.

    >>> plan = flag_run({"task": "sst2", "seed": 7}, methods=["tfidf-lr"],
    ...                 params=merge_params([parse_param("C=0.5")]))
    >>> plan.specs[0].params, plan.out
    ({'C': 0.5}, 'clfbench-runs')

With a grid (`flag_run(..., grid="grid.yaml")`) the options override the grid's values (only
those of `config.OVERRIDABLE`; naming what the grid lists is an error) and the parameters go to
every method of the grid that takes them (`config.load_grid`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from clfbench.errors import ClfbenchError

if TYPE_CHECKING:
    from clfbench.run.config import RunSpec
    from clfbench.run.executors import Executor

#: Method parameters that `clfbench run` also takes as flags of their own (`--epochs 2` is
#: `--param epochs=2`); a method rejects ones it does not take.
METHOD_FLAGS: dict[str, type] = {
    "epochs": int, "lr": float, "batch_size": int, "max_length": int,
    "shots": int, "decision": str, "draws": int, "backend": str,
}
#: Where runs go without `out` (neither given nor in the grid).
DEFAULT_OUT = "clfbench-runs"
#: Run options whose flag is not their name with dashes (for messages).
FLAG_NAMES = {"train_file": "--train", "validation_file": "--validation", "test_file": "--test"}


def flag_name(field: str) -> str:
    """The command-line flag of a RunSpec field: train_file -> --train, max_eval -> --max-eval."""
    return FLAG_NAMES.get(field, "--" + field.replace("_", "-"))


def parse_param(value: str) -> tuple[str, object]:
    """`KEY=VALUE` (`--param`): the key with dashes as underscores, the value read as YAML 1.2
    (`lr=2e-5` a number, `tune=off` a string). ValueError when it is not KEY=VALUE or the value
    is not valid YAML."""
    import yaml

    from clfbench.data.files import yaml_load

    if "=" not in value:
        raise ValueError(f"expected KEY=VALUE, got {value!r}")
    key, _, raw = value.partition("=")
    try:
        return key.strip().replace("-", "_"), yaml_load(raw)
    except yaml.YAMLError:
        raise ValueError(f"{value!r}: the value is not valid YAML") from None


def merge_params(pairs: Iterable[tuple[str, Any]] = (), flags: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The method parameters given: `pairs` (`--param KEY=VALUE`, the last of a key wins), then
    `flags` (METHOD_FLAGS' keys; None: not given), which beat them."""
    params = dict(pairs)
    params.update({k: (flags or {}).get(k) for k in METHOD_FLAGS if (flags or {}).get(k) is not None})
    return params


def given_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The run options among `values` (RunSpec fields) that were given (not None), in their
    order; without `method` and `model`, which are lists (see `flag_run`)."""
    from clfbench.run.config import SPEC_FIELDS

    return {k: v for k, v in values.items()
            if k in SPEC_FIELDS and k not in ("method", "model") and v is not None}


class FlagRun:
    """What `flag_run` resolved: the runs, their results folder, the grid file's contents
    (empty without one) and, with a grid, the line that says what the options override.
    (A plain class: a dataclass would add a millisecond to every `clfbench` start.)"""

    __slots__ = ("specs", "out", "grid", "overrides_note")

    def __init__(self, specs: list[RunSpec], out: str, grid: dict[str, Any] | None = None,
                 overrides_note: str | None = None) -> None:
        self.specs = specs
        self.out = out
        self.grid = grid if grid is not None else {}
        self.overrides_note = overrides_note

    def __repr__(self) -> str:
        return (f"FlagRun(specs={self.specs!r}, out={self.out!r}, grid={self.grid!r}, "
                f"overrides_note={self.overrides_note!r})")


def flag_run(
    fields: Mapping[str, Any],
    methods: list[str] | None = None,
    models: list[str] | None = None,
    params: Mapping[str, Any] | None = None,
    grid: str | None = None,
    train_sizes: str | None = None,
    out: str | None = None,
) -> FlagRun:
    """The runs of `clfbench run`: `fields` are the run options given (RunSpec fields but
    `method` and `model`, in the order of their flags; see `given_fields`), `methods` and
    `models` the lists of `--method` and `--model`, `params` the method parameters
    (`merge_params`), `train_sizes` the learning-curve sizes as written (`0,8/class,all`).

    Every option's type and range is checked before anything is read. With `grid` (a grid
    YAML) the options override it (`config.load_grid`) and `methods`, `models` and the options
    that name what the grid lists are refused; without one, `methods` and a task or training
    file are required (`flag_specs`). `out` beats the grid's `out`, then DEFAULT_OUT."""
    from clfbench.run.config import (
        OVERRIDABLE,
        check_spec_values,
        expand_train_sizes,
        load_grid,
        parse_train_sizes,
    )

    params = dict(params or {})
    # The options as given, in their flags' order (--task comes before --method and --model).
    given = {**({"task": fields["task"]} if "task" in fields else {}),
             **({"method": methods} if methods is not None else {}),
             **({"model": models} if models is not None else {}), **fields}
    fields = dict(fields)
    check_spec_values(fields, "", flag_name)  # every flag's type and range, before anything is read
    sizes = parse_train_sizes(train_sizes) if train_sizes is not None else None
    if grid:
        # Flags given with a grid override it; ones that name what the grid lists are refused.
        refused = [flag_name(k) for k in given if k not in OVERRIDABLE]
        if refused:
            raise ClfbenchError(f"run: {', '.join(refused)} cannot be used with a grid file; "
                                f"set such values in {grid}")
        overrides = {k: v for k, v in fields.items() if k in OVERRIDABLE}
        specs, raw = load_grid(grid, overrides, params, sizes)
        note = overrides_line(overrides, params) if overrides or params else None
        return FlagRun(specs, out or raw.get("out") or DEFAULT_OUT, raw, note)
    if not methods:
        raise ClfbenchError("run: give --method (and --task or --train), or a GRID.yaml")
    if not fields.get("task") and not fields.get("train_file"):
        raise ClfbenchError("run: give --task NAME or your own data with --train FILE")
    return FlagRun(expand_train_sizes(flag_specs(fields, methods, models, params), sizes), out or DEFAULT_OUT)


def flag_specs(fields: Mapping[str, Any], methods: list[str], models: list[str] | None,
               params: Mapping[str, Any]) -> list[RunSpec]:
    """The runs of `clfbench run` without a grid: one per `--method`, and per `--model` for a
    method that takes a model. With one method everything given goes to it (`make_method`
    refuses what it does not take); with several, as in a grid, `--model` and each parameter go
    to the methods that take them, and one that none of them takes is an error."""
    from clfbench.run.config import OWN_DATA_KEYS, RunSpec

    if fields.get("task"):
        stray = [k for k in fields if k in OWN_DATA_KEYS]
        if stray:
            flags = ", ".join(flag_name(k) for k in stray)
            is_are = "is" if len(stray) == 1 else "are"
            raise ClfbenchError(f"run: {flags} {is_are} for your own files and cannot be used with "
                                f"--task {fields['task']} (a registered task has its own files and columns)")
    methods = list(dict.fromkeys(methods))
    model_list: list[str | None] = list(dict.fromkeys(models or [])) or [None]
    if len(methods) == 1:
        return [RunSpec(**fields, method=methods[0], model=m, params=dict(params)) for m in model_list]
    from clfbench.methods.base import accepted_params, takes_model

    accepted = {m: accepted_params(m) for m in methods}  # an unknown method fails here
    with_model = {m for m in methods if takes_model(m)}
    names = ", ".join(methods)
    if models and not with_model:
        raise ClfbenchError(f"--model {models[0]}: none of the methods given takes a model (methods: {names})")
    for key in params:
        if not any(key in a for a in accepted.values()):
            raise ClfbenchError(f"--param {key}: none of the methods given takes this parameter (methods: {names})")
    return [RunSpec(**fields, method=m, model=model, params={k: v for k, v in params.items() if k in accepted[m]})
            for m in methods for model in (model_list if m in with_model else [None])]


def overrides_line(overrides: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    """'overrides from the command line: max_eval=50, seed=7, params C=0.5'."""
    parts = [f"{k}={v}" for k, v in sorted(overrides.items())]
    if params:
        parts.append("params " + ", ".join(f"{k}={v}" for k, v in params.items()))
    return "overrides from the command line: " + ", ".join(parts)


def flag_executor(grid: Mapping[str, Any], name: str | None = None, workers: int | None = None,
                  address: str | None = None, where: str = "run") -> Executor:
    """The executor of `--executor/--workers/--address` (None: not given) and the grid's
    `executor:`/`resources:` (`grid`: the grid file's contents, empty without one); `where`
    names the source in messages."""
    from clfbench.run.executors import executor_settings, make_executor

    settings = executor_settings(grid.get("executor"), name, workers, address, where)
    if settings["name"] == "ray":
        from clfbench.run.executors.ray import check_resources

        check_resources(grid.get("resources"), f"{where}: resources")
    return make_executor(**settings, resources=grid.get("resources"))
