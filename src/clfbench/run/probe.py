"""Real probes for `clfbench decide`: each wanted family fitted on two small stratified slices
of the user's training data, so that the plan's costs are measured on this data and machine.

Why two slices: `profile.measure_probe` splits start-up (model load) from per-example cost.
A probe builds the method as its planned run will (`plan.family_params`: model, max_length, on
the device `plan.probes_wanted` names) but trains one epoch without the learning-rate search
(`tune="off"`), since the planner multiplies by its own trials and epochs (`plan.passes`). A
small fixed validation slice goes with it, so a C grid is chosen as in the real run.

A method whose extra is missing is not probed: the plan leaves it out with the install line
(`make_plan(unavailable=...)`). A remote method (llm-api) is not probed, since every request
costs money: its default costs stand. A probe that fails (a model that cannot load, memory)
leaves its family out with the first line of the error.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clfbench.data.texts import LabeledTexts, stratified_indices
from clfbench.extras import install_line, missing
from clfbench.methods.base import accepted_params, get_method, make_method
from clfbench.run.plan import LLM, family_params, per_example, probes_wanted
from clfbench.run.profile import DataProfile, MachineProfile, Probe, measure_probe

PROBE_SIZES = (32, 128)  # training texts of the two slices (cut to the data)
VALIDATION_ROWS = 32  # a fixed size: its cost lands in start-up, not per example
FAST_S = 1.0  # a slice timed under this is timed again, the best of `REPEATS` kept: noise
REPEATS = 3


@dataclass
class Probing:
    """What probing measured, which families it left out and why, and the seconds it took
    (the caller subtracts them from the budget before planning)."""

    probes: dict[str, Probe] = field(default_factory=dict)
    left_out: dict[str, str] = field(default_factory=dict)  # family -> reason
    seconds: float = 0.0


def not_installed(method: str) -> str | None:
    """'not installed: pip install "clfbench[x]"' when an extra the method needs is missing."""
    absent = missing(*get_method(method).requires)
    return f"not installed: {install_line(*absent)}" if absent else None


def probe_params(method: str, model: str | None, params: Mapping[str, Any], device: str,
                 seed: int) -> dict[str, Any]:
    """The planned run's parameters, made a probe's: one epoch, no search, on `device`."""
    accepted = accepted_params(method)
    out = dict(params)
    extra = {"model": model, "epochs": 1, "tune": "off", "device": device, "seed": seed}
    out.update({k: v for k, v in extra.items() if k in accepted and v is not None})
    return out


def slice_sizes(rows: int, sizes: tuple[int, int] = PROBE_SIZES) -> tuple[int, int] | None:
    """The two slice sizes the data allows (the larger at most every row, the smaller at most
    a quarter of it); None when too few rows separate them."""
    large = min(sizes[1], rows)
    small = min(sizes[0], large // 4)
    return (small, large) if small >= 2 else None


def probe_family(family: str, train: LabeledTexts, *, model: str | None = None,
                 params: Mapping[str, Any] | None = None, device: str = "cpu",
                 sizes: tuple[int, int] = PROBE_SIZES, seed: int = 0,
                 clock: Callable[[], float] = time.perf_counter) -> Probe:
    """Fit `family` (its method has the family's name) on stratified slices of `train` of
    both `sizes` and predict each slice: the `Probe` of its measured costs."""
    kw = probe_params(family, model, params or {}, device, seed)
    validation = train.subset(stratified_indices(train.labels, VALIDATION_ROWS, seed + 1))

    def once(n: int) -> tuple[float, float]:
        part = train.subset(stratified_indices(train.labels, n, seed))
        start = clock()
        clf = make_method(family, **kw)
        if hasattr(clf, "verbose"):  # no progress bars while probing (as `evaluate` does)
            clf.verbose = False
        clf.fit(part, validation)
        fitted = clock()
        clf.predict(part)
        return fitted - start, clock() - fitted

    def run(n: int) -> tuple[float, float]:
        best = once(n)
        for _ in range(REPEATS - 1):
            if sum(best) >= FAST_S:
                break
            fit_s, pred_s = once(n)
            best = (min(best[0], fit_s), min(best[1], pred_s))
        return best

    return measure_probe(family, run, sizes, device)


def probe_families(train: LabeledTexts, data: DataProfile, machine: MachineProfile,
                   llm: LLM | None = None, *, families: list[str] | None = None,
                   max_probe_s: float | None = None, sizes: tuple[int, int] = PROBE_SIZES,
                   seed: int = 0, clock: Callable[[], float] = time.monotonic) -> Probing:
    """Probe the families the plan wants (`families`, if given, narrows them). A family whose
    probe would take over `max_probe_s` by its default costs is not probed (defaults stand)."""
    start, out = clock(), Probing()
    cut = slice_sizes(len(train), sizes)
    for family, device in probes_wanted(machine, llm).items():
        if families is not None and family not in families:
            continue
        reason = not_installed(family)
        if reason:
            out.left_out[family] = reason
            continue
        if cut is None or get_method(family).remote:
            continue
        if max_probe_s is not None and default_probe_s(family, cut, data, machine) > max_probe_s:
            continue
        model, params = family_params(family, data, llm)
        try:
            out.probes[family] = probe_family(family, train, model=model, params=params,
                                              device=device, sizes=cut, seed=seed)
        except Exception as e:  # noqa: BLE001 - one family's failure must not stop the decision
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            out.left_out[family] = f"probe failed: {first}"
    out.seconds = clock() - start
    return out


def default_probe_s(family: str, sizes: tuple[int, int], data: DataProfile,
                    machine: MachineProfile) -> float:
    """What probing `family` costs by its default costs: two start-ups, each slice trained,
    validated and predicted (a fast slice may be timed `REPEATS` times; start-up dominates)."""
    startup, train, predict = per_example(family, data, machine, None)
    return sum(startup + n * train + (n + VALIDATION_ROWS) * predict for n in sizes)
