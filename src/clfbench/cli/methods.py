"""`clfbench methods`: the registered methods with their parameters and defaults."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    me = sub.add_parser("methods", help="list the registered methods with their parameters and defaults")
    me.add_argument("name", nargs="?", help="one method: its full description and parameters")
    return me


def run(args: argparse.Namespace) -> int:
    import inspect  # lazily, like every import here: `clfbench --help` starts fast

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
