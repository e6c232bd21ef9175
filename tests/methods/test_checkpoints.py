"""Checkpoint resume (methods/checkpoints.py): a training killed mid-epoch and re-run with the
same `checkpoint_dir` ends exactly where an uninterrupted one does: the same weights, the same
per-epoch history, the same kept epoch, the same tuning trials."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from neural_helpers import LABELS, toy_data

from clfbench.errors import ClfbenchError
from clfbench.methods import checkpoints, hf_trainer
from clfbench.methods.base import make_method
from clfbench.results.store import Store
from clfbench.run.config import RunSpec
from clfbench.run.runner import run_grid

TRAIN, VALIDATION = toy_data(30, 0), toy_data(12, 1)
PROMPT = {"instruction": "classify the sentiment", "verbalizers": {n: n for n in LABELS}}


class Killed(Exception):
    """Stands for the process dying (a lost worker, Ctrl-C)."""


def kill_at_step(monkeypatch, step: int) -> None:
    """Make the `step`-th training step (counted over the whole fit) raise `Killed`."""
    real = hf_trainer.ClfbenchTrainer.compute_loss
    calls = {"n": 0}

    def dying(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == step:
            raise Killed
        return real(self, *a, **k)

    monkeypatch.setattr(hf_trainer.ClfbenchTrainer, "compute_loss", dying)


def killed_in_epoch_2(zoo, monkeypatch, **params) -> Path:
    """Fit encoder-ft until its 6th step (epoch 2) kills it; the one checkpoint folder left."""
    kill_at_step(monkeypatch, 6)
    with pytest.raises(Killed):
        build(zoo, "encoder-ft", **params).fit(TRAIN, VALIDATION)
    monkeypatch.undo()
    [folder] = list(Path(params["checkpoint_dir"]).iterdir())
    return folder


def build(zoo, method: str, **params):
    arch = {"llm-sft": "llama", "decoder-head": "llama"}.get(method, "bert")
    extra = {"prompt": PROMPT, "max_length": 64} if method == "llm-sft" else {}
    m = make_method(method, model=zoo(arch), batch_size=8, seed=3, **extra, **params)
    m.verbose = False
    return m


def weights(m) -> dict[str, torch.Tensor]:
    module = m.lm_ if hasattr(m, "lm_") else m.model_
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def history(m) -> list[dict]:
    """The per-epoch records without their wall-clock seconds."""
    return [{k: v for k, v in r.items() if k != "train_seconds"} for r in m.fit_info()["history"]]


def assert_same_fit(resumed, straight) -> None:
    a, b = weights(resumed), weights(straight)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert different == []
    assert history(resumed) == history(straight)
    assert resumed.fit_info()["best_epoch"] == straight.fit_info()["best_epoch"]


@pytest.mark.parametrize("method, params", [
    ("encoder-ft", {}),  # dropout on (RNG states); epoch 1 kept (its snapshot is in the checkpoint)
    ("encoder-ft", {"sampling": "balanced", "selection": "last"}),
    ("encoder-lora", {"selection": "last"}),  # LoRA layers inside the checkpointed model
    ("decoder-head", {"selection": "last"}),  # a decoder with LoRA and a new head
    ("llm-sft", {}),  # its own numpy-seeded sampler; the checkpoint holds the adapter only
])
def test_a_training_killed_in_its_last_epoch_resumes_to_the_same_model(zoo, tmp_path, monkeypatch,
                                                                      method, params):
    common = dict(tune="off", lr=2e-3, epochs=3, **params)
    straight = build(zoo, method, **common).fit(TRAIN, VALIDATION)

    ckpt = tmp_path / "ckpt"
    kill_at_step(monkeypatch, 10)  # 4 steps per epoch: the 2nd step of epoch 3
    with pytest.raises(Killed):
        build(zoo, method, checkpoint_dir=str(ckpt), **common).fit(TRAIN, VALIDATION)
    [folder] = list(ckpt.iterdir())
    assert [p.name for p in folder.iterdir()] == ["checkpoint-8"]  # epoch 2's, the only one kept
    monkeypatch.undo()

    spent = checkpoints.seconds_spent(folder)
    assert spent > 0
    resumed = build(zoo, method, checkpoint_dir=str(ckpt), **common).fit(TRAIN, VALIDATION)
    assert resumed.fit_info()["trainer"]["checkpoint"]["resumed_after_epoch"] == 2
    assert resumed.fit_info()["train_seconds_before_resume"] == spent  # counted in its cost
    assert_same_fit(resumed, straight)
    assert list(ckpt.iterdir()) == []  # the fit completed: its checkpoints are deleted


@pytest.mark.parametrize("method, params", [
    ("encoder-ft", {}),
    ("encoder-ft", {"sampling": "balanced", "selection": "last"}),
    ("llm-sft", {}),
])
def test_a_training_killed_mid_epoch_resumes_from_its_step_checkpoint(zoo, tmp_path, monkeypatch,
                                                                    method, params):
    """`checkpoint_steps=3` (4 steps per epoch): killed at step 11, resumed from step 9, one
    step into epoch 3: the epoch's data order, its loss so far and the RNG carry on."""
    common = dict(tune="off", lr=2e-3, epochs=3, **params)
    straight = build(zoo, method, **common).fit(TRAIN, VALIDATION)
    ckpt = tmp_path / "ckpt"
    kill_at_step(monkeypatch, 11)
    with pytest.raises(Killed):
        build(zoo, method, checkpoint_dir=str(ckpt), checkpoint_steps=3, **common).fit(TRAIN, VALIDATION)
    [folder] = list(ckpt.iterdir())
    assert [p.name for p in folder.iterdir()] == ["checkpoint-9"]
    monkeypatch.undo()

    resumed = build(zoo, method, checkpoint_dir=str(ckpt), checkpoint_steps=3, **common).fit(TRAIN, VALIDATION)
    checkpoint = resumed.fit_info()["trainer"]["checkpoint"]
    assert (checkpoint["resumed_after_epoch"], checkpoint["resumed_at_step"], checkpoint["every_steps"]) == (2, 9, 3)
    assert_same_fit(resumed, straight)


def test_a_step_save_on_an_epochs_last_step_waits_for_the_epoch_end(zoo, tmp_path, monkeypatch):
    """With `checkpoint_steps` = the steps of an epoch, each boundary is saved once, complete:
    a state written between the step save and the epoch's validation would make a resumed
    Trainer skip that epoch's record."""
    saved = []
    real = checkpoints.save_state

    def spy(checkpoint, state):
        saved.append((checkpoint.name, len(state["history"])))
        real(checkpoint, state)

    monkeypatch.setattr(checkpoints, "save_state", spy)
    build(zoo, "encoder-ft", tune="off", lr=2e-3, epochs=3, checkpoint_dir=str(tmp_path / "c"),
          checkpoint_steps=4).fit(TRAIN, VALIDATION)
    assert saved == [("checkpoint-4", 1), ("checkpoint-8", 2), ("checkpoint-12", 3)]


def test_a_killed_tuning_resumes_its_trials_and_keeps_the_same_best(zoo, tmp_path, monkeypatch):
    """Trial 1 ended before the kill (its weights are reloaded, no step re-run), trial 2 is
    resumed mid-way; pruning and early stopping replay the same decisions."""
    common = dict(tune="auto", lr_grid=[3e-3, 3e-2], tune_trials=2, epochs=3)
    straight = build(zoo, "encoder-ft", **common).fit(TRAIN, VALIDATION)
    scores = [t["val_macro_f1"] for t in straight.fit_info()["tuning"]["trials"]]
    assert len(set(scores)) == 2  # the choice between the trials means something
    ckpt = tmp_path / "ckpt"
    kill_at_step(monkeypatch, 12 + 6)  # trial 1: 12 steps; trial 2: epoch 2, step 2
    with pytest.raises(Killed):
        build(zoo, "encoder-ft", checkpoint_dir=str(ckpt), **common).fit(TRAIN, VALIDATION)
    step = lambda f: int(checkpoints.latest(f).name.split("-")[1])  # noqa: E731
    ended, cut = sorted(ckpt.iterdir(), key=step, reverse=True)  # trial 1: step 12; trial 2: 4
    assert json.loads((checkpoints.latest(ended) / checkpoints.STATE_FILE).read_text())["ended"] is True
    assert not (checkpoints.latest(ended) / "optimizer.pt").exists()  # trial 1 will never train again
    assert (checkpoints.latest(cut) / "optimizer.pt").exists()  # trial 2, cut in epoch 2, will
    monkeypatch.undo()

    steps = {"n": 0}
    real = hf_trainer.ClfbenchTrainer.compute_loss

    def counting(self, *a, **k):
        steps["n"] += 1
        return real(self, *a, **k)

    monkeypatch.setattr(hf_trainer.ClfbenchTrainer, "compute_loss", counting)
    resumed = build(zoo, "encoder-ft", checkpoint_dir=str(ckpt), **common).fit(TRAIN, VALIDATION)
    assert steps["n"] == 8  # trial 2's epochs 2 and 3 only
    assert resumed.fit_info()["train_seconds_before_resume"] > 0  # both trials' earlier time
    assert_same_fit(resumed, straight)

    def trials(m):
        return [{k: v for k, v in t.items() if k != "seconds"} for t in m.fit_info()["tuning"]["trials"]]

    assert trials(resumed) == trials(straight)
    assert resumed.fit_info()["tuning"]["best_trial"] == straight.fit_info()["tuning"]["best_trial"]
    assert list(ckpt.iterdir()) == []


def test_a_grid_interrupted_mid_training_resumes_to_the_same_metrics(zoo, tmp_path, monkeypatch):
    """Ctrl-C in epoch 3 of a grid run; the same command again resumes after epoch 2 and stores
    the metrics of an uninterrupted run (the run's identity ignores checkpoint_dir)."""
    files = {}
    for split, n, seed in (("train", 30, 0), ("validation", 12, 1), ("test", 12, 2)):
        data = toy_data(n, seed)
        files[f"{split}_file"] = str(tmp_path / f"{split}.csv")
        pd.DataFrame({"text": data.texts, "label": [LABELS[y] for y in data.labels]}).to_csv(
            files[f"{split}_file"], index=False)

    def spec(**params):
        return RunSpec(method="encoder-ft", name="toy", model=zoo("bert"), latency_examples=3, **files,
                       params={"tune": "off", "lr": 2e-3, "epochs": 3, "batch_size": 8, **params})

    run_grid([spec()], tmp_path / "reference", quiet=True, isolate=False)
    [reference] = Store(tmp_path / "reference").runs()

    ckpt, out = "ckpt", tmp_path / "runs"  # relative: taken from the working folder
    monkeypatch.chdir(tmp_path)
    real = hf_trainer.ClfbenchTrainer.compute_loss
    calls = {"n": 0}

    def ctrl_c(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(hf_trainer.ClfbenchTrainer, "compute_loss", ctrl_c)
        run_grid([spec(checkpoint_dir=ckpt)], out, quiet=True, isolate=False)
    assert not out.exists()  # nothing half-written: the fresh results folder is gone

    run_grid([spec(checkpoint_dir=ckpt)], out, quiet=True, isolate=False)
    [resumed] = Store(out).runs()
    checkpoint = resumed["fit_info"]["trainer"]["checkpoint"]
    assert checkpoint["resumed_after_epoch"] == 2
    assert checkpoint["folder"].startswith(str(tmp_path.resolve() / "ckpt"))  # absolute for every worker
    before = resumed["fit_info"]["train_seconds_before_resume"]
    assert 0 < before < resumed["train_seconds"]  # the interrupted process's training counts
    for key in ("accuracy", "macro_f1", "confusion_matrix", "per_class"):
        assert resumed[key] == reference[key], key
    strip = [{k: v for k, v in r.items() if k != "train_seconds"} for r in reference["fit_info"]["history"]]
    assert [{k: v for k, v in r.items() if k != "train_seconds"}
            for r in resumed["fit_info"]["history"]] == strip
    assert spec().run_id() == spec(checkpoint_dir=ckpt).run_id()


def test_a_cut_short_checkpoint_is_ignored_and_a_corrupted_one_is_named(zoo, tmp_path, monkeypatch):
    common = dict(tune="off", lr=2e-3, epochs=2, checkpoint_dir=str(tmp_path / "ckpt"))
    folder = killed_in_epoch_2(zoo, monkeypatch, **common)
    state = folder / "checkpoint-4" / checkpoints.STATE_FILE

    # a newer checkpoint whose state file was never written (killed while saving): ignored
    (folder / "checkpoint-8").mkdir()
    assert checkpoints.latest(folder) == folder / "checkpoint-4"

    state.write_bytes(state.read_bytes()[:100])  # truncated
    with pytest.raises(ClfbenchError, match=r"clfbench_state\.json: cannot be loaded.*delete"):
        build(zoo, "encoder-ft", **common).fit(TRAIN, VALIDATION)


def test_each_configuration_has_its_own_folder(monkeypatch):
    """Anything that changes the training changes the folder; where checkpoints go does not."""
    def folder(params=None, lr=1e-3, train=TRAIN, validation=VALIDATION, world=1, device="cpu"):
        base = {"seed": 1, "epochs": 3, "checkpoint_dir": "a"}
        return checkpoints.configuration_folder("root", "encoder-ft", {**base, **(params or {})}, lr,
                                                train, validation, world, device).name

    same = folder()
    assert folder({"checkpoint_dir": "b"}) == same
    others = [folder({"seed": 2}), folder(lr=2e-3), folder(train=toy_data(30, 5)),
              folder(validation=None), folder(world=2), folder({"epochs": 4}), folder(device="cuda:0")]
    assert same not in others and len(set(others)) == len(others)
    assert same.startswith("encoder-ft-")
    import transformers

    monkeypatch.setattr(transformers, "__version__", "0.0.1")  # an upgrade starts over
    assert folder() != same


def test_checkpoint_dir_is_not_part_of_a_runs_identity():
    """Adding checkpoints to an interrupted grid resumes its finished runs, not re-runs them."""
    a = RunSpec(method="encoder-ft", task="sst2", params={"lr": 1e-4})
    b = RunSpec(method="encoder-ft", task="sst2", params={"lr": 1e-4, "checkpoint_dir": "ckpt"})
    assert a.run_id() == b.run_id()


def test_a_checkpoint_dir_that_is_a_file_is_refused_when_built(tmp_path):
    path = tmp_path / "file"
    path.write_text("x")
    with pytest.raises(ClfbenchError, match="checkpoint_dir=.*exists and is not a folder"):
        make_method("encoder-ft", checkpoint_dir=str(path))


def test_replaying_the_tuning_hook_sees_an_ended_training():
    """`EpochSelection.resume`: a trial the hook stopped at its last saved epoch has ended."""
    class Sampler:
        generator = torch.Generator().manual_seed(0)

    class Trainer:
        sampler, schedule, loss_sum, loss_n = Sampler(), {}, None, 0
        args = SimpleNamespace(device=torch.device("cpu"))

    seen = []

    def stop_at_2(epoch, score):
        seen.append((epoch, score))
        return epoch == 2

    state = {"history": [{"epoch": 1}, {"epoch": 2}], "scores": [0.5, 0.4], "best": None,
             "best_epoch": 1, "best_score": 0.5, "gradient_checkpointing": False,
             "sampler": checkpoints.sampler_state(Sampler()), "schedule": {"total_steps": 8}, "seconds": 3.0,
             "epoch_loss": [None, 0], "epoch_seconds": 0.0}
    trainer = Trainer()
    selection = hf_trainer.EpochSelection(trainer, None, 5, None, "best", stop_at_2, False, 10)
    assert selection.resume(state) is True
    assert seen == [(1, 0.5), (2, 0.4)]
    assert (selection.best_epoch, selection.best_score, trainer.schedule) == (1, 0.5, {"total_steps": 8})
    assert selection.seconds_before == 3.0
    go_on = hf_trainer.EpochSelection(Trainer(), None, 5, None, "best", lambda e, s: False, False, 10)
    assert go_on.resume(state) is False
    assert not math.isinf(go_on.best_score)


@pytest.mark.parametrize("damage", ["model.safetensors", "optimizer.pt", "trainer_state.json",
                                    "rng_state.pth", "copied"])
def test_a_damaged_or_foreign_checkpoint_is_one_line_naming_it(zoo, tmp_path, monkeypatch, damage):
    """A truncated Trainer file used to end the resumed fit in a traceback from inside
    `Trainer.train` (exit 1); a checkpoint folder copied from another configuration resumed
    silently with the other configuration's weights and optimizer."""
    import shutil

    common = dict(tune="off", lr=2e-3, epochs=2, checkpoint_dir=str(tmp_path / "ckpt"))
    folder = killed_in_epoch_2(zoo, monkeypatch, **common)
    if damage == "copied":  # another configuration's folder, copied under this one's name
        other = dict(common, lr=3e-3)
        shutil.move(str(folder), str(tmp_path / "kept"))
        foreign = killed_in_epoch_2(zoo, monkeypatch, **other)
        shutil.rmtree(tmp_path / "kept")
        shutil.move(str(foreign), str(folder))
        expected = r"clfbench_state\.json: saved by configuration encoder-ft-\w+, not by encoder-ft-"
    else:
        path = folder / "checkpoint-4" / damage
        assert path.is_file()
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        expected = re.escape(str(path)) + r".*cannot be loaded, truncated or corrupted"
    with pytest.raises(ClfbenchError, match=expected + ".*delete .* to train this configuration from the start"):
        build(zoo, "encoder-ft", **common).fit(TRAIN, VALIDATION)


def test_a_damaged_state_in_a_tuned_fit_is_one_line_without_optunas_traceback(zoo, tmp_path, monkeypatch,
                                                                               capfd):
    """Optuna logged the failed trial's traceback ("Trial 0 failed ...") before the one-line
    error of a damaged clfbench_state.json."""
    common = dict(tune="auto", lr_grid=[3e-3, 3e-2], tune_trials=2, epochs=2,
                  checkpoint_dir=str(tmp_path / "ckpt"))
    kill_at_step(monkeypatch, 6)  # the first trial's epoch 2
    with pytest.raises(Killed):
        build(zoo, "encoder-ft", **common).fit(TRAIN, VALIDATION)
    monkeypatch.undo()
    [folder] = list((tmp_path / "ckpt").iterdir())
    state = checkpoints.latest(folder) / checkpoints.STATE_FILE
    state.write_bytes(state.read_bytes()[:100])
    capfd.readouterr()
    with pytest.raises(ClfbenchError, match=r"clfbench_state\.json: cannot be loaded.*delete"):
        build(zoo, "encoder-ft", **common).fit(TRAIN, VALIDATION)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "failed" not in err, err
