"""`clfbench results`: the comparison table of a results folder."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    res = sub.add_parser("results", help="print the comparison table of a results folder")
    res.add_argument("dir", help="a results folder written by `clfbench run` (its --out)")
    res.add_argument("--format", choices=["table", "csv", "json", "markdown"], default="table",
                     help="output format (default table)")
    return res


def run(args: argparse.Namespace) -> int:
    from clfbench.results.table import format_table, results_frame

    print(format_table(results_frame(args.dir), args.format), end="")
    return 0
