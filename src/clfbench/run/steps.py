"""A plan's steps run for real: each `Step` becomes RunSpecs on the user's files and runs
through `run_grid` into a results folder; `done` asks that folder's store whether every run of
a step is complete, so that a resumed `decide` skips what it finished (`plan.schedule`).

Why the store and not a record of its own: the store already knows complete runs (indexed
only when saved whole), the same answer `clfbench run` resumes from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clfbench.run.config import RunSpec
from clfbench.run.plan import Step
from clfbench.run.runner import not_complete, run_grid


@dataclass
class StepRunner:
    """Runs plan steps into `out`. `data`: the RunSpec fields every step shares (train_file,
    validation_file, test_file, text_col, label_col, seed, ...). `isolate`: as `run_grid`'s."""

    out: str | Path
    data: dict[str, Any] = field(default_factory=dict)
    quiet: bool = True
    isolate: bool | None = None

    def specs(self, step: Step) -> list[RunSpec]:
        """The runs of `step` on the user's data."""
        return step.run_specs(**self.data)

    def done(self, step: Step) -> bool:
        """Every run of `step` is complete in `out` (draws of small learning-curve sizes
        included: `runner.not_complete` expands them as the grid does)."""
        return Path(self.out).exists() and not not_complete(self.specs(step), self.out)

    def __call__(self, step: Step, limit_s: float) -> bool:
        """Run `step` (the runs not already complete); True when all of them are.

        `limit_s` is not enforced yet: `run_grid` has no deadline, so a step runs to its end."""
        run_grid(self.specs(step), self.out, quiet=self.quiet, isolate=self.isolate)
        return self.done(step)
