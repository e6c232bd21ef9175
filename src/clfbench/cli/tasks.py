"""`clfbench tasks`: the registered tasks, their labels and sizes, which load from --data-dir."""

from __future__ import annotations

import argparse


def add_parser(sub) -> argparse.ArgumentParser:
    return sub.add_parser("tasks", help="list the registered tasks: labels, sizes, which load from --data-dir")


def run(args: argparse.Namespace) -> int:
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
