"""`clfbench recommend`: one configuration to deploy under measured constraints, with its evidence.

For each task (configurations scored on the same test examples), every configuration (runs
pooled over seeds and draws) is an *option*, and:

1. Filters, each on measured numbers: degenerate runs never qualify; p95 latency <= `p95_ms`
   (served p95 from `clfbench loadtest --attach` where a run has one, at the load level the
   volume implies: the peak rate, `peak_factor` x the mean (default 3), times the served mean
   latency is the number of requests in flight (Little's law), and the lowest measured
   concurrency at or above it is used; else the in-process p95 of one request at a time; the
   output says which); labels
   needed (training examples: the realised learning-curve size, the training split, or a
   prompt's shots) <= `labels_available`; monthly cost <= `budget_usd_month`.
2. Quality: the leader is the highest mean macro-F1; each other option is tested against it
   with the seed-aware test of macro-F1 on the same test examples (`stats.seed_aware_test`:
   test examples and the spread between seeds; Holm-corrected over the family). Options not significantly behind the leader are *tied*.
3. Pick: the cheapest per month of the leader and the options tied with it (equal quality as
   far as the test set can tell, so cost decides); the runner-up is the next cheapest tied
   option, else the next best by quality.
4. Cost per month at `volume` (requests per day x 30 days): serving (`cost.run_cost` on the
   hardware profile: the served throughput once `loadtest --attach` measured it, else p50 one
   request at a time, or batch throughput; API models by tokens)
   plus the one-off training cost (train seconds x machine price) and labelling (labels x
   `price_per_label`) spread over `amortize_months`.
5. What would change the decision: the volume multiplier, the p95 limit and the number of
   labels at which the pick changes, found by re-deciding at every point where an option's
   eligibility or cost order changes.

The output also says why the report's utility ranking (F1 / cost x exp(-p50 / tau), with no
quality floor, significance test or constraint) may rank another configuration first, which
latencies were measured under contention, and which configurations behind the pick stopped
training while still improving (under-trained).
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from clfbench.errors import ClfbenchError
from clfbench.evaluation import stats
from clfbench.report import cost as costs

DAYS_PER_MONTH = 30
ALPHA = 0.05
PEAK_FACTOR = 3.0  # peak request rate over the daily mean, for the served concurrency
DEFAULT_TAU_MS = 500.0  # the report's default utility tau
_PER_DAY = {"s": 86400, "sec": 86400, "second": 86400, "min": 1440, "minute": 1440, "h": 24, "hour": 24,
            "d": 1, "day": 1, "week": 1 / 7, "month": 1 / DAYS_PER_MONTH}
_VOLUME = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(?:/\s*([a-z]+))?\s*$")


def parse_volume(text: str) -> float:
    """Requests per day from `1e6/day`, `50/s`, `2000/hour`, `3e7/month` (a bare number: per day)."""
    m = _VOLUME.match(str(text).lower())
    if m is None or (m.group(2) and m.group(2).rstrip("s") not in _PER_DAY and m.group(2) not in _PER_DAY):
        raise ClfbenchError(f"--volume: {text!r} is not a request volume (expected e.g. 1e6/day, 50/s, "
                            "2000/hour, 3e7/month)")
    unit = m.group(2) or "day"
    unit = unit if unit in _PER_DAY else unit.rstrip("s")
    value = float(m.group(1)) * _PER_DAY[unit]
    if value <= 0:
        raise ClfbenchError(f"--volume: {text!r} must be more than 0 requests")
    return value


@dataclass(frozen=True)
class Constraints:
    volume_per_day: float
    p95_ms: float | None = None
    budget_usd_month: float | None = None
    labels_available: float | None = None
    price_per_label: float = 0.0
    amortize_months: float = 12.0
    peak_factor: float = PEAK_FACTOR

    @property
    def peak_per_s(self) -> float:
        """Requests per second at the peak: the daily mean rate x `peak_factor`."""
        return self.volume_per_day / 86400.0 * self.peak_factor

    def check(self) -> None:
        """One ClfbenchError naming the flag of the first impossible value."""
        for name, v in (("--p95-ms", self.p95_ms), ("--budget-usd-month", self.budget_usd_month),
                        ("--labels-available", self.labels_available),
                        ("--price-per-label", self.price_per_label)):
            if v is not None and (not math.isfinite(v) or v < 0):
                raise ClfbenchError(f"{name}: expected a non-negative number, got {v!r}")
        if not self.amortize_months > 0:
            raise ClfbenchError(f"--amortize-months: expected a positive number, got {self.amortize_months!r}")
        if not (math.isfinite(self.peak_factor) and self.peak_factor >= 1):
            raise ClfbenchError(f"--peak-factor: expected a number >= 1 (peak over mean rate), got {self.peak_factor!r}")


@dataclass(frozen=True)
class ServedLevel:
    """The closed-loop level of a run's served.json that the recommendation uses."""

    concurrency: int
    p95_ms: float
    mean_ms: float  # mean (else p50) latency: the time in the system of Little's law
    in_flight: float  # peak requests/s x mean latency: requests in flight at the peak
    carries: bool  # concurrency >= in_flight; False: the highest level measured falls short


def served_level(levels: list[dict[str, Any]], c: Constraints) -> ServedLevel | None:
    """The lowest measured concurrency that carries the peak rate of `c`: by Little's law
    the requests in flight are the peak rate x the mean latency at that level, and the level
    must allow at least that many; the highest level when none does; None without levels."""
    rows = sorted((int(r["concurrency"]), p95, w) for r in levels
                  if costs._num(r.get("concurrency")) and (p95 := costs._num(r.get("p95_ms"))) is not None
                  and (w := costs._num(r.get("mean_ms")) or costs._num(r.get("p50_ms"))) is not None)
    found = None
    for conc, p95, w in rows:
        in_flight = c.peak_per_s * w / 1000.0
        found = ServedLevel(conc, p95, w, in_flight, in_flight <= conc)
        if found.carries:
            break
    return found


@dataclass
class Option:
    """One configuration with what the decision needs."""

    task: str
    label: str
    runs: list[Any]  # report.runs.Run, the configuration's scored runs
    config: Any  # the report.runs.Config it pools
    quality: float  # mean macro-F1
    p95_ms: float | None
    latency_source: str
    usd_per_1m: float | None
    train_usd: float
    labels: float
    degenerate: bool
    served: list[list[dict[str, Any]]] = field(default_factory=list)  # each run's served.json levels
    cost_source: str = ""  # what the serving cost comes from
    contention: str | None = None  # in-process figures used were timed under contention
    under_trained: str | None = None  # `report.runs.under_trained_note`
    utility: float | None = None  # the report's utility at the recommendation's tau

    def served_levels(self, c: Constraints) -> list[ServedLevel]:
        """Each run's served level at the peak of `c` (none without served.json)."""
        return [lv for levels in self.served if (lv := served_level(levels, c)) is not None]

    def p95(self, c: Constraints) -> float | None:
        """The p95 the constraint is checked on: served at the concurrency the volume of `c`
        implies where measured, else in-process (`p95_ms`)."""
        found = self.served_levels(c)
        return float(np.mean([lv.p95_ms for lv in found])) if found else self.p95_ms

    def serving_month(self, c: Constraints) -> float | None:
        if self.usd_per_1m is None:
            return None
        return self.usd_per_1m * c.volume_per_day * DAYS_PER_MONTH / 1e6

    def one_off(self, c: Constraints) -> float:
        return self.train_usd + self.labels * c.price_per_label

    def monthly(self, c: Constraints) -> float | None:
        serving = self.serving_month(c)
        return None if serving is None else serving + self.one_off(c) / c.amortize_months

    def why_not(self, c: Constraints) -> str | None:
        """Why the option does not meet `c`, or None."""
        if self.degenerate:
            return "degenerate"
        p95 = self.p95(c)
        if c.p95_ms is not None and (p95 is None or p95 > c.p95_ms):
            return "no p95 measured" if p95 is None else f"p95 {p95:.3g} ms > {c.p95_ms:g} ms"
        if c.labels_available is not None and self.labels > c.labels_available:
            return f"needs {self.labels:.0f} labels > {c.labels_available:.0f}"
        monthly = self.monthly(c)
        if monthly is None:
            return "cost unknown"
        if c.budget_usd_month is not None and monthly > c.budget_usd_month:
            return f"${monthly:,.2f}/month > budget ${c.budget_usd_month:,.2f}"
        return None


@dataclass
class Decision:
    pick: Option | None
    runner_up: Option | None
    eligible: list[Option]
    tied: list[Option]  # tied with the leader on quality (the leader included)
    leader: Option | None
    p_vs_leader: dict[str, tuple[float, float]]  # label -> (delta leader - option, Holm p)
    excluded: dict[str, str]  # label -> reason


@dataclass
class Recommendation:
    task: str
    constraints: Constraints
    options: list[Option]
    decision: Decision
    changes: list[str] = field(default_factory=list)
    tau_ms: float = DEFAULT_TAU_MS  # the utility ranking's tau, for `utility_line`

    def lines(self) -> list[str]:
        c, d = self.constraints, self.decision
        head = (f"{self.task}: {c.volume_per_day:,.0f} requests/day"
                + (f", p95 <= {c.p95_ms:g} ms" if c.p95_ms is not None else "")
                + (f", budget ${c.budget_usd_month:,.2f}/month" if c.budget_usd_month is not None else "")
                + (f", {c.labels_available:,.0f} labels available" if c.labels_available is not None else "")
                + (f", ${c.price_per_label:g} per label" if c.price_per_label else ""))
        out = [head]
        if d.pick is None:
            out.append(f"  no configuration meets the constraints ({len(self.options)} measured): "
                       + "; ".join(f"{k}: {v}" for k, v in d.excluded.items()))
            out += [f"  {x}" for x in self.notes()]
            out += [f"  {x}" for x in self.changes]
            return out
        out.append(f"  recommend: {d.pick.label}: {self._describe(d.pick)}")
        leader = d.leader
        if len(d.tied) > 1:
            others = [o.label for o in d.tied if o is not d.pick]
            out.append(f"  evidence: tied on quality with {', '.join(others)} (not significantly different from "
                       f"the best, {leader.label}; seed-aware test, Holm, alpha {ALPHA}); cheapest of the tie")
        else:
            ahead = [f"{k} (-{v[0]:.3f}, p={v[1]:.2g})" for k, v in d.p_vs_leader.items()]
            out.append("  evidence: best macro-F1 of the options meeting the constraints"
                       + (f", significantly ahead of {', '.join(ahead)}" if ahead else " (the only one)"))
        if d.runner_up is not None:
            rel = "tied" if d.runner_up in d.tied else "significantly worse"
            out.append(f"  runner-up ({rel}): {d.runner_up.label}: {self._describe(d.runner_up)}")
        if d.excluded:
            out.append("  excluded: " + "; ".join(f"{k} ({v})" for k, v in d.excluded.items()))
        out += [f"  {x}" for x in self.notes()]
        out += [f"  what would change it: {x}" for x in self.changes]
        return out

    def notes(self) -> list[str]:
        """What qualifies the decision: utility vs the pick, the served load level, latencies
        measured under contention, under-trained configurations behind the pick."""
        return [x for x in (self.utility_line(), self._load_line(), self._contention_line()) if x] + \
            self._under_trained_lines()

    def utility_winner(self) -> Option | None:
        """The report's utility winner: the highest utility at `tau_ms`, degenerate ones left out."""
        scored = [(o.utility, o.label, o) for o in self.options if not o.degenerate and o.utility is not None]
        return max(scored, key=lambda t: (t[0], t[1]))[2] if scored else None

    def utility_line(self) -> str | None:
        """Why the report's utility ranking and the recommendation agree or differ, with the
        measured reason: a constraint, a significant macro-F1 gap, or the monthly cost of a tie."""
        top, d, c = self.utility_winner(), self.decision, self.constraints
        if top is None:
            return None
        head = (f"utility vs recommendation: utility (macro-F1 / $ per 1M x exp(-p50 / {self.tau_ms:g} ms); "
                f"no quality floor, significance test or constraint) ranks {top.label} first")
        if d.pick is None:
            return head + f"; nothing meets the constraints ({top.label}: {d.excluded.get(top.label)})"
        if top is d.pick:
            return head + "; the recommendation picks it too"
        if top.label in d.excluded:
            why = f"{top.label} does not meet the constraints: {d.excluded[top.label]}"
        elif top.label in d.p_vs_leader:
            delta, p = d.p_vs_leader[top.label]
            why = (f"{top.label} is significantly behind {d.leader.label} on macro-F1 ({top.quality:.4f} vs "
                   f"{d.leader.quality:.4f}, -{delta:.3f}, paired bootstrap, Holm p={p:.2g})")
            if d.leader is not d.pick:
                why += f", with which {d.pick.label} is tied"
        else:
            why = (f"{top.label} is tied with it on macro-F1 but costs more per month at this volume "
                   f"(${top.monthly(c):,.2f} vs ${d.pick.monthly(c):,.2f}: serving from {top.cost_source or '-'} "
                   f"vs {d.pick.cost_source or '-'}, plus training and labelling over {c.amortize_months:g} months, "
                   "which utility leaves out)")
        return head + f"; the recommendation picks {d.pick.label} because {why}"

    def _load_line(self) -> str | None:
        """The peak rate and the served level used per option (Little's law), where measured."""
        c = self.constraints
        parts = []
        for o in self.options:
            levels = o.served_levels(c)
            if not levels:
                continue
            used = "; ".join(
                f"concurrency {lv.concurrency} ({c.peak_per_s:.3g}/s x {lv.mean_ms:.3g} ms = {lv.in_flight:.3g} in flight"
                + (")" if lv.carries else ", more than the highest level measured: its p95 is optimistic)")
                for lv in levels)
            parts.append(f"{o.label}: {used}")
        if not parts:
            return None
        return (f"served load: {c.volume_per_day:,.0f} requests/day = {c.volume_per_day / 86400:.3g}/s on average, "
                f"peak {c.peak_factor:g} x mean = {c.peak_per_s:.3g}/s; served p95 at the lowest measured "
                "concurrency that carries the peak (Little's law: in flight = peak rate x mean latency) and cost "
                "from served throughput: " + "; ".join(parts))

    def _contention_line(self) -> str | None:
        """A caveat where the pick, the runner-up, the utility winner or an option excluded on
        latency or cost was priced or filtered on in-process timings made under contention."""
        d = self.decision
        shown = {id(o) for o in (d.pick, d.runner_up, self.utility_winner()) if o is not None}
        hit = [o for o in self.options if o.contention and (
            id(o) in shown or d.excluded.get(o.label, "").startswith(("p95", "$")))]
        if not hit:
            return None
        return ("caveat: in-process latency measured under contention, so its p95 and cost are likely "
                "overstated (re-run on an idle machine, or attach a served measurement): "
                + "; ".join(o.contention for o in hit))

    def _under_trained_lines(self) -> list[str]:
        """Under-trained configurations behind the pick: their gap may be a training budget."""
        pick = self.decision.pick
        out = []
        for o in self.options:
            if not o.under_trained or o is pick:
                continue
            if pick is None:
                out.append(f"note: {o.under_trained}")
            elif o.quality < pick.quality:
                out.append(f"note: {o.under_trained}; it is behind {pick.label} on macro-F1 ({o.quality:.4f} vs "
                           f"{pick.quality:.4f}), a gap that more epochs may close")
        if pick is not None and pick.under_trained:
            out.append(f"note: the pick, {pick.under_trained}")
        return out

    def _describe(self, o: Option) -> str:
        c = self.constraints
        return (f"macro-F1 {o.quality:.4f}, p95 {_ms(o.p95(c))} ({o.latency_source}), "
                f"${o.monthly(c):,.2f}/month = serving ${o.serving_month(c):,.2f} ({o.cost_source}) + one-off "
                f"${o.one_off(c):,.2f} (training ${o.train_usd:,.2f} + {o.labels:,.0f} labels x "
                f"${c.price_per_label:g}) / {c.amortize_months:g} months")

    def text(self) -> str:
        return "\n".join(self.lines())


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3g} ms"


# --- building options from a results folder --------------------------------------------------
def _served(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """A run's closed-loop served levels (`clfbench loadtest --attach`), or []."""
    served = metrics.get("served")
    levels = served.get("levels") if isinstance(served, dict) else None
    return [r for r in levels or [] if isinstance(r, dict)]


def labels_needed(run: Any) -> float:
    """Labelled examples a run needed: its training size (realised), the training split for a
    trained method, a prompt's shots (0 zero-shot) for one without training."""
    from clfbench.methods.base import method_trains

    m = run.metrics
    if costs._num(m.get("n_train")) is not None:
        return float(m["n_train"])
    if not method_trains(run.method):
        fit = m.get("fit_info") or {}
        shots = fit.get("shots", (run.spec.get("params") or {}).get("shots", 0))
        return float(costs._num(shots) or 0.0)
    sizes = (m.get("splits") or {}).get("sizes") or {}
    return float(costs._num(sizes.get("train")) or 0.0)


def options_of(config: Any, profile: costs.HardwareProfile, basis: str,
               api_prices: dict[str, Any] | None = None, constraints: Constraints | None = None,
               tau_ms: float = DEFAULT_TAU_MS) -> Option:
    """An option from a report Config (its runs pooled). With a served measurement attached,
    its p95 is the served p95 at the concurrency the volume of `constraints` implies (the
    lowest level without constraints) and its serving cost the served one (`$/1M served`)."""
    from clfbench.report.runs import contention_note, under_trained_note

    runs = config.scored_runs
    served = [levels for levels in (_served(r.metrics) for r in config.runs) if levels]
    found = [lv for levels in served if (lv := served_level(levels, constraints or Constraints(1e-9))) is not None]
    if found:
        p95 = float(np.mean([lv.p95_ms for lv in found]))
        source = "served at concurrency " + "/".join(str(x) for x in sorted({lv.concurrency for lv in found}))
    else:
        served = []
        vals = [v for v in (costs._num(r.metrics.get("latency_ms_p95")) for r in runs) if v is not None]
        p95, source = (float(np.mean(vals)) if vals else None), "in-process"
    priced = [costs.run_cost(r.metrics, profile, basis, api_prices) for r in runs]
    per_1m, from_served = [], []
    for r, p in zip(runs, priced):
        use_served = bool(_served(r.metrics)) and p.get("usd_per_1m_served") is not None
        from_served.append(use_served)
        if (v := p["usd_per_1m_served"] if use_served else p["usd_per_1m"]) is not None:
            per_1m.append(v)
    cost_source = ("served throughput" if all(from_served) else
                   "served throughput where measured, else " + str(priced[0].get("cost_source"))
                   if any(from_served) else str(priced[0].get("cost_source") or ""))
    in_process = not found or not all(from_served)  # some figure comes from in-process timing
    # The report's utility (analysis.analyse_task): mean over all runs of the basis cost.
    basis_cost = [v for r in config.runs if (v := costs.run_cost(r.metrics, profile, basis, api_prices)["usd_per_1m"])
                  is not None]
    utility = costs.utility(config.mean("macro_f1") or 0.0, float(np.mean(basis_cost)) if basis_cost else None,
                            config.mean("latency_ms_p50"), tau_ms)
    return Option(
        task=config.task, label=config.label, runs=runs, config=config, quality=float(config.mean("macro_f1") or 0.0),
        p95_ms=p95, latency_source=source, usd_per_1m=float(np.mean(per_1m)) if per_1m else None,
        train_usd=float(np.mean([p.get("train_usd") or 0.0 for p in priced])),
        labels=float(np.mean([labels_needed(r) for r in runs])), degenerate=config.degenerate,
        served=served, cost_source=cost_source, contention=contention_note(config) if in_process else None,
        under_trained=under_trained_note(config), utility=utility)


# --- the decision --------------------------------------------------------------------------------
class _Significance:
    """Paired tests of a leader against options (the report's own, `analysis.compare_pair`: it
    refuses pairs with other label sets or gold labels), Holm over the family, cached per
    (leader, eligible set). A pair that cannot be compared counts as not significantly behind."""

    def __init__(self, n_boot: int | None, seed: int) -> None:
        self.n_boot, self.seed = n_boot, seed
        self._cache: dict[tuple, dict[str, tuple[float, float]]] = {}

    def against(self, leader: Option, others: list[Option]) -> dict[str, tuple[float, float]]:
        from clfbench.report.analysis import compare_pair

        key = (leader.label, tuple(sorted(o.label for o in others)))
        if key not in self._cache:
            boot = stats.resamples_for_family(len(others), ALPHA, minimum=self.n_boot or 1000)
            found = [(o, compare_pair(leader.config, o.config, boot, self.seed)) for o in others]
            tested = [(o, comp.macro_f1) for o, comp in found if not isinstance(comp, str)]
            adjusted = stats.holm([t.p_value for _, t in tested])
            self._cache[key] = {o.label: (0.0, 1.0) for o in others}
            self._cache[key].update({o.label: (t.delta, p) for (o, t), p in zip(tested, adjusted)})
        return self._cache[key]


def decide(options: list[Option], c: Constraints, sig: _Significance) -> Decision:
    excluded = {o.label: why for o in options if (why := o.why_not(c))}
    eligible = [o for o in options if o.label not in excluded]
    if not eligible:
        return Decision(None, None, [], [], None, {}, excluded)
    leader = max(eligible, key=lambda o: (o.quality, -(o.monthly(c) or 0.0)))
    others = [o for o in eligible if o is not leader]
    tests = sig.against(leader, others) if others else {}
    tied = [leader] + [o for o in others if not (tests[o.label][0] > 0 and tests[o.label][1] < ALPHA)]
    by_cost = sorted(tied, key=lambda o: (o.monthly(c), -o.quality))
    pick = by_cost[0]
    if len(by_cost) > 1:
        runner = by_cost[1]
    else:
        rest = sorted((o for o in eligible if o is not pick), key=lambda o: -o.quality)
        runner = rest[0] if rest else None
    ahead = {k: v for k, v in tests.items() if k not in {o.label for o in tied}}
    return Decision(pick, runner, eligible, tied, leader, ahead, excluded)


def _changes(options: list[Option], c: Constraints, base: Decision, sig: _Significance) -> list[str]:
    """The nearest changes of volume, p95 limit and labels available that change the pick."""
    current = base.pick.label if base.pick else None
    out = []

    # Volume: breakpoints where two options' monthly costs cross, or one meets the budget.
    points = set()
    for a in options:
        for b in options:
            sa, sb = a.serving_month(c), b.serving_month(c)
            if a is b or sa is None or sb is None or sa == sb:
                continue
            m = (b.one_off(c) - a.one_off(c)) / c.amortize_months / (sa - sb)
            if m > 0:
                points.add(m)
        if c.budget_usd_month is not None and (s := a.serving_month(c)):
            m = (c.budget_usd_month - a.one_off(c) / c.amortize_months) / s
            if m > 0:
                points.add(m)
        # Served p95 moves with the volume: where the peak fills a measured level (Little's law).
        for levels in a.served:
            for row in levels:
                conc, w = costs._num(row.get("concurrency")), costs._num(row.get("mean_ms")) or costs._num(row.get("p50_ms"))
                if conc and w:
                    points.add(conc / (c.peak_per_s * w / 1000.0))
    for direction in (1, -1):
        cands = sorted(m for m in points if m > 1) if direction > 0 else sorted((m for m in points if m < 1),
                                                                                 reverse=True)
        for m in cands:
            probe = m * (1.0001 if direction > 0 else 0.9999)
            d = decide(options, replace(c, volume_per_day=c.volume_per_day * probe), sig)
            now = d.pick.label if d.pick else None
            if now != current:
                what = f"{now} would be recommended" if now else "nothing would meet the constraints"
                out.append(f"at {m:.3g}x the volume ({c.volume_per_day * m:,.0f}/day) {what}"
                           + (f" ({_cheaper(d, c, probe)})" if d.pick and d.runner_up else ""))
                break
        else:
            out.append(f"no {'higher' if direction > 0 else 'lower'} volume changes the pick")
    # p95 limit: each option's p95 is where it enters or leaves.
    lat = sorted({o.p95_ms for o in options if o.p95_ms is not None})
    if c.p95_ms is not None or lat:
        limit = c.p95_ms if c.p95_ms is not None else max(lat)
        for v in sorted((v for v in lat if v < limit or (c.p95_ms is None and v <= limit)), reverse=True):
            d = decide(options, replace(c, p95_ms=v * 0.9999), sig)
            if (d.pick.label if d.pick else None) != current:
                out.append(f"with a p95 limit under {v:.3g} ms "
                           + (f"{d.pick.label} would be recommended" if d.pick else "nothing qualifies"))
                break
        if c.p95_ms is not None:
            for v in sorted(v for v in lat if v > limit):
                d = decide(options, replace(c, p95_ms=v), sig)
                if (d.pick.label if d.pick else None) != current:
                    out.append(f"with a p95 limit of {v:.3g} ms or more "
                               + (f"{d.pick.label} would be recommended" if d.pick else "nothing qualifies"))
                    break
    # Labels available: each option's label count.
    if c.labels_available is not None:
        for v in sorted({o.labels for o in options if o.labels > c.labels_available}):
            d = decide(options, replace(c, labels_available=v), sig)
            if (d.pick.label if d.pick else None) != current:
                out.append(f"with {v:,.0f} labels available {d.pick.label if d.pick else 'nothing'} would be recommended")
                break
    return out


def _cheaper(d: Decision, c: Constraints, m: float) -> str:
    cc = replace(c, volume_per_day=c.volume_per_day * m)
    return f"${d.pick.monthly(cc):,.2f}/month vs {d.runner_up.label} ${d.runner_up.monthly(cc):,.2f}"


def recommend(results: str | Path, constraints: Constraints, hardware: str | None = None,
              hardware_file: str | Path | None = None, basis: str = "request", n_boot: int | None = None,
              seed: int = 0, tau_ms: float = DEFAULT_TAU_MS) -> list[Recommendation]:
    """One recommendation per task (comparison group) of a results folder."""
    from clfbench.report.runs import comparison_groups, group_configs, load_runs

    constraints.check()
    profile = costs.get_profile(hardware, hardware_file)
    groups = comparison_groups(group_configs(load_runs(results)))
    return recommend_groups(groups, constraints, profile, basis, n_boot, seed, tau_ms=tau_ms)


def recommend_groups(groups: list[Any], constraints: Constraints, profile: costs.HardwareProfile,
                     basis: str = "request", n_boot: int | None = None, seed: int = 0,
                     api_prices: dict[str, Any] | None = None, tau_ms: float = DEFAULT_TAU_MS) -> list[Recommendation]:
    """`recommend` on comparison groups already loaded (`clfbench report` has them); `tau_ms`:
    the utility tau the report ranks by, for the utility-vs-recommendation line."""
    out = []
    for group in groups:
        options = [options_of(cfg, profile, basis, api_prices, constraints, tau_ms) for cfg in group.configs]
        sig = _Significance(n_boot, seed)
        decision = decide(options, constraints, sig)
        rec = Recommendation(group.name, constraints, options, decision, tau_ms=tau_ms)
        rec.changes = _changes(options, constraints, decision, sig)
        out.append(rec)
    return out


def render_html(recs: list[Recommendation], title: str = "clfbench recommendation") -> str:
    """A self-contained page with the recommendation of every task (all text escaped)."""
    body = "".join("<section>" + "".join(f"<p>{html.escape(line.strip())}</p>" for line in r.lines()) + "</section>"
                   for r in recs)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}section{border-top:1px solid #ccc}"
            f"</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>")


__all__ = ["Constraints", "Decision", "Option", "Recommendation", "decide", "parse_volume", "recommend",
           "render_html"]
