"""The plan's state as `decide` runs it: one line per step state change, with how many steps
are done, running, queued and cut, and the time elapsed and left against the budget."""

from __future__ import annotations

from collections.abc import Callable

from clfbench.progress import format_seconds
from clfbench.run.plan import Deadline, Plan, Step

#: What `schedule` reports -> the step's state in the counts.
STATES = {"already done": "done", "completed": "done", "running": "running", "cut": "cut",
          "stopped": "cut", "failed": "cut"}


class PlanProgress:
    """Called by `schedule(on_change=...)`; writes each line to `say`."""

    def __init__(self, plan: Plan, deadline: Deadline, say: Callable[[str], object]) -> None:
        self.deadline, self.say = deadline, say
        self.states = {s.key: "queued" for s in plan.steps}

    def counts(self) -> str:
        n = {k: sum(v == k for v in self.states.values()) for k in ("done", "running", "queued", "cut")}
        return ", ".join(f"{k} {v}" for k, v in n.items() if v or k != "cut")

    def line(self, step: Step, event: str) -> str:
        d = self.deadline
        return (f"[{format_seconds(d.elapsed())} elapsed, {format_seconds(max(d.remaining(), 0))} left "
                f"of {format_seconds(d.budget_s)}] {step.key}: {event} ({self.counts()})")

    def __call__(self, step: Step, event: str) -> None:
        self.states[step.key] = STATES[event]
        self.say(self.line(step, event))
