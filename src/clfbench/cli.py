"""The `clfbench` command: parse arguments, call the library, print. No logic of its own."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from clfbench.errors import ClfbenchError

# Flags that become method parameters when given (a method rejects ones it does not take).
METHOD_FLAGS = {
    "epochs": int, "lr": float, "batch_size": int, "max_length": int,
    "shots": int, "decision": str, "draws": int, "backend": str,
}


def _param(value: str) -> tuple[str, object]:
    import yaml

    if "=" not in value:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    key, _, raw = value.partition("=")
    return key.strip().replace("-", "_"), yaml.safe_load(raw)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clfbench", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run one configuration, or a grid from a YAML file")
    r.add_argument("grid", nargs="?", help="GRID.yaml: tasks x methods x models x seeds")
    r.add_argument("--task", help="a registered task (see `clfbench tasks`)")
    r.add_argument("--method", help="a registered method (see `clfbench methods`)")
    r.add_argument("--model", help="hub id, local folder, or alias (minilm)")
    r.add_argument("--data-dir", help="local dataset folder instead of the hub")
    r.add_argument("--train", dest="train_file", help="your own training file (csv/tsv/jsonl/parquet)")
    r.add_argument("--validation", dest="validation_file", help="your own validation file")
    r.add_argument("--test", dest="test_file", help="your own test file (the reported split)")
    r.add_argument("--text-col", default="text")
    r.add_argument("--text-pair-col", default=None)
    r.add_argument("--label-col", default="label")
    r.add_argument("--name", help="a display name for your own data (default: the train file's stem)")
    r.add_argument("--seed", type=int, default=99, help="training seed (default 99)")
    r.add_argument("--data-seed", type=int, default=99, help="seed of splits and subsamples")
    r.add_argument("--max-train", type=int, help="stratified, seeded subsample of train")
    r.add_argument("--max-eval", type=int, help="stratified, seeded subsample of the eval splits")
    r.add_argument("--out", default="clfbench-runs", help="results folder (default clfbench-runs)")
    r.add_argument("--threads", type=int, help="torch CPU threads")
    r.add_argument("--latency-examples", type=int, default=100)
    r.add_argument("--save-model", action="store_true", help="save the fitted model with the run")
    for flag, typ in METHOD_FLAGS.items():
        r.add_argument("--" + flag.replace("_", "-"), dest=f"m_{flag}", type=typ, help=argparse.SUPPRESS)
    r.add_argument("--param", action="append", type=_param, default=[], metavar="KEY=VALUE",
                   help="any method parameter, e.g. --param epochs=1 (repeatable)")
    r.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    res = sub.add_parser("results", help="print the comparison table of a results folder")
    res.add_argument("dir")
    res.add_argument("--format", choices=["table", "csv", "json", "markdown"], default="table")

    rep = sub.add_parser("report", help="tables, significance, cost, plots and one HTML file from a results folder")
    rep.add_argument("dir", help="a results folder written by `clfbench run`")
    rep.add_argument("--out", help="report folder (default DIR/report)")
    rep.add_argument("--tau", type=float, help="your latency tolerance in ms for the utility ranking "
                     "(250, 500 and 1000 are always shown; default ranking 500)")
    rep.add_argument("--hardware", help="hardware profile for cost (default serverless-cpu-2vcpu-2gib)")
    rep.add_argument("--hardware-file", help="your own hardware profiles YAML (same layout as the shipped one)")
    rep.add_argument("--cost-basis", choices=["request", "batch"], default="request",
                     help="cost used for utility and Pareto: one request at a time (p50) or batched (throughput)")
    rep.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    rep.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    rep.add_argument("--mlflow", action="store_true", help="also log every run to MLflow (sqlite:///DIR/mlflow.db)")

    pr = sub.add_parser("predict", help="predict with a run's saved model")
    pr.add_argument("--run", required=True, help="a run folder saved with --save-model")
    pr.add_argument("--text", action="append", help="a text to classify (repeatable)")
    pr.add_argument("--text-pair", action="append", help="the second text, for pair tasks")
    pr.add_argument("--file", help="a file of texts (csv/tsv/jsonl/parquet, or .txt one per line)")
    pr.add_argument("--text-col", default="text")
    pr.add_argument("--text-pair-col", default=None)

    sub.add_parser("tasks", help="list the registered tasks")
    sub.add_parser("methods", help="list the registered methods")

    d = sub.add_parser("demo", help="compare methods on the shipped demo dataset (offline)")
    d.add_argument("--out", default="clfbench-demo", help="results folder (default clfbench-demo)")
    d.add_argument("-q", "--quiet", action="store_true")
    return p


def _version() -> str:
    from clfbench import __version__

    return f"clfbench {__version__}"


def cmd_run(args) -> int:
    from clfbench.config import SPEC_FIELDS, RunSpec, load_grid
    from clfbench.runner import run_grid

    params = dict(args.param)
    params.update({k: getattr(args, f"m_{k}") for k in METHOD_FLAGS if getattr(args, f"m_{k}") is not None})
    if args.grid:
        specs, raw = load_grid(args.grid)
        out = raw.get("out", args.out) if args.out == "clfbench-runs" else args.out
    else:
        if not args.method:
            raise ClfbenchError("run: give --method (and --task or --train), or a GRID.yaml")
        if not args.task and not args.train_file:
            raise ClfbenchError("run: give --task NAME or your own data with --train FILE")
        fields = {k: v for k, v in vars(args).items() if k in SPEC_FIELDS and v is not None}
        specs = [RunSpec(**{**fields, "params": params})]
        out = args.out
    folders = run_grid(specs, out, quiet=args.quiet)
    if not args.quiet:
        from clfbench.results import render, results_frame

        print(render(results_frame(out)))
        print(f"{len(folders)} run(s) written; results in {out}")
    return 0


def cmd_results(args) -> int:
    from clfbench.results import render, results_frame

    print(render(results_frame(args.dir), args.format), end="")
    return 0


def cmd_report(args) -> int:
    from clfbench.report import build_report

    out = build_report(args.dir, args.out, tau=args.tau, hardware=args.hardware,
                       hardware_file=args.hardware_file, basis=args.cost_basis,
                       n_boot=args.bootstrap, seed=args.seed, mlflow=args.mlflow)
    print(f"report written to {out.out_dir}: {out.html.name}, {out.csv.name}, "
          f"{len(out.tables)} tables, {len(out.plots)} plots")
    if out.mlflow_uri:
        print(f"runs logged to MLflow: mlflow ui --backend-store-uri {out.mlflow_uri}")
    return 0


def cmd_predict(args) -> int:
    from clfbench.data import Texts
    from clfbench.methods.base import Classifier

    model_dir = Path(args.run) / "model"
    if not model_dir.is_dir():
        raise ClfbenchError(f"{args.run}: no saved model (run with --save-model)")
    if args.file:
        texts = _read_predict_file(Path(args.file), args.text_col, args.text_pair_col)
    elif args.text:
        texts = Texts(args.text, args.text_pair)
    else:
        raise ClfbenchError("predict: give --text or --file")
    model = Classifier.load(model_dir)
    pred, proba = model.classify(texts)
    for i in range(len(texts)):
        row = {"text": texts.texts[i], "label": model.labels[pred[i]] if pred[i] >= 0 else None}
        if proba is not None:
            row["probabilities"] = {n: round(float(p), 4) for n, p in zip(model.labels, proba[i])}
        print(json.dumps(row, ensure_ascii=False))
    return 0


def _read_predict_file(path: Path, text_col: str, pair_col: str | None):
    from clfbench.data import Texts
    from clfbench.io import frame_to_labeled, read_table

    if path.suffix == ".txt":
        if not path.is_file():
            raise ClfbenchError(f"{path}: file not found")
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if not lines:
            raise ClfbenchError(f"{path}: no texts")
        return Texts(lines)
    data = frame_to_labeled(read_table(path), str(path), text_col, None, pair_col=pair_col)
    return Texts(data.texts, data.pairs)


def cmd_tasks(args) -> int:
    from clfbench.tasks import all_tasks

    for t in all_tasks().values():
        sizes = ", ".join(f"{k} {v:,}" for k, v in t.sizes.items())
        shown = []
        for label in t.labels:  # as many names as fit in about 60 characters
            if shown and len(", ".join(shown + [label])) > 60:
                break
            shown.append(label)
        labels = ", ".join(shown) + (", ..." if len(shown) < len(t.labels) else "")
        kind = "pair" if t.is_pair else "single"
        print(f"{t.name:<14} {kind:<6} {len(t.labels):>3} labels  [{sizes}]  {labels}")
    return 0


def cmd_methods(args) -> int:
    from clfbench.methods.base import METHODS, get_method

    for name in METHODS:
        doc = (get_method(name).__doc__ or "").strip().splitlines()[0]
        print(f"{name:<14} {doc}")
    return 0


def cmd_demo(args) -> int:
    from clfbench.demo import run_demo

    return run_demo(args.out, quiet=args.quiet)


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a core dependency
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


COMMANDS = {"run": cmd_run, "results": cmd_results, "report": cmd_report, "predict": cmd_predict,
            "tasks": cmd_tasks, "methods": cmd_methods, "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # transformers' load reports ("classifier.weight MISSING" for a new head, as expected when
    # fine-tuning) and weight-loading bars would bury clfbench's own progress output.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    args = build_parser().parse_args(argv)
    if args.command in ("run", "demo", "predict"):
        _quiet_transformers()
    try:
        return COMMANDS[args.command](args)
    except ClfbenchError as e:
        print(f"clfbench: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("clfbench: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
