"""Hyper-parameter search on the validation split, shared by every trained neural method.

Why: a fixed recipe (lr 2e-5, batch 32, 3 epochs) was written for BERT-base and collapses to a
constant predictor on other models or small data, which makes a comparison lie. With
`tune="auto"` (the default) a method is fitted once per learning rate of a small log grid
(an Optuna study with a grid sampler); every trial uses the same seed, so the same head
initialisation and data order, and only the learning rate differs. Each trial trains at most
`epochs` epochs and stops early when the validation score has not improved for 2 epochs;
Optuna's median pruner stops a trial that is behind earlier trials at the same epoch. The best
trial's fitted model is kept as it is (no re-training), and every trial is recorded in
`fit_info["tuning"]`. `tune="off"` trains the fixed recipe exactly once, without early stopping.

A method opts in by inheriting `Tunable` (before its other bases) and implementing
`_fit_once(train, validation, lr, on_epoch) -> float`, which fits and returns the
validation score of the weights it keeps; `on_epoch(epoch, score)` returns True to stop.
With `checkpoint_dir`, `_fit_once` passes `self._checkpoint(train, validation, lr, device)` to the
Trainer: every trial checkpoints into a folder of its own and resumes from it when a fit is
re-run after an interruption (`checkpoints`); the folders are deleted once `fit` completes.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from annotated_types import Ge, Gt

from clfbench.data.texts import LabeledTexts
from clfbench.errors import ClfbenchError
from clfbench.methods.params import Param
from clfbench.methods.schema import OneOf

TUNE_MODES = ("auto", "off")
PATIENCE = 2  # epochs without a better validation score before a trial stops
EpochCallback = Callable[[int, float], bool]


def check_tuning(name: str, lr: float | None, lr_grid: list[float] | None) -> None:
    """What the declared ranges (lr > 0, tune in TUNE_MODES, tune_trials >= 1, every lr_grid
    value > 0) cannot say: a finite lr, a non-empty grid, and not both."""
    if lr is not None and not math.isfinite(lr):
        raise ClfbenchError(f"{name}: parameter lr={lr!r} (expected a finite number)")
    if lr_grid is not None and (not lr_grid or not all(math.isfinite(v) for v in lr_grid)):
        raise ClfbenchError(f"{name}: parameter lr_grid={lr_grid!r} (expected a non-empty list of finite numbers)")
    if lr is not None and lr_grid is not None:
        raise ClfbenchError(f"{name}: give lr (a fixed learning rate) or lr_grid (learning rates to search), not both")


class EarlyStopping:
    """True once `patience` epochs in a row have not beaten the best score so far."""

    def __init__(self, patience: int = PATIENCE) -> None:
        self.patience = patience
        self.best = -math.inf
        self.bad = 0

    def __call__(self, score: float) -> bool:
        if score > self.best:
            self.best, self.bad = score, 0
        else:
            self.bad += 1
        return self.bad >= self.patience


class Tunable:
    """Mixin: `fit` searches the learning rate on validation (see the module docstring)."""

    #: The fixed recipe's learning rate (`tune="off"`, or no validation split).
    default_lr: ClassVar[float] = 2e-5
    #: The learning rates searched by default: a small log grid around the recipe.
    default_lr_grid: ClassVar[tuple[float, ...]] = (2e-5, 5e-5, 1e-4, 2e-4)

    # The search's parameters (`check_tuning` adds what one value alone cannot say).
    lr: float | None = Param(None, "learning rate (default: searched on validation when tune=auto, else the recipe's)",
                             Gt(0))
    tune: str = Param("auto", "auto: search the learning rate on validation; off: train the fixed recipe once",
                      OneOf(TUNE_MODES))
    tune_trials: int = Param(4, "learning rates tried when tuning", Ge(1))
    lr_grid: list[float] | None = Param(None, "learning rates to search instead of the method's default range",
                                        Gt(0))
    # The Trainer's extras (`hf_trainer`), shared by every method that trains on it.
    grad_accum: int = Param(1, "gradient accumulation: batches of batch_size summed into one optimizer step", Ge(1))
    grad_checkpointing: bool = Param(False, "recompute activations in the backward pass: less memory, more compute")
    bf16: bool | str = Param("auto", "bf16 mixed-precision training: auto (on a GPU that supports it, off on CPU), "
                                     "true, false", OneOf(("auto",)))
    checkpoint_dir: str | None = Param(None, "save a checkpoint every epoch here and resume an interrupted "
                                             "training from it (one subfolder per configuration, deleted when "
                                             "the fit completes)")
    checkpoint_steps: int | None = Param(None, "also save a checkpoint every N optimizer steps (needs "
                                               "checkpoint_dir; default: at the end of each epoch only)", Ge(1))

    name: ClassVar[str]
    epochs: int
    seed: int
    verbose: bool = True
    fit_info_: dict[str, Any]
    _checkpoints_used: list[Path]
    _seconds_before_resume: dict[float, float]  # learning rate -> seconds of a resumed trial

    def _check_params(self) -> None:
        """The search's settings, and checkpointing's (`checkpoints.check_checkpoint_dir`)."""
        from clfbench.methods.checkpoints import check_checkpoint_dir

        check_tuning(self.name, self.lr, self.lr_grid)
        check_checkpoint_dir(self.name, self.checkpoint_dir, self.checkpoint_steps)
        super()._check_params()  # type: ignore[misc]

    def _fit_once(self, train: LabeledTexts, validation: LabeledTexts | None, lr: float,
                  on_epoch: EpochCallback | None) -> float | None:
        raise NotImplementedError

    def fit(self, train: LabeledTexts, validation: LabeledTexts | None = None) -> Any:
        self._checkpoints_used, self._seconds_before_resume = [], {}
        if self.tune == "off" or validation is None or len(validation) == 0:
            lr = self.lr if self.lr is not None else self.default_lr
            self._fit_once(train, validation, lr, None)
            reason = "tune=off" if self.tune == "off" else "no validation split"
            self.fit_info_["tuning"] = {"enabled": False, "reason": reason, "lr": lr}
        else:  # leaves the best trial's fitted state in self
            self.fit_info_["tuning"] = self._search(train, validation)
        if self.checkpoint_dir is not None:
            from clfbench.methods.checkpoints import remove
            from clfbench.methods.hf_trainer import is_main_process

            if is_main_process():  # data-parallel: the first process owns the files
                remove(self._checkpoints_used)  # the fit completed: nothing left to resume
            # training time spent in the interrupted process(es): evaluation adds it
            self.fit_info_["train_seconds_before_resume"] = sum(self._seconds_before_resume.values())
        return self

    def _checkpoint(self, train: LabeledTexts, validation: LabeledTexts | None, lr: float,
                    device: Any) -> Path | None:
        """This trial's checkpoint folder under `checkpoint_dir` (None: no checkpoints);
        `device`: the one it trains on."""
        if self.checkpoint_dir is None:
            return None
        from clfbench.methods.checkpoints import configuration_folder, seconds_spent
        from clfbench.methods.hf_trainer import world_size

        params = self.get_params()  # type: ignore[attr-defined]
        folder = configuration_folder(self.checkpoint_dir, self.name, params, lr, train, validation,
                                      world_size(), str(device))
        self._checkpoints_used.append(folder)
        self._seconds_before_resume[lr] = seconds_spent(folder)  # what an interrupted run spent
        return folder

    def search_space(self) -> list[float]:
        if self.lr is not None:
            return [float(self.lr)]
        return [float(v) for v in (self.lr_grid or self.default_lr_grid)]

    def _search(self, train: LabeledTexts, validation: LabeledTexts) -> dict[str, Any]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        grid = self.search_space()
        n_trials = min(self.tune_trials, len(grid))
        study = optuna.create_study(
            direction="maximize",
            sampler=optuna.samplers.GridSampler({"lr": grid}, seed=self.seed),
            pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
        )
        kept: dict[str, Any] = {"score": -math.inf, "state": None, "number": None}
        seconds: dict[int, float] = {}
        t_start = time.perf_counter()

        failed: list[ClfbenchError] = []

        def objective(trial: optuna.Trial) -> float:
            try:
                return tried(trial)
            except ClfbenchError as e:  # bad input (a damaged checkpoint): raised after the
                failed.append(e)       # study, so Optuna logs no "Trial failed" traceback first
                trial.study.stop()
                return -math.inf

        def tried(trial: optuna.Trial) -> float:
            lr = trial.suggest_categorical("lr", grid)
            stop = EarlyStopping()

            def on_epoch(epoch: int, score: float) -> bool:
                trial.report(score, epoch)
                if epoch < self.epochs and trial.should_prune():  # a finished trial is kept
                    raise optuna.TrialPruned()
                return stop(score)

            t0 = time.perf_counter()
            try:
                score = self._fit_once(train, validation, lr, on_epoch)
            finally:
                # a resumed trial's whole cost: this process's time and the interrupted one's
                seconds[trial.number] = time.perf_counter() - t0 + self._seconds_before_resume.get(lr, 0.0)
            score = -math.inf if score is None or math.isnan(score) else float(score)
            if score > kept["score"]:  # ties keep the earlier trial
                kept.update(score=score, number=trial.number, state=self._fitted_state())
            self._say(f"trial {trial.number + 1}/{n_trials}: lr {lr:.0e} -> validation score "
                      f"{score:.4f} in {seconds[trial.number]:.0f} s")
            return score

        def pruned(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if trial.state == optuna.trial.TrialState.PRUNED:
                self._say(f"trial {trial.number + 1}/{n_trials}: lr {trial.params['lr']:.0e} pruned "
                          f"after epoch {max(trial.intermediate_values)} (behind the median)")

        self._say(f"tuning the learning rate on validation: {n_trials} trial(s) over "
                  f"{', '.join(f'{v:.0e}' for v in grid)}, up to {self.epochs} epoch(s) each")
        study.optimize(objective, n_trials=n_trials, callbacks=[pruned])
        if failed:
            raise failed[0]
        if kept["state"] is None:
            raise ClfbenchError(f"{self.name}: every tuning trial was pruned or failed")
        vars(self).update(kept["state"])  # the best trial's fitted model, as it was trained
        trials = [_trial_record(t, seconds.get(t.number)) for t in study.trials]
        best = next(t for t in trials if t["number"] == kept["number"])
        return {
            "enabled": True,
            "method": "optuna GridSampler over lr; MedianPruner; early stopping "
                      f"(patience {PATIENCE}) on the validation score",
            "objective": self._objective_name(),
            "space": {"lr": grid},
            "budget_trials": n_trials,
            "max_epochs": self.epochs,
            "trials": trials,
            "best_trial": kept["number"],
            "best_params": best["params"],
            "best_val_macro_f1": best["val_macro_f1"],
            "seconds": time.perf_counter() - t_start,
        }

    def _objective_name(self) -> str:
        return "validation macro-F1"

    def _fitted_state(self) -> dict[str, Any]:
        """The fitted attributes (sklearn's trailing underscore) of the trial just finished."""
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("__")}

    def _say(self, message: str) -> None:
        if self.verbose:
            print(f"  {message}", file=sys.stderr, flush=True)


def _trial_record(t: Any, seconds: float | None) -> dict[str, Any]:
    values = dict(sorted(t.intermediate_values.items()))
    value = t.value if t.value is not None and math.isfinite(t.value) else None
    if value is None and values:
        value = max(values.values())
    return {
        "number": t.number,
        "params": dict(t.params),
        "state": t.state.name,
        "val_macro_f1": value,
        "epochs_run": len(values),
        "val_by_epoch": values,
        "seconds": seconds,
    }


__all__ = ["EarlyStopping", "PATIENCE", "TUNE_MODES", "Tunable", "check_tuning"]
