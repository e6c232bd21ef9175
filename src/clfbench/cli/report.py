"""`clfbench report`: tables, significance, cost, plots and one HTML file from a results folder."""

from __future__ import annotations

import argparse

from clfbench.cli.common import add_constraint_args, constraints


def add_parser(sub) -> argparse.ArgumentParser:
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
    add_constraint_args(rep, required=False, what="with --volume: the `recommend` section in the report")
    return rep


def run(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape

    from clfbench.report import build_report

    given = constraints(args)
    with Console(stderr=True).status(f"building the report of {escape(args.dir)} (bootstrap, plots, HTML)"):
        out = build_report(args.dir, args.out, tau=args.tau, hardware=args.hardware,
                           hardware_file=args.hardware_file, basis=args.cost_basis,
                           n_boot=args.bootstrap, seed=args.seed, mlflow=args.mlflow,
                           constraints=given)
    print(f"report written to {out.out_dir}: {out.html.name}, {out.csv.name}, "
          f"{len(out.tables)} tables, {len(out.plots)} plots")
    if out.recommendations:
        print("\n\n".join(r.text() for r in out.recommendations))
    for lc in out.learning:
        print(lc.summary())
    if out.mlflow_uri:
        print(f"runs logged to MLflow: mlflow ui --backend-store-uri {out.mlflow_uri}")
    return 0
