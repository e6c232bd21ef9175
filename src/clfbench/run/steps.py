"""A plan's steps run for real: each `Step` becomes RunSpecs on the user's files and runs
through `run_grid` into a results folder; `done` asks that folder's store whether every run of
a step is complete, so that a resumed `decide` skips what it finished (`plan.schedule`).

Why the store and not a record of its own: the store already knows complete runs (indexed
only when saved whole), the same answer `clfbench run` resumes from.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from clfbench.run.config import RunSpec
from clfbench.run.plan import Step
from clfbench.run.runner import not_complete, run_grid


@dataclass
class StepRunner:
    """Runs plan steps into `out`. `data`: the RunSpec fields every step shares (train_file,
    validation_file, test_file, text_col, label_col, seed, ...). `isolate`: as `run_grid`'s.
    `save_models`: a full-size step's runs keep their model (what `decide` exports); a
    learning-curve step's many small runs keep none (any of them can be re-run with its model)."""

    out: str | Path
    data: dict[str, Any] = field(default_factory=dict)
    quiet: bool = True
    isolate: bool | None = None
    save_models: bool = False
    clock: Callable[[], float] = time.monotonic

    def specs(self, step: Step) -> list[RunSpec]:
        """The runs of `step` on the user's data."""
        specs = step.run_specs(**self.data)
        if self.save_models and not step.train_sizes:
            specs = [replace(s, save_model=True) for s in specs]
        return specs

    def done(self, step: Step) -> bool:
        """Every run of `step` is complete in `out` (draws of small learning-curve sizes
        included: `runner.not_complete` expands them as the grid does)."""
        return Path(self.out).exists() and not self.todo(step)

    def todo(self, step: Step) -> list[RunSpec]:
        """The runs of `step` (draws expanded) not complete in `out`."""
        return not_complete(self.specs(step), self.out)

    def __call__(self, step: Step, limit_s: float) -> bool:
        """Run `step` (the runs not already complete); True when all of them are.

        `limit_s` is checked between runs: past it no further run starts and the step returns
        False (the runs saved so far stay, complete, for a resumed command). A run already
        started is not interrupted (`run_grid` has no deadline)."""
        start = self.clock()
        for spec in self.todo(step):
            if self.clock() - start > limit_s:
                return False
            # one draw at a time: a draw-0 spec of a small size would expand into every draw
            one = replace(spec, size_draws=1) if spec.train_size and not spec.draw else spec
            run_grid([one], self.out, quiet=self.quiet, isolate=self.isolate)
        return self.done(step)
