"""The `clfbench` command: the top-level parser, each subcommand's from its own module
(`add_parser(subparsers)` and `run(args) -> int`), and `main`, which turns errors into one line
and an exit code. No logic of its own: the subcommands parse, call the library and print."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from typing import Any

from clfbench.cli import (
    decide,
    demo,
    export,
    loadtest,
    methods,
    predict,
    recommend,
    report,
    results,
    run,
    serve,
    tasks,
)
from clfbench.errors import ClfbenchError

#: The subcommands, in the order `clfbench --help` lists them.
COMMANDS = {"run": run, "results": results, "report": report, "recommend": recommend, "predict": predict,
            "export": export, "serve": serve, "loadtest": loadtest, "decide": decide, "tasks": tasks,
            "methods": methods, "demo": demo}

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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="clfbench", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=_version())
    sub = p.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        command.add_parser(sub)
    return p


def _version() -> str:
    from clfbench.version import __version__

    return f"clfbench {__version__}"


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
    if args.command in ("run", "demo", "predict", "export", "serve", "decide"):
        from clfbench.progress import interactive, library_bars, quiet_transformers

        quiet_transformers()
        # datasets' and the hub's bars: carriage-return spam in a log, noise with --quiet
        library_bars(interactive() and not getattr(args, "quiet", False))
    try:
        return COMMANDS[args.command].run(args)
    except ClfbenchError as e:
        print(f"clfbench: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("clfbench: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `clfbench methods | head`: the reader has gone, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
