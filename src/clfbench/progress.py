"""Telling the user what long work is coming: progress bars and training-time estimates.

Bars go to stderr and vanish when done; the methods show them only when `verbose` (set by
`evaluate` from `--quiet`), and never inside a timed pass.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress(items: Iterable[T], desc: str, enabled: bool = True, total: int | None = None) -> Iterator[T]:
    """`items`, under a tqdm bar named `desc` on stderr when `enabled` (else untouched)."""
    if not enabled:
        yield from items
        return
    from tqdm.auto import tqdm

    yield from tqdm(items, desc=desc, total=total, leave=False, file=sys.stderr, dynamic_ncols=True)


def format_seconds(seconds: float) -> str:
    """'45 s', '3 min 20 s', '2 h 05 min': rounded for a human reader."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def estimate_line(n_examples: int, batch_size: int, epochs: int, seconds_per_step: float) -> str:
    """What training will do and about how long it takes, from a timed warm-up step.

    `seconds_per_step`: the measured time of one optimizer step at `batch_size` (after a
    warm-up step, so one-off costs are excluded). Validation passes are not included.
    """
    if n_examples < 0 or batch_size < 1 or epochs < 1 or seconds_per_step < 0:
        raise ValueError("estimate_line: n_examples >= 0, batch_size >= 1, epochs >= 1, "
                         "seconds_per_step >= 0")
    per_epoch = math.ceil(n_examples / batch_size)
    steps = per_epoch * epochs
    return (f"training on {n_examples:,} examples: {_n(epochs, 'epoch')} x {_n(per_epoch, 'step')} "
            f"of {batch_size} = {_n(steps, 'step')}, about {format_seconds(steps * seconds_per_step)} "
            f"({seconds_per_step:.2f} s per step in a timed warm-up; validation not included)")


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
