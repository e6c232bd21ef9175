"""The learning-rate search every trained neural method shares (methods/tuning.py)."""

from __future__ import annotations

import numpy as np
import pytest
from neural_helpers import LABELS, toy_data
from sklearn.metrics import f1_score

from clfbench.errors import ClfbenchError
from clfbench.methods.base import make_method
from clfbench.methods.tuning import EarlyStopping, Tunable


class Scripted(Tunable):
    """A Tunable whose 'training' replays validation scores scripted per learning rate."""

    name = "scripted"
    default_lr = 0.1
    default_lr_grid = (0.1, 0.2, 0.3)

    def __init__(self, scores: dict[float, list[float]], tune: str = "auto", tune_trials: int = 3,
                 lr: float | None = None, lr_grid: list[float] | None = None, epochs: int = 4) -> None:
        self.scores, self.tune, self.tune_trials = scores, tune, tune_trials
        self.lr, self.lr_grid, self.epochs, self.seed = lr, lr_grid, epochs, 0
        self.verbose = False

    def _fit_once(self, train, validation, lr, on_epoch):
        self.model_ = lr  # the "fitted state" of this trial
        kept = None
        for epoch, score in enumerate(self.scores[lr][: self.epochs], start=1):
            kept = score if kept is None else max(kept, score)
            if on_epoch is not None and on_epoch(epoch, score):
                break
        self.fit_info_ = {"trained_lr": lr}
        return kept


VAL = toy_data(10, 1)


def test_early_stopping_stops_at_the_first_epoch_that_does_not_improve():
    stop = EarlyStopping(patience=1)
    assert [stop(s) for s in (0.5, 0.6, 0.6)] == [False, False, True]
    stop = EarlyStopping(patience=2)
    assert [stop(s) for s in (0.5, 0.4, 0.6, 0.6, 0.5)] == [False, False, False, False, True]


def test_search_keeps_the_best_trials_fitted_state_and_records_every_trial():
    scores = {0.1: [0.3, 0.4, 0.5, 0.6, 0.6, 0.6], 0.2: [0.7, 0.9, 0.8, 0.85, 0.99, 0.99],
              0.3: [0.5] * 6}
    m = Scripted(scores, epochs=6).fit(VAL, VAL)
    tuning = m.fit_info_["tuning"]
    assert m.model_ == 0.2 and m.fit_info_["trained_lr"] == 0.2  # the winner's state, not the last trial's
    assert tuning["best_params"] == {"lr": 0.2} and tuning["best_val_macro_f1"] == 0.9
    by_lr = {t["params"]["lr"]: t for t in tuning["trials"]}
    assert sorted(by_lr) == [0.1, 0.2, 0.3]
    assert by_lr[0.2]["epochs_run"] == 4  # two epochs below 0.9: stopped early (patience 2)
    assert by_lr[0.2]["val_by_epoch"] == {1: 0.7, 2: 0.9, 3: 0.8, 4: 0.85}
    assert by_lr[0.3]["epochs_run"] <= 3  # flat scores stop after the third epoch at the latest
    assert tuning["budget_trials"] == 3 and tuning["space"] == {"lr": [0.1, 0.2, 0.3]}


def test_a_trial_that_ran_every_epoch_is_never_pruned():
    """Pruning saves epochs not yet run; after the last one the trial's score stands (with one
    epoch, the seeded grid order 0.3, 0.2, 0.1 puts the weakest trial third, below the median)."""
    m = Scripted({0.3: [0.9], 0.2: [0.8], 0.1: [0.1]}, epochs=1).fit(VAL, VAL)
    trials = m.fit_info_["tuning"]["trials"]
    assert [t["params"]["lr"] for t in trials] == [0.3, 0.2, 0.1]
    assert [t["state"] for t in trials] == ["COMPLETE"] * 3


def test_trial_budget_and_a_fixed_lr_bound_the_search():
    scores = {v: [0.5] for v in (0.1, 0.2, 0.3)}
    assert len(Scripted(scores, tune_trials=2).fit(VAL, VAL).fit_info_["tuning"]["trials"]) == 2
    fixed = Scripted(scores, lr=0.3).fit(VAL, VAL)
    assert [t["params"]["lr"] for t in fixed.fit_info_["tuning"]["trials"]] == [0.3]


def test_tune_off_or_no_validation_trains_the_recipe_once_without_early_stopping():
    scores = {0.1: [0.9, 0.1, 0.1, 0.1], 0.2: [1.0] * 4}
    off = Scripted(scores, tune="off").fit(VAL, VAL)
    assert off.model_ == 0.1 and off.fit_info_["tuning"] == {"enabled": False, "reason": "tune=off", "lr": 0.1}
    no_val = Scripted(scores).fit(VAL, None)
    assert no_val.fit_info_["tuning"]["reason"] == "no validation split"


@pytest.mark.parametrize("params, field", [
    ({"tune": "yes"}, "tune"), ({"tune_trials": 0}, "tune_trials"), ({"lr": -1.0}, "lr"),
    ({"lr_grid": []}, "lr_grid"), ({"lr_grid": [1e-4, "x"]}, "lr_grid"),
    ({"lr": 1e-4, "lr_grid": [1e-4]}, "lr_grid"),
])
@pytest.mark.parametrize("method", ["encoder-ft", "encoder-lora", "decoder-head", "llm-sft"])
def test_bad_tuning_settings_fail_when_the_method_is_built(method, params, field):
    with pytest.raises(ClfbenchError, match=field):
        make_method(method, **params)


def test_tuning_rescues_a_recipe_that_collapses(zoo):
    """lr 2e-5 (the fixed recipe) leaves a tiny encoder predicting one class; the search over a grid
    that includes a workable rate keeps that trial's model, and the record matches it."""
    train, val = toy_data(150, 0), toy_data(60, 1)
    recipe = make_method("encoder-ft", model=zoo("modernbert"), epochs=5, batch_size=16, tune="off")
    recipe.verbose = False
    recipe.fit(train, val)
    assert len(np.unique(recipe.predict(val))) == 1  # the collapse this search exists for
    tuned = make_method("encoder-ft", model=zoo("modernbert"), epochs=5, batch_size=16,
                        lr_grid=[2e-5, 3e-3])
    tuned.verbose = False
    tuned.fit(train, val)
    tuning = tuned.fit_info_["tuning"]
    assert tuning["enabled"] and tuning["best_params"] == {"lr": 3e-3}
    assert tuned.fit_info_["optimizer"]["lr"] == 3e-3  # the kept model is that trial's
    kept = f1_score(val.labels, tuned.predict(val), average="macro")
    assert kept == pytest.approx(tuning["best_val_macro_f1"], abs=1e-9) and kept > 0.6


def test_llm_sft_searches_the_learning_rate(zoo):
    train, val = toy_data(24, 0), toy_data(12, 1)
    prompt = {"instruction": "classify the sentiment", "verbalizers": {n: n for n in LABELS}}
    m = make_method("llm-sft", model=zoo("llama"), prompt=prompt, epochs=1, batch_size=8,
                    lr_grid=[1e-4, 5e-3], max_length=64)
    m.verbose = False
    m.fit(train, val)
    tuning = m.fit_info_["tuning"]
    assert [t["state"] for t in tuning["trials"]] == ["COMPLETE", "COMPLETE"]
    best = max(tuning["trials"], key=lambda t: t["val_macro_f1"])
    assert m.fit_info_["optimizer"]["lr"] == best["params"]["lr"] == tuning["best_params"]["lr"]
