"""Few-shot draws: every (seed, draw) pair is its own run, and the runner summarises them together."""

import io

from rich.console import Console

from clfbench.run.config import RunSpec, expand_draws
from clfbench.run.runner import _print_draws


class FakeStore:
    """The one Store method `_print_draws` reads: completed runs with their scores."""

    def __init__(self, specs: list[RunSpec]) -> None:
        self._runs = [{"run_id": s.run_id(), "accuracy": 0.5 + 0.01 * i, "macro_f1": 0.4}
                      for i, s in enumerate(specs)]

    def runs(self) -> list[dict]:
        return self._runs


def test_draws_of_every_seed_are_summarised_as_one_configuration():
    """seeds 99 and 100 with 3 draws: 6 runs in one summary line (they used to be 4 runs)."""
    base = RunSpec(method="llm-prompt", task="sst2", model="m", params={"shots": 2, "draws": 3})
    specs = expand_draws([base, RunSpec(**{**vars(base), "seed": 100})])
    out = io.StringIO()
    _print_draws(specs, FakeStore(specs), Console(file=out, width=200))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "over 6 runs (seeds 99, 100 x 3 draws)" in lines[0]
    assert "accuracy 0.5250 ± 0.0187" in lines[0]  # mean and std of 0.50..0.55
