"""The end of `decide` (decide/finish.py): exporting the pick, a learning-curve pick run again
with its model saved (counted once by the report), and the one-line skips."""

from __future__ import annotations

import importlib.resources
from types import SimpleNamespace

from clfbench.decide import finish
from clfbench.report.recommend import Constraints, recommend
from clfbench.results.store import Store
from clfbench.run.plan import Step
from clfbench.run.steps import StepRunner
from clfbench.serving.export import load_export

DEMO = importlib.resources.files("clfbench") / "demo_data"
FILES = {"train_file": str(DEMO / "train.csv"), "test_file": str(DEMO / "test.csv"), "max_eval": 200,
         "latency_examples": 5, "latency_warmup": 0}


def rec_with(pick) -> SimpleNamespace:
    return SimpleNamespace(decision=SimpleNamespace(pick=pick))


def test_nothing_to_export_is_said_in_one_line(tmp_path):
    said: list[str] = []
    assert finish.export_pick(tmp_path, rec_with(None), 100, 1, False, said.append) is None
    api = SimpleNamespace(config=SimpleNamespace(method="llm-api"))
    assert finish.export_pick(tmp_path, rec_with(api), 100, 1, False, said.append) is None
    assert said == ["export skipped: no configuration meets the constraints",
                    "export skipped: llm-api cannot be exported (it runs remotely)"]


def test_a_learning_curve_pick_is_run_again_with_its_model_and_exported(tmp_path):
    out, said = tmp_path / "runs", []
    StepRunner(out, FILES, isolate=False, save_models=True)(
        Step("tfidf-lr", "tfidf-lr", 10, params={"C": 1.0}, train_sizes=["32/class"]), 600)
    (option,) = recommend(out, Constraints(1e5))[0].options
    assert finish.saved_run(option) is None  # a curve run keeps no model
    assert finish.run_with_model(out, option, 10, 60, False, said.append) is None  # does not fit
    assert said == [f"export skipped: {option.label} kept no model, and running it again takes "
                    "about 1 min 00 s, 10 s left"]
    run = finish.run_with_model(out, option, 600, 60, False, said.append)
    assert (run / "model" / "method.json").is_file() and len(Store(out).runs()) == 2
    (again,) = recommend(out, Constraints(1e5))[0].options
    assert len(again.runs) == 1  # the re-run counts once
    assert finish.run_with_model(out, again, 0, 60, False, said.append) == run  # already there
    export = finish.export_folder(out, run, said.append)
    assert export == out / "export" and load_export(export).classify(["where is my parcel"])[0].shape == (1,)
    assert finish.export_folder(out, run, said.append) == export
    assert said[-1] == f"export: {export} already holds {run.name}"
