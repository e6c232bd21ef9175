"""`clfbench run`: one configuration from flags, or a grid from a YAML file (flags override it).
The merging of flags into runs is `clfbench.run.flags`; this module parses, calls and prints."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from clfbench.run.flags import (
    DEFAULT_OUT,
    METHOD_FLAGS,
    flag_executor,
    flag_run,
    given_fields,
    merge_params,
    parse_param,
)


def _param(value: str) -> tuple[str, object]:
    """`--param KEY=VALUE` for argparse: a bad one is a usage error naming the flag."""
    try:
        return parse_param(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_parser(sub) -> argparse.ArgumentParser:
    r = sub.add_parser("run", help="run one configuration, or a grid from a YAML file")
    r.add_argument("grid", nargs="?", help="GRID.yaml: tasks x methods x models x seeds")
    r.add_argument("--task", help="a registered task (see `clfbench tasks`)")
    r.add_argument("--method", action="append", help="a registered method (see `clfbench methods`); "
                   "repeatable: each method runs as its own configuration")
    r.add_argument("--model", action="append", help="hub id, local folder, or alias (minilm); repeatable: "
                   "one run per model of each listed method that takes a model")
    r.add_argument("--data-dir", help="a folder with the original files of registered tasks (DIR/FOLDER, "
                   "see `clfbench tasks`); without it the Hugging Face hub is used")
    r.add_argument("--train", dest="train_file", help="your own training file (csv/tsv/jsonl/parquet)")
    r.add_argument("--validation", dest="validation_file", help="your own validation file")
    r.add_argument("--test", dest="test_file", help="your own test file (the reported split)")
    # Run flags default to None so that a grid can tell which were given (they override it);
    # the documented defaults are RunSpec's own.
    r.add_argument("--text-col", help="text column of your own files (default text)")
    r.add_argument("--text-pair-col", default=None, help="second-text column of your own files, for pair tasks")
    r.add_argument("--label-col", help="label column of your own files (default label)")
    r.add_argument("--name", help="a display name for your own data (default: the train file's folder)")
    r.add_argument("--seed", type=int, help="training seed (default 99)")
    r.add_argument("--data-seed", type=int, help="seed of splits and subsamples (default 99)")
    r.add_argument("--max-train", type=int, help="stratified, seeded subsample of train (at least 2 per class)")
    r.add_argument("--max-eval", type=int, help="stratified, seeded subsample of the eval splits")
    r.add_argument("--train-sizes", metavar="SIZES", help="learning curve: train each method that trains at each "
                   "size, e.g. 0,8/class,32/class,128,all (nested, seeded, stratified subsets; 5 draws below "
                   "100 examples); prompting methods run once as references")
    r.add_argument("--size-draws", type=int, help="--train-sizes: draws of each size under 100 examples (default 5)")
    r.add_argument("--out", help=f"results folder (default: the grid's out, else {DEFAULT_OUT})")
    r.add_argument("--threads", type=int, help="CPU threads of torch and every BLAS/OpenMP pool (default: "
                   "torch's default, less the cores other processes keep busy in a sample before each run)")
    r.add_argument("--latency-examples", type=int, help="examples timed one at a time (default 100)")
    r.add_argument("--save-model", action="store_true", default=None, help="save the fitted model with the run")
    for flag, typ in METHOD_FLAGS.items():
        r.add_argument("--" + flag.replace("_", "-"), dest=f"m_{flag}", type=typ, metavar=flag.upper(),
                       help=f"method parameter: same as --param {flag}=VALUE")
    r.add_argument("--param", action="append", type=_param, default=[], metavar="KEY=VALUE",
                   help="any method parameter, e.g. --param epochs=1 (repeatable)")
    r.add_argument("--executor", choices=["local", "ray"],
                   help="where runs compute: here (default) or on a Ray cluster (the grid's executor:)")
    r.add_argument("--workers", type=int, help="local executor: runs side by side, each in its own process (default 1)")
    r.add_argument("--address", help="--executor ray: the cluster (auto, ray://HOST:10001; default: a new local one)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return r


def run(args: argparse.Namespace) -> int:
    from clfbench.run.runner import not_complete, run_grid

    params = merge_params(args.param, {k: getattr(args, f"m_{k}") for k in METHOD_FLAGS})
    plan = flag_run(given_fields(vars(args)), args.method, args.model, params, grid=args.grid,
                    train_sizes=args.train_sizes, out=args.out)
    if plan.overrides_note and not args.quiet:
        print(plan.overrides_note, file=sys.stderr)
    specs, out = plan.specs, plan.out
    executor = flag_executor(plan.grid, args.executor, args.workers, args.address, args.grid or "run")
    folders = run_grid(specs, out, quiet=args.quiet, executor=executor)
    if not args.quiet:
        from clfbench.results.table import format_table, results_frame

        print(format_table(results_frame(out)))
        print(f"{len(folders)} run(s) written; results in {out}")
        if any(s.train_size for s in specs):
            _print_learning_curves(out)
    missing = not_complete(specs, out)
    if missing:  # exit 1: not bad input, but the grid is not done; a re-run retries these
        print(f"clfbench: {len(missing)} run(s) not complete in {out} (incomplete results are kept "
              "aside, not indexed); run the same command again to retry them", file=sys.stderr)
        return 1
    return 0


def _print_learning_curves(results: str | Path) -> None:
    """The crossover statement of every learning curve in a results folder."""
    from clfbench.report.learning_curve import learning_curves
    from clfbench.report.runs import load_runs

    for lc in learning_curves(load_runs(results)):
        print(lc.summary())
