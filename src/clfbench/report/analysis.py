"""Per-task numbers behind the report: CIs, paired tests, verdicts, costs, Pareto, utility.

Everything here is about one comparison group: configurations of one task scored on the same
test examples (`runs.comparison_groups`). The verdict for a metric tests the leader (the best
configuration not flagged degenerate) against each other configuration: a family of k - 1
tests, Holm-corrected, with enough bootstrap resamples (`stats.resamples_for_family`) that a
clear leader can be called best however many configurations there are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from clfbench.evaluation import stats
from clfbench.report import cost as costs
from clfbench.report.error_analysis import ErrorAnalysis, analyse_errors
from clfbench.report.runs import Config, Run, common_ids, text_budget_warnings

ALPHA = 0.05
#: The test behind every verdict (`stats.seed_aware_test`), as the report names it.
TEST_NAME = "seed-aware t-test over test examples and runs"


@dataclass
class Comparison:
    a: str  # configuration labels; A is the leader the test belongs to
    b: str
    n: int  # examples both predicted
    accuracy_a: float  # mean over the configuration's runs: the number the quality table shows
    accuracy_b: float
    accuracy: stats.SeedAwareTest
    macro_f1: stats.SeedAwareTest
    # Holm-adjusted within the metric's family (leader vs each other); None: not in that family.
    p_holm_accuracy: float | None = None
    p_holm_macro_f1: float | None = None


@dataclass
class Verdict:
    metric: str
    test: str
    leader: str | None  # None when every configuration is degenerate
    runner_up: str | None
    significant: bool
    p_holm: float | None
    tied: list[str]
    excluded: list[str] = field(default_factory=list)  # degenerate: never called best
    seeds_limit: bool = False  # a tie where the spread between runs, not the examples, dominates
    one_run: list[str] = field(default_factory=list)  # leader / runner-up: one run of a trained method

    @property
    def text(self) -> str:
        out = self._text
        if self.seeds_limit and not self.significant:
            out += ("; the spread between seeds, more than the number of test examples, keeps this open: "
                    "more seeds would tell")
        if self.one_run and self.runner_up is not None:
            out += (f"; one run only of {', '.join(self.one_run)}: its training randomness is not measured, "
                    "so the test covers the test examples only")
        return out + (f"; not considered (degenerate): {', '.join(self.excluded)}"
                      if self.excluded and self.leader is not None else "")

    @property
    def short(self) -> str:
        """The summary table's cell: the best configuration, a tie, or why there is none."""
        if self.leader is None:
            return "none: every configuration is degenerate"
        if self.runner_up is None:
            return f"{self.leader} (only {'non-degenerate ' if self.excluded else ''}configuration)"
        return self.leader if self.significant else "tie: " + ", ".join(self.tied)

    @property
    def _text(self) -> str:
        if self.leader is None:
            return f"no verdict: every configuration is degenerate ({', '.join(self.excluded)})"
        if self.runner_up is None:
            only = "non-degenerate " if self.excluded else ""
            return f"{self.leader} (the only {only}configuration: nothing to compare)"
        if self.significant:
            return (f"best: {self.leader}, significantly ahead of {self.runner_up} "
                    f"({self.test}, Holm-adjusted p = {format_p(self.p_holm)})")
        if self.p_holm is None:
            return (f"tie: {', '.join(self.tied)} — {self.leader} leads, but could not be tested against "
                    f"{self.runner_up} (no shared test examples)")
        return (f"tie: {', '.join(self.tied)} — {self.leader} leads but not significantly over "
                f"{self.runner_up} ({self.test}, Holm-adjusted p = {format_p(self.p_holm)})")


def format_p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


@dataclass
class TaskAnalysis:
    task: str  # the comparison group's name: the task, plus how its examples were chosen if split
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
    group_note: str | None = None  # why this task's configurations are split by test examples
    warnings: list[str] = field(default_factory=list)  # e.g. configurations saw different amounts of text
    # Under the decision table: why the utility ranking and the recommendation differ (report --volume).
    decision_notes: list[str] = field(default_factory=list)


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
    group_note: str | None = None,
) -> TaskAnalysis:
    """All numbers of one comparison group (configurations scored on the same test examples)."""
    notes: list[str] = []
    ci = {c.label: _config_ci(c, n_boot, seed, notes) for c in configs}
    ranking = {m: _ranked(configs, ci, m) for m in ("accuracy", "macro_f1")}
    comparisons = _leader_tests(ranking, n_boot, seed, notes)
    verdicts = {
        "accuracy": _verdict(ranking["accuracy"], comparisons, "accuracy", TEST_NAME),
        "macro_f1": _verdict(ranking["macro_f1"], comparisons, "macro_f1", TEST_NAME),
    }
    cost = {}
    for c in configs:
        per_run = [costs.run_cost(r.metrics, profile, basis, api_prices) for r in c.runs]
        merged = dict(per_run[0])
        for key in ("usd_per_1m_request", "usd_per_1m_batch", "usd_per_1m_api", "usd_per_1m", "train_usd",
                    "usd_per_1m_served", "mean_input_tokens", "mean_output_tokens"):
            vals = [p[key] for p in per_run if p.get(key) is not None]
            merged[key] = float(np.mean(vals)) if vals else None
        cost[c.label] = merged
    eligible = [c for c in configs if not c.degenerate]  # never on the front, never "best"
    points = [(c.mean("macro_f1") or 0.0, c.mean("latency_ms_p50"), cost[c.label]["usd_per_1m"]) for c in eligible]
    pareto = {c.label: False for c in configs}
    pareto.update(zip([c.label for c in eligible], costs.pareto_front(points)))
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
                        break_even, analyse_errors(configs), notes, main_tau, group_note,
                        text_budget_warnings(configs) + training_size_warnings(configs))


def n_train(c: Config) -> float | None:
    """Mean labelled training examples over the configuration's runs (`n_train`, else the
    training split's size); None when no run records it (e.g. prompting without shots)."""
    vals = []
    for r in c.runs:
        n = r.metrics.get("n_train", ((r.metrics.get("splits") or {}).get("sizes") or {}).get("train"))
        if isinstance(n, (int, float)) and not isinstance(n, bool):
            vals.append(float(n))
    return float(np.mean(vals)) if vals else None


def training_size_warnings(configs: list[Config]) -> list[str]:
    """A warning when the compared configurations were trained on different amounts of data."""
    from clfbench.methods.base import method_trains

    sizes = {c.label: n_train(c) for c in configs if method_trains(c.method)}
    known = {k: v for k, v in sizes.items() if v is not None}
    if len({round(v) for v in known.values()}) < 2:
        return []
    parts = "; ".join(f"{k}: {v:.0f}" for k, v in known.items())
    return [f"Warning: these configurations were trained on different amounts of labelled data ({parts}); "
            "a quality difference may come from the data, not the method. The learning-curve view "
            "(--train-sizes) compares them at equal sizes."]


def _config_ci(c: Config, n_boot: int, seed: int, notes: list[str]) -> dict[str, stats.Interval]:
    """CIs of the mean over the configuration's distinct runs (seeds), and a note wherever a
    run's metrics.json disagrees with its predictions.jsonl."""
    runs = c.scored_runs
    ids = common_ids(runs)
    gold = runs[0].encoded(ids)[0]
    preds = np.stack([r.encoded(ids)[1] for r in runs])
    ci = stats.bootstrap_ci(gold, preds, len(runs[0].labels), n_resamples=n_boot, seed=seed)
    for i, r in enumerate(runs):
        for name, iv in ci.items():
            recorded = r.metrics.get(name)
            if isinstance(recorded, (int, float)) and abs(recorded - iv.values[i]) > 1e-6:
                notes.append(_disagreement(r, name, recorded, iv.values[i], gold, preds[i]))
    return ci


def _disagreement(r: Run, name: str, recorded: float, value: float, gold: np.ndarray, pred: np.ndarray) -> str:
    """Why a recorded metric differs from the predictions (an older macro-F1 definition, or not known)."""
    text = (f"{r.run_id}: {name} in metrics.json ({recorded:.4f}) differs from its predictions.jsonl "
            f"({value:.4f}); the CI is for the latter")
    if name == "macro_f1" and "macro_f1_gold_or_pred" not in r.metrics:
        old = stats.metric_value("macro_f1_gold_or_pred", gold, pred, len(r.labels))
        if abs(old - recorded) <= 1e-6:
            text += " (metrics.json averages over gold or predicted classes, an earlier definition)"
    return text


def _ranked(configs: list[Config], ci: dict[str, dict[str, stats.Interval]], metric: str) -> list[Config]:
    """Configurations by the metric's mean over runs (from the predictions), best first;
    degenerate ones last, since they are never the leader."""
    return sorted(configs, key=lambda c: (c.degenerate, -ci[c.label][metric].value))


def compare_pair(ca: Config, cb: Config, n_boot: int, seed: int) -> Comparison | str:
    """The paired tests of `ca` (the leader) against `cb`, or why they cannot be compared."""
    ra, rb = ca.representative, cb.representative
    if ra.labels != rb.labels:
        return f"{ca.label} and {cb.label} have different label sets: not compared"
    ids = common_ids([*ca.scored_runs, *cb.scored_runs])
    if not ids:
        return f"{ca.label} and {cb.label} share no example ids: not compared"
    gold = ra.encoded(ids)[0]
    if any(not np.array_equal(gold, r.encoded(ids)[0]) for r in [*ca.scored_runs, *cb.scored_runs]):
        return f"{ca.label} and {cb.label} disagree on gold labels of shared ids: not compared"
    runs_a = np.stack([r.encoded(ids)[1] for r in ca.scored_runs])
    runs_b = np.stack([r.encoded(ids)[1] for r in cb.scored_runs])
    k = len(ra.labels)
    return Comparison(
        ca.label, cb.label, len(ids), float((runs_a == gold).mean()), float((runs_b == gold).mean()),
        stats.seed_aware_test(gold, runs_a, runs_b, k, "accuracy", seed=seed),
        stats.seed_aware_test(gold, runs_a, runs_b, k, "macro_f1", n_resamples=n_boot, seed=seed),
    )


def _leader_tests(ranking: dict[str, list[Config]], n_boot: int, seed: int, notes: list[str]) -> list[Comparison]:
    """Each metric's leader against every other eligible configuration, Holm-adjusted within
    that metric's family; a pair shared by both families is tested once."""
    pairs: dict[frozenset[str], Comparison] = {}
    for metric, ranked in ranking.items():
        eligible = [c for c in ranked if not c.degenerate]
        if len(eligible) < 2:
            continue
        leader, others = eligible[0], eligible[1:]
        b = stats.resamples_for_family(len(others), ALPHA, minimum=n_boot)
        family = []
        for other in others:
            key = frozenset((leader.label, other.label))
            if key not in pairs:
                result = compare_pair(leader, other, b, seed)
                if isinstance(result, str):
                    notes.append(result)
                    continue
                pairs[key] = result
            family.append(pairs[key])
        field_name = f"p_holm_{metric}"
        for comp, p in zip(family, stats.holm([getattr(c, metric).p_value for c in family])):
            setattr(comp, field_name, p)
    return list(pairs.values())


def _verdict(ranked: list[Config], comparisons: list[Comparison], metric: str, test: str) -> Verdict:
    """Best (significantly ahead of every other eligible configuration), a tie, or no verdict."""
    excluded = [c.label for c in ranked if c.degenerate]
    eligible = [c for c in ranked if not c.degenerate]
    if not eligible:
        return Verdict(metric, test, None, None, False, None, [], excluded)
    leader = eligible[0]
    if len(eligible) == 1:
        return Verdict(metric, test, leader.label, None, False, None, [leader.label], excluded)

    def find(other: Config) -> Comparison | None:
        return next((c for c in comparisons if {c.a, c.b} == {leader.label, other.label}), None)

    def compare(other: Config) -> tuple[bool, float | None]:
        c = find(other)
        if c is None:
            return False, None
        test = getattr(c, metric)
        p = getattr(c, f"p_holm_{metric}")
        ahead = (test.delta > 0) == (c.a == leader.label) and test.delta != 0
        return (p is not None and p < ALPHA and ahead), p

    # The leader is best only when it is significantly ahead of every other configuration;
    # otherwise the verdict names the best one it is not significantly ahead of.
    behind = {c.label: compare(c) for c in eligible[1:]}
    significant = all(sig for sig, _ in behind.values())
    runner = eligible[1] if significant else next(c for c in eligible[1:] if not behind[c.label][0])
    tied = [leader.label] + [c.label for c in eligible[1:] if not behind[c.label][0]]
    found = find(runner)
    seeds_limit = found is not None and getattr(found, metric).seeds_dominate
    one_run = [c.label for c in (leader, runner) if _one_trained_run(c)]
    return Verdict(metric, test, leader.label, runner.label, significant, behind[runner.label][1],
                   tied if not significant else [leader.label], excluded, seeds_limit, one_run)


def _one_trained_run(c: Config) -> bool:
    """A configuration with a single run of a method that trains a neural model (encoder or LLM
    family): the seed-to-seed spread the test needs is unknown. Classic methods (TF-IDF with a
    linear model) are taken as deterministic; several seeds with identical predictions show it."""
    from clfbench.methods.base import method_trains

    return len(c.runs) == 1 and c.family != "classic" and method_trains(c.method)
