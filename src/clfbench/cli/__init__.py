"""The `clfbench` command: parse arguments, call the library, print. No logic of its own."""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import warnings
from pathlib import Path
from typing import Any

from clfbench.errors import ClfbenchError
from clfbench.extras import require

# Flags that become method parameters when given (a method rejects ones it does not take).
METHOD_FLAGS = {
    "epochs": int, "lr": float, "batch_size": int, "max_length": int,
    "shots": int, "decision": str, "draws": int, "backend": str,
}
DEFAULT_OUT = "clfbench-runs"
# Flags whose dest differs from the flag's name (for messages).
_FLAG_NAMES = {"train_file": "--train", "validation_file": "--validation", "test_file": "--test"}


def _param(value: str) -> tuple[str, object]:
    import yaml

    from clfbench.data.files import yaml_load

    if "=" not in value:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {value!r}")
    key, _, raw = value.partition("=")
    try:
        return key.strip().replace("-", "_"), yaml_load(raw)
    except yaml.YAMLError:
        raise argparse.ArgumentTypeError(f"{value!r}: the value is not valid YAML") from None


def _constraint_args(p: argparse.ArgumentParser, required: bool, what: str = "") -> None:
    """The deployment constraints of `recommend` (and of `report --volume`)."""
    g = p.add_argument_group("deployment constraints" + (f" ({what})" if what else ""))
    g.add_argument("--volume", required=required,
                   help="requests, e.g. 1e6/day, 50/s, 2000/hour (a bare number: per day)")
    g.add_argument("--p95-ms", type=float, help="p95 latency limit in ms (served p95 where measured, else in-process)")
    g.add_argument("--budget-usd-month", type=float, help="monthly budget: serving + amortised training and labelling")
    g.add_argument("--labels-available", type=float, help="labelled examples you have (or can get)")
    g.add_argument("--price-per-label", type=float, default=0.0, help="USD per labelled example (default 0)")
    g.add_argument("--amortize-months", type=float, default=12.0,
                   help="months over which training and labelling are spread (default 12)")
    g.add_argument("--peak-factor", type=float, default=3.0,
                   help="peak request rate over the daily mean, for the served concurrency (default 3)")


def _constraints(args: argparse.Namespace) -> Any:
    """The `Constraints` of the parsed flags; None without --volume (report)."""
    from clfbench.report.recommend import Constraints, parse_volume

    if args.volume is None:
        return None
    c = Constraints(parse_volume(args.volume), args.p95_ms, args.budget_usd_month, args.labels_available,
                    args.price_per_label, args.amortize_months, args.peak_factor)
    c.check()  # before any work
    return c


DESCRIPTION = """\
Compare text-classification methods on your data: TF-IDF, frozen or fine-tuned encoders,
prompted or LoRA-tuned LLMs, API models. Every method sees the same splits and is timed the
same way; results go to a folder that `results` and `report` read.

examples:
  clfbench demo                              # 3 methods on shipped support tickets (offline)
  clfbench run --train train.csv --test test.csv --method tfidf-lr --out runs
  clfbench run --task sst2 --data-dir DIR --method encoder-ft --model minilm --out runs
  clfbench report runs                       # tables, significance, cost, one HTML file

`clfbench COMMAND --help` describes a command; `clfbench methods` lists every method's
parameters, `clfbench tasks` the registered tasks."""


class _StoreOnce(argparse._StoreAction):
    """argparse's `store`, refusing a flag given twice with different values (argparse would
    keep the last one silently)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        seen = namespace.__dict__.setdefault("_given_once", {})
        if option_string and self.dest in seen and seen[self.dest] != values:
            raise ClfbenchError(f"{option_string} given twice ({seen[self.dest]} and {values}); "
                                "it takes one value")
        if option_string:
            seen[self.dest] = values
        setattr(namespace, self.dest, values)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser (and its subcommands') whose single-valued flags refuse a repeat."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("action", None, _StoreOnce)
        self.register("action", "store", _StoreOnce)


#: What `predict --help` and `serve --help` say about loading saved models (README: Trust).
TRUST_NOTE = (
    "Trust: scikit-learn estimators are saved as pipeline.skops / logreg.skops and loaded with "
        "trusted types only. A pipeline.joblib or logreg.joblib (folders of earlier versions) is "
        "a Python pickle: loading it runs any code it holds, so it is refused unless "
        "CLFBENCH_TRUST_PICKLES=1; set that only for folders from a source you trust. Weights "
        "(safetensors), ONNX graphs, tokenizer files and JSON/YAML state are data.")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="clfbench", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True)

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

    res = sub.add_parser("results", help="print the comparison table of a results folder")
    res.add_argument("dir", help="a results folder written by `clfbench run` (its --out)")
    res.add_argument("--format", choices=["table", "csv", "json", "markdown"], default="table",
                     help="output format (default table)")

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
    _constraint_args(rep, required=False, what="with --volume: the `recommend` section in the report")

    rc = sub.add_parser("recommend", help="one configuration to deploy under volume, latency, budget and label "
                        "constraints, with its evidence, runner-up and what would change the decision")
    rc.add_argument("dir", help="a results folder written by `clfbench run`")
    _constraint_args(rc, required=True)
    rc.add_argument("--hardware", help="hardware profile for cost (default serverless-cpu-2vcpu-2gib)")
    rc.add_argument("--hardware-file", help="your own hardware profiles YAML")
    rc.add_argument("--cost-basis", choices=["request", "batch"], default="request",
                    help="serving cost from p50 one request at a time (default) or batch throughput")
    rc.add_argument("--html", metavar="OUT", help="also write the recommendation as an HTML page")
    rc.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")

    pr = sub.add_parser("predict", help="predict with a run's saved model", description=(
        "Predict with a run's saved model (--save-model). " + TRUST_NOTE))
    pr.add_argument("--run", required=True, help="a run folder saved with --save-model")
    pr.add_argument("--text", action="append", help="a text to classify (repeatable)")
    pr.add_argument("--text-pair", action="append", help="the second text, for pair tasks")
    pr.add_argument("--file", help="a file of texts (csv/tsv/jsonl/parquet, or .txt one per line)")
    pr.add_argument("--text-col", default="text", help="text column of --file (default text)")
    pr.add_argument("--text-pair-col", default=None, help="second-text column of --file, for pair tasks")
    pr.add_argument("--out", help="write predictions to this Parquet file, streaming --file in batches "
                    "(files larger than memory); without it, one JSON line per text on stdout")
    pr.add_argument("--batch-size", type=int, help="rows per batch with --out (default 1024)")
    pr.add_argument("--executor", choices=["local", "ray"], default="local",
                    help="with --out: classify here (default) or with Ray Data on a Ray cluster")
    pr.add_argument("--address", help="--executor ray: the cluster (auto, ray://HOST:10001; default: a new local one)")
    ep = pr.add_argument_group(
        "API models (llm-api, llm-dspy)",
        "A saved run does not choose which key is sent where: a stored base_url or api_key_env "
        "other than the defaults (https://api.openai.com/v1, OPENAI_API_KEY) is refused unless "
        "you give the endpoint yourself or trust the run's.")
    ep.add_argument("--base-url", help="the OpenAI-compatible endpoint to send requests to (replaces the run's)")
    ep.add_argument("--api-key-env", help="environment variable holding the endpoint's API key (replaces the run's)")
    ep.add_argument("--trust-run-endpoint", action="store_true",
                    help="use the base_url and api_key_env stored in the run folder")

    ex = sub.add_parser("export", help="a self-contained folder of a saved run's model, with its model card")
    ex.add_argument("run", help="a run folder saved with --save-model")
    ex.add_argument("--out", required=True, help="export folder (new or empty)")
    ex.add_argument("--format", choices=["onnx", "onnx-int8", "torch"],
                    help="fine-tuned models: onnx (default), onnx-int8 (+ fp32 re-check of near-ties) or torch")
    ex.add_argument("--recheck", default="auto", help="onnx-int8: re-check margin, 'auto' (the run's, else "
                    "calibrated to 99.8%% agreement with fp32) or 'off'")

    sv = sub.add_parser("serve", help="serve a run or an export over HTTP (needs the serve extra)",
                        description="Serve a run folder (--save-model) or an export over HTTP. " + TRUST_NOTE)
    sv.add_argument("path", help="an export folder, or a run folder saved with --save-model")
    sv.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    sv.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    sv.add_argument("--max-batch-size", type=int, default=32, help="texts per model call (1: no batching)")
    sv.add_argument("--max-wait-ms", type=float, default=5.0, help="longest wait to fill a batch (default 5)")
    sv.add_argument("--max-texts", type=int, default=256, help="texts per request (more: 413)")
    sv.add_argument("--max-text-chars", type=int, default=20_000, help="characters per text (more: 422)")
    sv.add_argument("--api-key-env", help="require the API key held in this environment variable")
    sv.add_argument("--drain-s", type=float, default=30.0,
                    help="on SIGTERM or Ctrl-C: stop accepting and give the requests in flight this many "
                         "seconds (default 30); then those unanswered get 503 with Retry-After. Exits 0 on SIGTERM")

    lt = sub.add_parser("loadtest", help="bounded load test of a `clfbench serve` URL")
    lt.add_argument("url", help="the server, e.g. http://127.0.0.1:8000")
    lt.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32], help="closed-loop levels (default 1 8 32)")
    lt.add_argument("--rate", type=float, help="also an open loop at this many requests per second")
    lt.add_argument("--requests", type=int, default=200, help="requests per level (default 200)")
    lt.add_argument("--duration", type=float, default=60.0, help="seconds per level at most (default 60)")
    lt.add_argument("--batch", type=int, default=1, help="texts per request (default 1)")
    lt.add_argument("--texts", help="texts to send (csv/tsv/jsonl/parquet with a text column, or .txt)")
    lt.add_argument("--api-key-env", help="send the API key held in this environment variable")
    lt.add_argument("--allow-remote", action="store_true", help="allow a host that is not loopback")
    lt.add_argument("--out", help="also write the result as JSON here")
    lt.add_argument("--attach", metavar="RUN", help="write the result into this run folder (served.json) for the report")

    sub.add_parser("tasks", help="list the registered tasks: labels, sizes, which load from --data-dir")
    me = sub.add_parser("methods", help="list the registered methods with their parameters and defaults")
    me.add_argument("name", nargs="?", help="one method: its full description and parameters")

    d = sub.add_parser("demo", help="compare 3 methods on shipped support tickets, build the report, "
                       "print the verdict (offline)")
    d.add_argument("--out", default="clfbench-demo", help="results folder (default clfbench-demo)")
    d.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return p


def _version() -> str:
    from clfbench.version import __version__

    return f"clfbench {__version__}"


def cmd_run(args) -> int:
    from clfbench.run.config import (
        OVERRIDABLE,
        SPEC_FIELDS,
        check_spec_values,
        expand_train_sizes,
        flag_specs,
        load_grid,
        parse_train_sizes,
    )
    from clfbench.run.runner import not_complete, run_grid

    params = dict(args.param)
    params.update({k: getattr(args, f"m_{k}") for k in METHOD_FLAGS if getattr(args, f"m_{k}") is not None})
    given = {k: v for k, v in vars(args).items() if k in SPEC_FIELDS and v is not None}
    fields = {k: v for k, v in given.items() if k not in ("method", "model")}  # lists: see flag_specs
    check_spec_values(fields, "", _flag)  # every flag's type and range, before anything is read
    sizes = parse_train_sizes(args.train_sizes) if args.train_sizes is not None else None
    if args.grid:
        # Flags given with a grid override it; ones that name what the grid lists are refused.
        refused = [_flag(k) for k in given if k not in OVERRIDABLE]
        if refused:
            raise ClfbenchError(f"run: {', '.join(refused)} cannot be used with a grid file; "
                                f"set such values in {args.grid}")
        overrides = {k: v for k, v in fields.items() if k in OVERRIDABLE}
        specs, raw = load_grid(args.grid, overrides, params, sizes)
        out = args.out or raw.get("out") or DEFAULT_OUT
        if (overrides or params) and not args.quiet:
            print(_overrides_line(overrides, params), file=sys.stderr)
    else:
        if not args.method:
            raise ClfbenchError("run: give --method (and --task or --train), or a GRID.yaml")
        if not args.task and not args.train_file:
            raise ClfbenchError("run: give --task NAME or your own data with --train FILE")
        specs = expand_train_sizes(flag_specs(fields, args.method, args.model, params), sizes)
        out = args.out or DEFAULT_OUT
        raw = {}
    folders = run_grid(specs, out, quiet=args.quiet, executor=_executor(args, raw))
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


def _executor(args, raw: dict):
    """The executor of `--executor/--workers/--address` and the grid's `executor:`/`resources:`."""
    from clfbench.run.executors import executor_settings, make_executor

    where = args.grid or "run"
    settings = executor_settings(raw.get("executor"), args.executor, args.workers, args.address, where)
    if settings["name"] == "ray":
        from clfbench.run.executors.ray import check_resources

        check_resources(raw.get("resources"), f"{where}: resources")
    return make_executor(**settings, resources=raw.get("resources"))


def _flag(field: str) -> str:
    """The command-line flag of a RunSpec field: train_file -> --train, max_eval -> --max-eval."""
    return _FLAG_NAMES.get(field, "--" + field.replace("_", "-"))


def _overrides_line(overrides: dict, params: dict) -> str:
    """'overrides from the command line: max_eval=50, seed=7, params C=0.5'."""
    parts = [f"{k}={v}" for k, v in sorted(overrides.items())]
    if params:
        parts.append("params " + ", ".join(f"{k}={v}" for k, v in params.items()))
    return "overrides from the command line: " + ", ".join(parts)


def cmd_results(args) -> int:
    from clfbench.results.table import format_table, results_frame

    print(format_table(results_frame(args.dir), args.format), end="")
    return 0


def cmd_report(args) -> int:
    from rich.console import Console
    from rich.markup import escape

    from clfbench.report import build_report

    constraints = _constraints(args)
    with Console(stderr=True).status(f"building the report of {escape(args.dir)} (bootstrap, plots, HTML)"):
        out = build_report(args.dir, args.out, tau=args.tau, hardware=args.hardware,
                           hardware_file=args.hardware_file, basis=args.cost_basis,
                           n_boot=args.bootstrap, seed=args.seed, mlflow=args.mlflow,
                           constraints=constraints)
    print(f"report written to {out.out_dir}: {out.html.name}, {out.csv.name}, "
          f"{len(out.tables)} tables, {len(out.plots)} plots")
    if out.recommendations:
        print("\n\n".join(r.text() for r in out.recommendations))
    for lc in out.learning:
        print(lc.summary())
    if out.mlflow_uri:
        print(f"runs logged to MLflow: mlflow ui --backend-store-uri {out.mlflow_uri}")
    return 0


def cmd_recommend(args) -> int:
    from clfbench.report.recommend import recommend, render_html

    recs = recommend(args.dir, _constraints(args), args.hardware, args.hardware_file, args.cost_basis,
                     seed=args.seed)
    print("\n\n".join(r.text() for r in recs))
    if args.html:
        Path(args.html).write_text(render_html(recs, f"clfbench recommendation: {Path(args.dir).name}"),
                                   encoding="utf-8")
        print(f"written to {args.html}")
    return 0


def cmd_predict(args) -> int:
    from clfbench.data.texts import Texts
    from clfbench.methods.base import Classifier, confirm_endpoint

    model_dir = Path(args.run) / "model"
    if not model_dir.is_dir():
        raise ClfbenchError(f"{args.run}: no saved model (run with --save-model)")
    if args.out or args.executor != "local" or args.batch_size is not None or args.address:
        return _predict_to_file(args)
    if args.file:
        texts = _read_predict_file(Path(args.file), args.text_col, args.text_pair_col)
    elif args.text:
        texts = Texts(args.text, args.text_pair)
    else:
        raise ClfbenchError("predict: give --text or --file")
    model = Classifier.load(model_dir)
    confirm_endpoint(model, _endpoint_args(args))
    pred, proba = model.classify(texts)
    for i in range(len(texts)):
        row = {"text": texts.texts[i], "label": model.labels[pred[i]] if pred[i] >= 0 else None}
        if proba is not None:
            row["probabilities"] = {n: round(float(p), 4) for n, p in zip(model.labels, proba[i])}
        print(json.dumps(row, ensure_ascii=False))
    return 0


def _endpoint_args(args) -> dict:
    return {"base_url": args.base_url, "api_key_env": args.api_key_env, "trust": args.trust_run_endpoint}


def _predict_to_file(args) -> int:
    """`predict --file F --out PRED.parquet`: streamed, batched, throughput on stderr."""
    from clfbench.serving.batch_predict import DEFAULT_BATCH_SIZE, predict_file

    if not args.file or not args.out or args.text:
        raise ClfbenchError("predict: --out, --batch-size and --executor take --file (not --text) and --out")
    stats = predict_file(args.run, args.file, args.out, args.text_col, args.text_pair_col,
                         args.batch_size or DEFAULT_BATCH_SIZE, args.executor, args.address,
                         endpoint=_endpoint_args(args))
    print(f"{stats['rows']:,} texts predicted in {stats['seconds']:.1f} s "
          f"({stats['throughput_sps']:,.0f} texts/s, batch {stats['batch_size']}, "
          f"executor {stats['executor']}) -> {stats['out']}", file=sys.stderr)
    return 0


def _read_predict_file(path: Path, text_col: str, pair_col: str | None):
    from clfbench.data.files import frame_to_labeled, read_table
    from clfbench.data.texts import Texts

    if path.suffix == ".txt":
        from clfbench.serving.batch_predict import check_input

        check_input(path, ["text"])  # empty, not UTF-8: the checks `predict --out` makes
        lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if not lines:
            raise ClfbenchError(f"{path}: no texts")
        return Texts(lines)
    data = frame_to_labeled(read_table(path), str(path), text_col, None, pair_col=pair_col)
    return Texts(data.texts, data.pairs)


def cmd_export(args) -> int:
    from clfbench.serving.export import export_run

    recheck = {"off": None, "auto": "auto"}.get(args.recheck, args.recheck)
    if isinstance(recheck, str) and recheck != "auto":
        try:
            recheck = float(recheck)
        except ValueError:
            raise ClfbenchError(f"export: --recheck {args.recheck!r} (expected auto, off or a margin)") from None
    out = export_run(args.run, args.out, args.format, recheck)
    print(f"exported {args.run} to {out} (model card: {out / 'MODEL_CARD.md'})")
    return 0


def _env_key(name: str | None) -> str | None:
    if not name:
        return None
    key = os.environ.get(name)
    if not key:
        raise ClfbenchError(f"--api-key-env {name}: the variable is not set or empty")
    return key


def cmd_serve(args) -> int:
    import tempfile

    require("fastapi", "uvicorn", what="clfbench serve")
    from clfbench.serving.app import ServeSettings, create_app, serve
    from clfbench.serving.export import export_run, is_export, load_export

    if min(args.max_batch_size, args.max_texts, args.max_text_chars) < 1 or min(args.max_wait_ms, args.drain_s) < 0:
        raise ClfbenchError("serve: --max-batch-size, --max-texts, --max-text-chars must be >= 1 "
                            "and --max-wait-ms, --drain-s >= 0")
    settings = ServeSettings(args.max_batch_size, args.max_wait_ms, args.max_texts, args.max_text_chars,
                             api_key=_env_key(args.api_key_env), drain_s=args.drain_s)
    with tempfile.TemporaryDirectory(prefix="clfbench-serve-") as tmp:
        folder = args.path if is_export(args.path) else export_run(args.path, Path(tmp) / "export")
        app = create_app(load_export(folder), settings)
        print(f"serving {args.path} on http://{args.host}:{args.port} "
              f"(batch {args.max_batch_size}, wait {args.max_wait_ms} ms)", file=sys.stderr)
        serve(app, args.host, args.port)
    return 0


def cmd_loadtest(args) -> int:
    from clfbench.serving.loadtest import attach, check_target, format_loadtest, run_loadtest

    key = _env_key(args.api_key_env)
    texts = _read_predict_file(Path(args.texts), "text", None).texts if args.texts else None
    check_target(args.url, args.allow_remote)
    result = run_loadtest(args.url, tuple(args.concurrency), args.rate, args.requests, args.duration,
                          texts, args.batch, key, args.allow_remote)
    print(format_loadtest(result))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    if args.attach:
        import httpx

        root = result["url"].removesuffix("/v1/classify")
        card = httpx.get(root + "/v1/model", headers={"Authorization": f"Bearer {key}"} if key else {},
                         trust_env=False).json()
        print(f"written to {attach(result, args.attach, card.get('export', {}).get('run_id'))}")
    return 0


def cmd_tasks(args) -> int:
    from clfbench.data.tasks import all_tasks

    width = 128  # every line fits a 130-column terminal
    print("Registered tasks. Without --data-dir a task loads from the Hugging Face hub; with\n"
          "--data-dir DIR, the ones with a local folder read their original files from DIR/FOLDER.")
    print(f"{'task':<14} {'input':<6} {'classes':<10}  {'local folder':<26} {'official splits':<30} label names")
    for t in all_tasks().values():
        sizes = ", ".join(f"{k} {v:,}" for k, v in t.sizes.items())
        kind = "pair" if t.is_pair else "single"
        local = t.local.get("dir", t.name) + "/" if t.local else "- (hub only)"
        row = f"{t.name:<14} {kind:<6} {len(t.labels):>3} labels  {local:<26} {sizes:<30} "
        shown: list[str] = []
        for i, label in enumerate(t.labels):  # as many names as fit in the line
            more = ["..."] if i + 1 < len(t.labels) else []
            if shown and len(row) + len(", ".join([*shown, label, *more])) > width:
                break
            shown.append(label)
        print(row + ", ".join(shown) + (", ..." if len(shown) < len(t.labels) else ""))
    return 0


def cmd_methods(args) -> int:
    from clfbench.methods.base import METHODS, get_method
    from clfbench.methods.params import format_default, method_params

    names = [args.name] if args.name else list(METHODS)
    for i, name in enumerate(names):
        doc = inspect.cleandoc(get_method(name).__doc__ or "")
        if args.name:
            print(f"{name}: {doc}" if doc else name)
        else:
            print(("\n" if i else "") + f"{name:<14} {doc.splitlines()[0] if doc else ''}")
        params = method_params(name)
        width = min(30, max((len(p.name) + len(format_default(p.default)) + 1 for p in params), default=0))
        print("  parameters (--param KEY=VALUE; default after =):")
        for p in params:
            print(f"    {p.name + '=' + format_default(p.default):<{width}}  {p.help}")
    if not args.name:
        print("\n`clfbench methods NAME` describes one method in full.")
    return 0


def cmd_demo(args) -> int:
    from clfbench.cli.demo import run_demo

    return run_demo(args.out, quiet=args.quiet)


COMMANDS = {"run": cmd_run, "results": cmd_results, "report": cmd_report, "recommend": cmd_recommend,
            "predict": cmd_predict,
            "tasks": cmd_tasks, "methods": cmd_methods, "demo": cmd_demo, "export": cmd_export,
            "serve": cmd_serve, "loadtest": cmd_loadtest}


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # transformers' load reports ("classifier.weight MISSING" for a new head, as expected when
    # fine-tuning) and weight-loading bars would bury clfbench's own progress output.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    # Libraries' deprecation notices (FutureWarning) are for developers, not for a user's run;
    # the variable carries the filter into worker processes.
    warnings.filterwarnings("ignore", category=FutureWarning)
    os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning")
    try:
        args = build_parser().parse_args(argv)
    except ClfbenchError as e:  # a single-valued flag given twice (_StoreOnce)
        print(f"clfbench: error: {e}", file=sys.stderr)
        return e.exit_code
    if args.command in ("run", "demo", "predict", "export", "serve"):
        from clfbench.progress import interactive, library_bars, quiet_transformers

        quiet_transformers()
        # datasets' and the hub's bars: carriage-return spam in a log, noise with --quiet
        library_bars(interactive() and not getattr(args, "quiet", False))
    try:
        return COMMANDS[args.command](args)
    except ClfbenchError as e:
        print(f"clfbench: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("clfbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `clfbench methods | head`: the reader has gone, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
