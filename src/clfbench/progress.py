"""Telling the user what long work is coming: progress bars and training-time estimates.

Progress goes to stderr, only when `verbose` (set by `evaluate` from `--quiet`), and is never
updated inside a timed call. On a terminal it is a tqdm bar that vanishes when done. Anywhere
else (CI logs, `2> file`, a pipe) a bar's carriage returns would leave dozens of partial lines,
so progress is a few whole lines instead (`LineProgress`): one at the start, one at each
quarter or after `LINE_INTERVAL_S` seconds without one, and one at the end. Libraries' own bars
(transformers, datasets, the hub) are turned off there too (`library_bars`).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TextIO, TypeVar

T = TypeVar("T")

#: In a non-interactive stream, a progress line at least this often (besides each quarter).
LINE_INTERVAL_S = 30.0


class Bar(Protocol):
    """What `progress_bar` returns: a tqdm bar, a `LineProgress` or a no-op."""

    def update(self, n: int = 1) -> Any: ...

    def close(self) -> Any: ...


def interactive(stream: TextIO | None = None) -> bool:
    """Whether `stream` (default: stderr) is a terminal, where a bar can redraw itself."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # a closed or unusual stream: plain lines
        return False


class LineProgress:
    """Progress as a few whole, newline-terminated lines (no '\\r'), for logs and pipes.

    A line when it starts, when a new quarter of `total` is reached or `interval` seconds
    passed since the last line, and a final one from `close`: a 100-step loop prints 5 lines.
    """

    def __init__(self, desc: str, total: int | None, stream: TextIO | None = None,
                 interval: float = LINE_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.desc, self.total, self.interval, self.clock = desc, total, interval, clock
        self.stream = stream
        self.n, self._quarter, self._closed = 0, 0, False
        self.start = self._last = clock()
        self._write(f"{desc}: 0/{total:,}" if total else f"{desc}: started")

    def _write(self, line: str) -> None:
        print(line, file=self.stream if self.stream is not None else sys.stderr, flush=True)

    def _count(self) -> str:
        if not self.total:
            return f"{self.n:,}"
        return f"{self.n:,}/{self.total:,} ({100 * self.n // self.total}%)"

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._closed or (self.total and self.n >= self.total):
            return  # the last line is `close`'s
        now = self.clock()
        quarter = 4 * self.n // self.total if self.total else 0
        if quarter > self._quarter or now - self._last >= self.interval:
            self._quarter, self._last = quarter, now
            self._write(f"{self.desc}: {self._count()}, {format_seconds(now - self.start)}")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        took = format_seconds(self.clock() - self.start)
        if self.total and self.n < self.total:
            self._write(f"{self.desc}: stopped at {self._count()} after {took}")
        else:
            self._write(f"{self.desc}: {self.n:,}" + (f"/{self.total:,}" if self.total else "")
                        + f" done in {took}")


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(desc: str, total: int | None, enabled: bool = True) -> Bar:
    """A bar named `desc` on stderr for `total` steps: tqdm on a terminal, `LineProgress`
    elsewhere, nothing when not `enabled`. Call `update()` per step and `close()` at the end."""
    if not enabled:
        return _NoBar()
    if not interactive():
        return LineProgress(desc, total)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, file=sys.stderr, dynamic_ncols=True)


def progress(items: Iterable[T], desc: str, enabled: bool = True, total: int | None = None) -> Iterator[T]:
    """`items`, with progress named `desc` on stderr when `enabled` (see `progress_bar`)."""
    if not enabled:
        yield from items
        return
    if total is None:
        try:
            total = len(items)  # type: ignore[arg-type]
        except TypeError:
            total = None
    bar = progress_bar(desc, total)
    try:
        for item in items:
            yield item
            bar.update(1)
    finally:
        bar.close()


def say(line: str) -> None:
    """One line on stderr that does not break a bar being drawn on a terminal."""
    if interactive():
        from tqdm.auto import tqdm

        tqdm.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr, flush=True)


def quiet_transformers() -> None:
    """No weight-loading reports or bars from transformers (a run's own progress is clfbench's)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover - transformers is a core dependency
        return
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def library_bars(enabled: bool) -> None:
    """Libraries' own progress bars (datasets, the Hugging Face hub) on or off.

    Off with `--quiet` and wherever stderr is not a terminal (ours print whole lines there).
    Set through the environment so that worker processes inherit it; libraries already
    imported are told directly.
    """
    if enabled:
        return
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()


def format_seconds(seconds: float) -> str:
    """'45 s', '3 min 20 s', '2 h 05 min': rounded for a human reader."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def estimate_line(n_examples: int, batch_size: int, epochs: int, seconds_per_step: float, *,
                  unit: str = "examples", max_steps: int | None = None) -> str:
    """What training will do and about how long it takes, from a timed warm-up step.

    `seconds_per_step`: the measured time of one optimizer step at `batch_size` (after a
    warm-up step, so one-off costs are excluded). Validation passes are not included.
    `unit`: what is trained on (setfit: "pairs"); `max_steps`: a cap on the steps, if any.
    """
    if n_examples < 0 or batch_size < 1 or epochs < 1 or seconds_per_step < 0:
        raise ValueError("estimate_line: n_examples >= 0, batch_size >= 1, epochs >= 1, "
                         "seconds_per_step >= 0")
    per_epoch = math.ceil(n_examples / batch_size)
    steps = per_epoch * epochs
    run = min(steps, max_steps) if max_steps is not None and max_steps > 0 else steps
    capped = run < steps
    return (f"training on {n_examples:,} {unit}: {_n(epochs, 'epoch')} x {_n(per_epoch, 'step')} "
            f"of {batch_size} = {_n(steps, 'step')}" + (f", capped at {_n(run, 'step')}" if capped else "")
            + f", about {format_seconds(run * seconds_per_step)} "
            f"({seconds_per_step:.2f} s per step in a timed warm-up; validation not included)")


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"
