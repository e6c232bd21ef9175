"""Plan steps run for real (run/steps.py): tfidf-lr on the demo data into a results folder,
`done` asked of the store, and a rerun of `schedule` that resumes by skipping finished steps."""

from __future__ import annotations

import importlib.resources

import pytest

from clfbench.data.tasks.loading import load_user_files
from clfbench.results.store import Store
from clfbench.run.plan import Deadline, Plan, Step, make_plan, schedule
from clfbench.run.probe import probe_families
from clfbench.run.profile import MachineProfile, profile_data
from clfbench.run.steps import StepRunner

DEMO = importlib.resources.files("clfbench") / "demo_data"
FILES = {"train_file": str(DEMO / "train.csv"), "validation_file": str(DEMO / "validation.csv"),
         "test_file": str(DEMO / "test.csv"), "seed": 7,
         "max_eval": 200}  # a shorter test split: a faster run


def one_step_plan(*steps: Step) -> Plan:
    return Plan(budget_s=3600, reserve_s=240, smallest_s=300, steps=list(steps))


@pytest.mark.slow
def test_a_step_runs_into_the_store_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "runs"
    runner = StepRunner(out, FILES)
    tfidf = Step("tfidf-lr", "tfidf-lr", 30, params={"C": 1.0})  # C fixed: one fit, fast
    assert not runner.done(tfidf)  # no folder yet
    assert runner(tfidf, 600) is True and runner.done(tfidf)
    (row,) = Store(out).runs()
    assert (row["method"], row["seed"], row["fit_info"]["C"]) == ("tfidf-lr", 7, 1.0)
    ran = []

    def run_step(step: Step, limit_s: float) -> bool:
        ran.append(step.key)
        return runner(step, limit_s)

    other = Step("tfidf-lr", "tfidf-lr", 30, params={"C": 0.5})  # a different run: not done
    assert not runner.done(other)
    again = schedule(one_step_plan(tfidf, other), Deadline(3600), run_step, done=runner.done)
    assert again.already_done == ["tfidf-lr"] and ran == ["tfidf-lr"]  # only the new step ran
    assert again.completed == ["tfidf-lr"] and runner.done(other)
    assert len(Store(out).runs()) == 2


def test_a_learning_curve_step_is_done_only_with_every_draw(tmp_path):
    out = tmp_path / "runs"
    runner = StepRunner(out, FILES)
    curve = Step("tfidf-lr", "tfidf-lr", 60, params={"C": 1.0}, train_sizes=["8/class"])  # 5 draws
    first = schedule(one_step_plan(curve), Deadline(3600), runner, done=runner.done)
    assert first.completed == ["tfidf-lr learning curve"]
    assert len(Store(out).runs()) == 5 and runner.done(curve)
    # one draw's result gone (a run killed before it was saved): the step is not done
    (out / Store(out).runs()[0]["run_id"] / "metrics.json").unlink()
    assert not runner.done(curve)
    resumed = schedule(one_step_plan(curve), Deadline(3600), runner, done=runner.done)
    assert resumed.completed == ["tfidf-lr learning curve"] and runner.done(curve)
    assert len(Store(out).runs()) == 5


@pytest.mark.slow
def test_probe_plan_run_and_resume_tfidf_lr_end_to_end(tmp_path):
    """The command's flow without the CLI: probe, plan within what probing left, run, resume."""
    splits = load_user_files(FILES["train_file"], FILES["validation_file"], FILES["test_file"])
    data = profile_data(splits.train, splits.validation, splits.test)
    machine = MachineProfile(cpu_cores=2, memory_gb=8.0)
    deadline = Deadline(3600)
    probing = probe_families(splits.train, data, machine, families=["tfidf-lr"])
    plan = make_plan(data, machine, deadline.remaining(), probes=probing.probes)
    plan.steps = [s for s in plan.steps if s.family == "tfidf-lr"]  # no models offline here
    assert [s.key for s in plan.steps] == ["tfidf-lr", "tfidf-lr learning curve"]
    runner = StepRunner(tmp_path / "runs", FILES)
    first = schedule(plan, deadline, runner, done=runner.done)
    assert first.completed == ["tfidf-lr", "tfidf-lr learning curve"] and first.cut == []
    n = len(Store(tmp_path / "runs").runs())
    assert n == 1 + 5 + 1  # the full run; 8/class (40 texts): 5 draws; 32/class: one
    again = schedule(plan, Deadline(3600), runner, done=runner.done)
    assert again.already_done == first.completed and again.completed == []
    assert len(Store(tmp_path / "runs").runs()) == n


def test_a_step_past_its_limit_starts_no_further_run(tmp_path):
    """`limit_s` is checked between runs: the runs saved stay complete, the step says False,
    and a later call finishes it."""
    times = iter([0.0, 0.0, 1000.0])  # start, before run 1, before run 2: past the limit

    runner = StepRunner(tmp_path / "runs", FILES, isolate=False, clock=lambda: next(times))
    curve = Step("tfidf-lr", "tfidf-lr", 60, params={"C": 1.0}, train_sizes=["8/class"])  # 5 draws
    assert runner(curve, 500) is False
    assert len(Store(tmp_path / "runs").runs()) == 1 and len(runner.todo(curve)) == 4
    runner.clock = lambda: 0.0
    assert runner(curve, 500) is True and len(Store(tmp_path / "runs").runs()) == 5


def test_save_models_keeps_the_full_size_runs_models_only():
    runner = StepRunner("unused", FILES, save_models=True)
    full = Step("tfidf-lr", "tfidf-lr", 30)
    curve = Step("tfidf-lr", "tfidf-lr", 60, train_sizes=["8/class", "32/class"])
    assert [s.save_model for s in runner.specs(full)] == [True]
    assert [s.save_model for s in runner.specs(curve)] == [False, False]
