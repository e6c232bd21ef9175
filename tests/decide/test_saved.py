"""plan.json (decide/saved.py): the fingerprint, resume with the same one, a one-line refusal
with another, a corrupted file; and the progress lines (decide/status.py)."""

from __future__ import annotations

import importlib.resources

import pytest

from clfbench.decide.inputs import PLAN_FILE, check_out, load_inputs
from clfbench.decide.saved import fingerprint, save_plan, saved_plan
from clfbench.decide.status import PlanProgress
from clfbench.errors import ClfbenchError
from clfbench.run.plan import Deadline, Plan, Step, schedule

DEMO = importlib.resources.files("clfbench") / "demo_data"


@pytest.fixture(scope="module")
def inputs():
    return load_inputs(DEMO / "train.csv", None, DEMO / "test.csv", "text", "label", None)


def toy_plan() -> Plan:
    return Plan(900, 100, 120, [Step("tfidf-lr", "tfidf-lr", 20),
                                Step("tfidf-lr", "tfidf-lr", 700, train_sizes=["8/class"])])


def test_the_same_fingerprint_resumes_and_another_is_refused(tmp_path, inputs):
    fp = fingerprint(inputs, 900, ["tfidf-lr"], None)
    assert set(fp["files"]) == {"train", "test"} and fp["files"]["train"]["bytes"] > 0
    assert saved_plan(tmp_path, fp) is None  # nothing saved yet
    save_plan(tmp_path, toy_plan(), fp)
    assert saved_plan(tmp_path, fp).to_dict() == toy_plan().to_dict()
    check_out(tmp_path)  # a decide's folder may be used again
    with pytest.raises(ClfbenchError, match=r"\(families differs\); pick another --out"):
        saved_plan(tmp_path, fingerprint(inputs, 900, None, None))
    other = load_inputs(DEMO / "train.csv", None, DEMO / "validation.csv", "text", "label", None)
    with pytest.raises(ClfbenchError, match=r"\(files\.test differs\)"):
        saved_plan(tmp_path, fingerprint(other, 900, ["tfidf-lr"], None))


def test_a_corrupted_plan_is_one_line(tmp_path, inputs):
    (tmp_path / PLAN_FILE).write_text("{not json")
    with pytest.raises(ClfbenchError, match=r"plan\.json: corrupted \(JSONDecodeError\); pick another --out"):
        saved_plan(tmp_path, fingerprint(inputs, 900, None, None))


def test_run_options_outside_the_allowed_ones_are_refused():
    with pytest.raises(ClfbenchError, match="run options max_train are not allowed"):
        load_inputs(DEMO / "train.csv", None, None, "text", "label", None, {"max_train": 10})


def test_progress_lines_count_states_against_the_budget():
    now = [0.0]
    plan, lines = toy_plan(), []
    deadline = Deadline(900, lambda: now[0])

    def run_step(step: Step, limit_s: float) -> bool:
        now[0] += 300
        return True

    schedule(plan, deadline, run_step, on_change=PlanProgress(plan, deadline, lines.append))
    assert lines == [
        "[0 s elapsed, 15 min 00 s left of 15 min 00 s] tfidf-lr: running (done 0, running 1, queued 1)",
        "[5 min 00 s elapsed, 10 min 00 s left of 15 min 00 s] tfidf-lr: completed (done 1, running 0, queued 1)",
        "[5 min 00 s elapsed, 10 min 00 s left of 15 min 00 s] tfidf-lr learning curve: cut "
        "(done 1, running 0, queued 0, cut 1)",
    ]
