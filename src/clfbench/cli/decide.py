"""`clfbench decide`: from a CSV to a decision within a time budget (`clfbench.decide`)."""

from __future__ import annotations

import argparse

from clfbench.cli.common import add_constraint_args, constraints


def add_parser(sub) -> argparse.ArgumentParser:
    dc = sub.add_parser(
        "decide", help="one command from your CSV to a decision: profile, probe, plan within a time "
        "budget, run, report, recommend and export the winner (rerun the same command to resume)")
    data = dc.add_argument_group("data (CSV, TSV, JSONL or Parquet)")
    data.add_argument("--train", required=True, help="labelled training file")
    data.add_argument("--validation", help="validation file (default: split from train)")
    data.add_argument("--test", help="test file (default: split from train)")
    data.add_argument("--text-col", default="text", help="text column (default text)")
    data.add_argument("--text-pair-col", help="second text column, for pairs")
    data.add_argument("--label-col", default="label", help="label column (default label)")
    dc.add_argument("--time-budget", required=True,
                    help="the deadline for everything, report and export included: 90s, 15m, 1h, 1h30m")
    dc.add_argument("--llm", help="also try an LLM: MODEL (a local causal LM: hub id or folder) or "
                    "MODEL@https://host/v1 (an OpenAI-compatible endpoint; key in OPENAI_API_KEY)")
    dc.add_argument("--families", help="only these families, comma-separated (default: every one that fits), "
                    "e.g. tfidf-lr,embed-probe")
    dc.add_argument("--out", default="clfbench-decide", help="results folder (default clfbench-decide)")
    add_constraint_args(dc, required=False, what="the recommendation's; default 1e6/day")
    return dc


def run(args: argparse.Namespace) -> int:
    from clfbench.decide import decide
    from clfbench.run.plan import parse_duration, parse_llm

    budget = parse_duration(args.time_budget)
    llm = parse_llm(args.llm) if args.llm else None
    families = [f.strip() for f in args.families.split(",") if f.strip()] if args.families else None
    decide(args.train, args.out, budget, validation_file=args.validation, test_file=args.test,
           text_col=args.text_col, label_col=args.label_col, text_pair_col=args.text_pair_col,
           constraints=constraints(args), llm=llm, families=families, console=print)
    return 0
