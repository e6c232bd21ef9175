"""Per-task numbers behind the report: CIs, paired tests, verdicts, costs, Pareto, utility."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from clfbench import cost as costs
from clfbench import stats
from clfbench.report.errors import ErrorAnalysis, analyse_errors
from clfbench.report.runs import Config, common_ids

ALPHA = 0.05


@dataclass
class Comparison:
    a: str  # configuration labels; A is the one ranked higher by mean macro-F1
    b: str
    n: int  # examples both predicted
    accuracy_a: float
    accuracy_b: float
    mcnemar: stats.McNemar
    macro_f1: stats.PairedBootstrap
    p_holm_accuracy: float = 1.0
    p_holm_macro_f1: float = 1.0


@dataclass
class Verdict:
    metric: str
    test: str
    leader: str
    runner_up: str | None
    significant: bool
    p_holm: float | None
    tied: list[str]

    @property
    def text(self) -> str:
        if self.runner_up is None:
            return f"{self.leader} (the only configuration)"
        if self.significant:
            return (f"best: {self.leader}, significantly ahead of {self.runner_up} "
                    f"({self.test}, Holm-adjusted p = {_p(self.p_holm)})")
        if self.p_holm is None:
            return (f"tie: {', '.join(self.tied)} — {self.leader} leads, but could not be tested against "
                    f"{self.runner_up} (no shared test examples)")
        return (f"tie: {', '.join(self.tied)} — {self.leader} leads but not significantly over "
                f"{self.runner_up} ({self.test}, Holm-adjusted p = {_p(self.p_holm)})")


def _p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


@dataclass
class TaskAnalysis:
    task: str
    configs: list[Config]
    ci: dict[str, dict[str, stats.Interval]]
    comparisons: list[Comparison]
    verdicts: dict[str, Verdict]
    cost: dict[str, dict[str, Any]]
    pareto: dict[str, bool]
    utility: dict[str, dict[float, float | None]]
    taus: list[float]
    break_even: list[dict[str, Any]]
    errors: ErrorAnalysis
    notes: list[str] = field(default_factory=list)
    main_tau: float = 500.0


def analyse_task(
    task: str,
    configs: list[Config],
    profile: costs.HardwareProfile,
    taus: list[float],
    basis: str = "request",
    n_boot: int = 1000,
    seed: int = 0,
    api_prices: dict[str, dict[str, float]] | None = None,
    main_tau: float = 500.0,
) -> TaskAnalysis:
    notes: list[str] = []
    ci = {}
    for c in configs:
        rep = c.representative
        gold, pred = rep.encoded()
        ci[c.label] = stats.bootstrap_ci(gold, pred, len(rep.labels), n_resamples=n_boot, seed=seed)
        for name, iv in ci[c.label].items():  # the CIs must be around the number the table shows
            recorded = rep.metrics.get(name)
            if isinstance(recorded, (int, float)) and abs(recorded - iv.value) > 1e-6:
                notes.append(f"{rep.run_id}: {name} in metrics.json ({recorded:.4f}) differs from its "
                             f"predictions.jsonl ({iv.value:.4f}); the CI is for the latter")

    comparisons = []
    for ca, cb in combinations(configs, 2):
        ra, rb = ca.representative, cb.representative
        if ra.labels != rb.labels:
            notes.append(f"{ca.label} and {cb.label} have different label sets: not compared")
            continue
        ids = common_ids([ra, rb])
        if not ids:
            notes.append(f"{ca.label} and {cb.label} share no example ids: not compared")
            continue
        gold, pa = ra.encoded(ids)
        gold_b, pb = rb.encoded(ids)
        if not np.array_equal(gold, gold_b):
            notes.append(f"{ca.label} and {cb.label} disagree on gold labels of shared ids: not compared")
            continue
        k = len(ra.labels)
        comparisons.append(Comparison(
            ca.label, cb.label, len(ids), float((pa == gold).mean()), float((pb == gold).mean()),
            stats.mcnemar(pa == gold, pb == gold),
            stats.paired_bootstrap(gold, pa, pb, k, "macro_f1", n_resamples=n_boot, seed=seed),
        ))
    for attr, field_name in (("mcnemar", "p_holm_accuracy"), ("macro_f1", "p_holm_macro_f1")):
        adjusted = stats.holm([getattr(c, attr).p_value for c in comparisons])
        for c, p in zip(comparisons, adjusted):
            setattr(c, field_name, p)

    verdicts = {
        "accuracy": _verdict(configs, comparisons, "accuracy", "McNemar"),
        "macro_f1": _verdict(configs, comparisons, "macro_f1", "paired bootstrap"),
    }

    cost = {}
    for c in configs:
        per_run = [costs.run_cost(r.metrics, profile, basis, api_prices) for r in c.runs]
        merged = dict(per_run[0])
        for key in ("usd_per_1m_request", "usd_per_1m_batch", "usd_per_1m_api", "usd_per_1m", "train_usd",
                    "mean_input_tokens", "mean_output_tokens"):
            vals = [p[key] for p in per_run if p.get(key) is not None]
            merged[key] = float(np.mean(vals)) if vals else None
        cost[c.label] = merged
    points = [(c.mean("macro_f1") or 0.0, c.mean("latency_ms_p50"), cost[c.label]["usd_per_1m"]) for c in configs]
    pareto = dict(zip([c.label for c in configs], costs.pareto_front(points)))
    utility = {
        c.label: {t: costs.utility(c.mean("macro_f1") or 0.0, cost[c.label]["usd_per_1m"],
                                   c.mean("latency_ms_p50"), t) for t in taus}
        for c in configs
    }
    break_even = []
    front = [c for c in configs if pareto[c.label]]
    for ca, cb in combinations(front, 2):
        a, b = cost[ca.label], cost[cb.label]
        if a["usd_per_1m"] is None or b["usd_per_1m"] is None:
            continue
        n = costs.break_even_requests(a["train_usd"] or 0.0, a["usd_per_1m"], b["train_usd"] or 0.0, b["usd_per_1m"])
        if n is not None:
            cheap_later = ca.label if a["usd_per_1m"] < b["usd_per_1m"] else cb.label
            cheap_first = cb.label if cheap_later == ca.label else ca.label
            break_even.append({"a": ca.label, "b": cb.label, "requests": n,
                               "cheaper_below": cheap_first, "cheaper_above": cheap_later})
    return TaskAnalysis(task, configs, ci, comparisons, verdicts, cost, pareto, utility, list(taus),
                        break_even, analyse_errors(configs), notes, main_tau)


def _verdict(configs: list[Config], comparisons: list[Comparison], metric: str, test: str) -> Verdict:
    ranked = sorted(configs, key=lambda c: -(c.mean(metric) or 0.0))
    leader = ranked[0]
    if len(ranked) == 1:
        return Verdict(metric, test, leader.label, None, False, None, [leader.label])

    def compare(other: Config) -> tuple[bool, float | None]:
        for c in comparisons:
            if {c.a, c.b} == {leader.label, other.label}:
                if metric == "accuracy":
                    p = c.p_holm_accuracy
                    lead_is_a = c.a == leader.label
                    ahead = (c.accuracy_a > c.accuracy_b) == lead_is_a and c.accuracy_a != c.accuracy_b
                else:
                    p = c.p_holm_macro_f1
                    ahead = (c.macro_f1.delta > 0) == (c.a == leader.label) and c.macro_f1.delta != 0
                return (p < ALPHA and ahead), p
        return False, None

    runner = ranked[1]
    significant, p = compare(runner)
    tied = [leader.label] + [c.label for c in ranked[1:] if not compare(c)[0]]
    return Verdict(metric, test, leader.label, runner.label, significant, p, tied if not significant else [leader.label])
