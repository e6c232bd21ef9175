"""`decide`: the whole comparison on the user's data within a time budget, ending with the
recommendation, the HTML report and an export of the winner.

Steps, in order (nothing is written to `out` before step 4, so bad input leaves nothing):
1. Inputs: the files loaded and checked as `clfbench run` loads them; the families, the
   constraints and `out` checked.
2. Profile the data and the machine; the budget checked against the smallest plan at default
   costs (`check_budget`), before any probe.
3. A plan saved in `out` for the same inputs is resumed as it was. Otherwise the families are
   probed (within `PROBE_SHARE` of the budget, by their default costs) and planned on the
   time left (`make_plan`, the probes' left-out families excluded).
4. plan.json written; the plan printed; its steps run against the deadline (`schedule`), one
   progress line per step state change.
5. Report with the recommendation (`finish.py`), the pick exported; what was cut, and why.

The deadline: a step starts only when its estimate fits what is left before the reserve kept
for the report and export, and a step of several runs starts no run past its limit; a run
already started is not interrupted, so an estimate far too low can still overrun. A resumed
call has the whole budget again for the steps not done.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clfbench.decide import finish
from clfbench.decide.inputs import PLAN_FILE, Inputs, check_families, check_out, load_inputs
from clfbench.decide.saved import fingerprint, save_plan, saved_plan
from clfbench.decide.status import PlanProgress
from clfbench.errors import ClfbenchError
from clfbench.progress import format_seconds
from clfbench.report.recommend import Constraints, Recommendation
from clfbench.run.plan import (
    LLM,
    ORDER,
    Deadline,
    Outcome,
    Plan,
    check_budget,
    make_plan,
    probes_wanted,
    schedule,
)
from clfbench.run.probe import Probing, probe_families
from clfbench.run.profile import DataProfile, MachineProfile, profile_data, profile_machine
from clfbench.run.steps import StepRunner

#: Probing takes at most this share of the budget in all: a family is probed (in the plan's
#: order) only when its probe, by its default costs, fits what is left of the share; one that
#: does not keeps its default costs.
PROBE_SHARE = 0.10


@dataclass
class DecideResult:
    """What `decide` did: the plan, what ran and what was cut, the recommendation, the report,
    the export (None when skipped), whether it resumed a saved plan, and the seconds it took."""

    plan: Plan
    outcome: Outcome
    recommendation: Recommendation | None
    report: Path
    export: Path | None
    resumed: bool
    elapsed_s: float


def printer(console: Callable[[str], object] | None) -> Callable[[str], object]:
    """Where lines go: `console` (e.g. a rich Console's print with markup off), else stdout."""
    return console or (lambda line: print(line, flush=True))


def not_asked(families: list[str] | None) -> dict[str, str]:
    """The families left out because the caller named others."""
    if families is None:
        return {}
    return {f: "not among the families asked for" for f in ORDER if f not in families}


def profile_lines(data: DataProfile, machine: MachineProfile) -> list[str]:
    gpu = f"GPU {machine.gpu_name}" if machine.has_gpu else "no GPU"
    return [f"data: {data.train_rows:,} training rows, {data.n_classes} classes, "
            f"{data.validation_rows:,} validation, {data.test_rows:,} test; p95 length "
            f"{data.p95_length:.0f} {data.length_unit}",
            f"machine: {machine.cpu_cores} CPU cores, {machine.memory_gb:.0f} GB, {gpu}"]


def probe_within(inputs: Inputs, data: DataProfile, machine: MachineProfile, llm: LLM | None,
                 families: list[str] | None, allowance_s: float) -> Probing:
    """Probe the wanted families one by one, each only if it fits what is left of `allowance_s`."""
    total = Probing()
    for family in probes_wanted(machine, llm):
        if families is not None and family not in families:
            continue
        one = probe_families(inputs.splits.train, data, machine, llm, families=[family],
                             max_probe_s=max(allowance_s - total.seconds, 0.0))
        total.probes.update(one.probes)
        total.left_out.update(one.left_out)
        total.seconds += one.seconds
    return total


def new_plan(inputs: Inputs, data: DataProfile, machine: MachineProfile, deadline: Deadline,
             llm: LLM | None, families: list[str] | None, say: Callable[[str], object]) -> Plan:
    """Probe the wanted families, then plan on the time the probes left."""
    probing = probe_within(inputs, data, machine, llm, families, PROBE_SHARE * deadline.budget_s)
    measured = ", ".join(sorted(probing.probes)) or "none"
    say(f"probed in {format_seconds(probing.seconds)}: {measured}; planning on the "
        f"{format_seconds(deadline.remaining())} left")
    plan = make_plan(data, machine, deadline.remaining(), probes=probing.probes, llm=llm,
                     unavailable={**not_asked(families), **probing.left_out})
    check_budget(plan)
    return plan


def rerun_estimate(plan: Plan, method: str) -> float:
    """About one run of `method` at a learning-curve size: its curve step over its sizes."""
    curves = [s for s in plan.steps if s.family == method and s.train_sizes]
    return max((s.estimate_s / len(s.train_sizes) for s in curves), default=0.0)


def decide(train_file: str | Path, out: str | Path, budget_s: float, *,
           validation_file: str | Path | None = None, test_file: str | Path | None = None,
           text_col: str = "text", label_col: str = "label", text_pair_col: str | None = None,
           constraints: Constraints | None = None, llm: LLM | str | None = None,
           families: list[str] | None = None, console: Callable[[str], object] | None = None,
           clock: Callable[[], float] = time.monotonic, run_options: Mapping[str, Any] | None = None,
           isolate: bool | None = None) -> DecideResult:
    """Run the comparison within `budget_s` seconds (see the module's steps); bad input is a
    one-line ClfbenchError before anything is written. `llm`: a local model (a string) or an
    `LLM` (an endpoint); `families`: only these; `run_options`: RunSpec fields for every run
    (`inputs.RUN_OPTIONS`); `isolate`: as `run_grid`'s."""
    say, deadline, out = printer(console), Deadline(budget_s, clock), Path(out)
    llm = LLM(llm) if isinstance(llm, str) else llm
    if not (isinstance(budget_s, (int, float)) and math.isfinite(budget_s) and budget_s > 0):
        raise ClfbenchError(f"--time-budget: expected a positive number of seconds, got {budget_s!r}")
    check_families(families)
    if constraints is not None:
        constraints.check()
    check_out(out)
    inputs = load_inputs(train_file, validation_file, test_file, text_col, label_col, text_pair_col,
                         run_options)
    splits = inputs.splits
    data = profile_data(splits.train, splits.validation, splits.test, where=str(inputs.train_file))
    machine = profile_machine()
    check_budget(make_plan(data, machine, budget_s, llm=llm, unavailable=not_asked(families)))
    fp = fingerprint(inputs, budget_s, families, llm)
    plan = saved_plan(out, fp)
    resumed = plan is not None
    for line in profile_lines(data, machine):
        say(line)
    if plan is None:
        plan = new_plan(inputs, data, machine, deadline, llm, families, say)
        save_plan(out, plan, fp)
    else:
        say(f"resuming the plan saved in {out / PLAN_FILE} (same inputs and budget); "
            "finished steps are skipped")
    for line in plan.lines():
        say(line)
    runner = StepRunner(out, inputs.spec_fields(), isolate=isolate, save_models=True, clock=clock)
    outcome = schedule(plan, deadline, runner, done=runner.done,
                       on_change=PlanProgress(plan, deadline, say))
    return conclude(out, plan, outcome, deadline, constraints, isolate, resumed, say)


def conclude(out: Path, plan: Plan, outcome: Outcome, deadline: Deadline, constraints: Constraints | None,
             isolate: bool | None, resumed: bool, say: Callable[[str], object]) -> DecideResult:
    """Report, recommendation, export, and the closing lines."""
    if constraints is None:
        constraints = finish.default_constraints()
        say(f"no constraints given: recommending for {constraints.volume_per_day:,.0f} requests/day, "
            "no latency, budget or label limit")
    if outcome.cut:
        say("cut:")
        for line in outcome.cut:
            say(f"  {line}")
    if not (outcome.completed or outcome.already_done):
        raise ClfbenchError("decide: no step of the plan completed (see what was cut above); "
                            "nothing to report")
    report = finish.make_report(out, constraints)
    say(f"report: {report.html}")
    rec = finish.main_recommendation(report.recommendations)
    for r in report.recommendations:
        for line in r.lines():
            say(line)
    method = rec.decision.pick.config.method if rec is not None and rec.decision.pick else ""
    export = finish.export_pick(out, rec, deadline.remaining(), rerun_estimate(plan, method), isolate, say)
    say(f"done in {format_seconds(deadline.elapsed())} of {format_seconds(deadline.budget_s)}")
    return DecideResult(plan, outcome, rec, report.html, export, resumed, deadline.elapsed())
