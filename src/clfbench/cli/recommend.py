"""`clfbench recommend`: one configuration to deploy under volume, latency, budget and label
constraints."""

from __future__ import annotations

import argparse
from pathlib import Path

from clfbench.cli.common import add_constraint_args, constraints


def add_parser(sub) -> argparse.ArgumentParser:
    rc = sub.add_parser("recommend", help="one configuration to deploy under volume, latency, budget and label "
                        "constraints, with its evidence, runner-up and what would change the decision")
    rc.add_argument("dir", help="a results folder written by `clfbench run`")
    add_constraint_args(rc, required=True)
    rc.add_argument("--hardware", help="hardware profile for cost (default serverless-cpu-2vcpu-2gib)")
    rc.add_argument("--hardware-file", help="your own hardware profiles YAML")
    rc.add_argument("--cost-basis", choices=["request", "batch"], default="request",
                    help="serving cost from p50 one request at a time (default) or batch throughput")
    rc.add_argument("--html", metavar="OUT", help="also write the recommendation as an HTML page")
    rc.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    return rc


def run(args: argparse.Namespace) -> int:
    from clfbench.report.recommend import recommend, render_html

    recs = recommend(args.dir, constraints(args), args.hardware, args.hardware_file, args.cost_basis,
                     seed=args.seed)
    print("\n\n".join(r.text() for r in recs))
    if args.html:
        Path(args.html).write_text(render_html(recs, f"clfbench recommendation: {Path(args.dir).name}"),
                                   encoding="utf-8")
        print(f"written to {args.html}")
    return 0
