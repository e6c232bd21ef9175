"""`setfit`: SetFit (Tunstall et al. 2022): contrastive fine-tuning of a sentence encoder on
pairs drawn from the few labelled examples, then a logistic-regression head on its embeddings.

The `setfit` library (the `setfit` extra) does the body's training: it was checked with this
project's transformers 5 / sentence-transformers 6 (pip check clean, a tiny model trains) so
it is used rather than a copy of its pair sampler. Its pair sampling: with `num_iterations`
(the paper's recipe, 20) each training text gets `num_iterations` positive pairs (same label)
and as many negative pairs (another label), cycled from a shuffled list of all combinations;
without it, `sampling_strategy` ("oversampling", "undersampling", "unique") sizes the pair set.
Pairs are trained with sentence-transformers' CosineSimilarityLoss (target 1 / 0).

Differences from `setfit.Trainer.train` and why:
- `train` would also train the body on the evaluation set when one is given; here only the
  training split makes pairs, and validation is used for one choice only: the head's `C`
  (from `c_grid`, by validation macro-F1, as embed-probe does), unless `C` is given.
- The head is scikit-learn's LogisticRegression fitted here on the tuned embeddings (what
  SetFit's default head is), so `C` can be chosen and the head saved with skops (no pickle).
- Nothing is written to disk during training (no checkpoints folder in the working directory).
- Progress is clfbench's own, on stderr and only when `verbose` (as for the other trained
  methods): the estimate line after a timed step, a bar over the steps (whole lines in a log)
  and a closing line with the loss. The library's bar, its log lines and the Trainer's printed
  `{'train_runtime': ...}` dict are off: a run's stdout is the results table only.

Text pairs are joined with the tokenizer's separator token (SetFit embeds one text). The
library's pair shuffle has its own fixed seed (42); `seed` seeds the body's training (batch
order, dropout) and the head.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from annotated_types import Ge, Gt

from clfbench.data.texts import LabeledTexts, Texts
from clfbench.engines.device import pick_device
from clfbench.engines.models import ModelRef, resolve_model
from clfbench.engines.sklearn_io import load_estimator, save_estimator
from clfbench.errors import ClfbenchError
from clfbench.methods.base import Classifier
from clfbench.methods.c_choice import C_GRID, C_PARAM, MAX_ITER, all_label_proba, check_c, choose_c
from clfbench.methods.params import (
    BATCH_SIZE,
    DEVICE,
    EPOCHS,
    MAX_LENGTH,
    MODEL,
    SEED,
    WARMUP_RATIO,
    Param,
)
from clfbench.methods.schema import OneOf
from clfbench.progress import estimate_line, format_seconds, progress_bar, say

DEFAULT_C_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)
SAMPLING_STRATEGIES = ("oversampling", "undersampling", "unique")


class SetFit(Classifier):
    """SetFit: contrastive fine-tuning of a sentence encoder on label pairs, then a logistic
    regression on the tuned embeddings (C fixed, or chosen on validation from c_grid)."""

    name = "setfit"
    requires = ("setfit",)
    model_params = ("model",)
    verbose: ClassVar[bool] = True
    model: str | None = MODEL.but(
        help="sentence encoder: hub id, local folder or the offline alias minilm (also --model)")
    num_iterations: int | None = Param(
        20, "positive and negative pairs per training text (null: sampling_strategy sizes the pairs)", Ge(1))
    sampling_strategy: str = Param(
        "oversampling", "with num_iterations=null: oversampling, undersampling or unique pairs",
        OneOf(SAMPLING_STRATEGIES))
    epochs: int = EPOCHS.but(1, "passes over the pairs (also --epochs)")
    batch_size: int = BATCH_SIZE.but(16, "pairs per batch (also --batch-size)")
    lr: float = Param(2e-5, "learning rate of the encoder's contrastive training", Gt(0))
    max_steps: int | None = Param(
        None, "stop the contrastive training after this many steps (null: all pairs x epochs)", Ge(1))
    warmup_ratio: float = WARMUP_RATIO
    C: float | None = C_PARAM
    c_grid: tuple[float, ...] = C_GRID.but(DEFAULT_C_GRID)
    max_iter: int = MAX_ITER
    max_length: int = MAX_LENGTH
    device: str | None = DEVICE
    seed: int = SEED

    def _check_params(self) -> None:
        self.c_grid = check_c(self.name, self.C, self.c_grid, DEFAULT_C_GRID)  # a bare number: a grid

    # --- encoder ----------------------------------------------------------------------------
    def _load_body(self, source: str) -> Any:
        from sentence_transformers import SentenceTransformer

        self.device_ = pick_device(self.device)
        try:
            body = SentenceTransformer(source, device=str(self.device_))
        except OSError as e:
            raise ClfbenchError(f"setfit: cannot load sentence encoder {self.model!r}: "
                                f"{(str(e).strip().splitlines() or [''])[0]}") from None
        body.max_seq_length = self.max_length
        return body

    def _inputs(self, X: Texts) -> list[str]:
        """One string per example; a text pair joined by the tokenizer's separator token."""
        if X.pairs is None:
            return list(X.texts)
        sep = getattr(self.body_.tokenizer, "sep_token", None)
        return X.joined(f" {sep} " if sep else "\n")

    def embed(self, X: Texts) -> np.ndarray:
        """(n, dim) embeddings of the tuned encoder (SetFit's head input: not re-normalised)."""
        return np.asarray(self.body_.encode(self._inputs(X), batch_size=64, convert_to_numpy=True,
                                            show_progress_bar=False), dtype=np.float64)

    # --- fit / predict ------------------------------------------------------------------------
    def _lr(self, C: float) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=C, max_iter=self.max_iter, random_state=self.seed)

    def _train_body(self, train: LabeledTexts) -> dict[str, Any]:
        """Contrastive training of `body_` with setfit's pair sampler and trainer."""
        from setfit import SetFitModel, Trainer, TrainingArguments
        from setfit import logging as setfit_logging

        setfit_logging.set_verbosity_warning()  # its "***** Running training *****" lines: ours instead
        logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
        wrapper = SetFitModel(model_body=self.body_, model_head=self._lr(1.0))
        with tempfile.TemporaryDirectory(prefix="clfbench-setfit-") as tmp:
            args = TrainingArguments(
                output_dir=tmp, batch_size=self.batch_size, num_epochs=self.epochs,
                num_iterations=self.num_iterations, sampling_strategy=self.sampling_strategy,
                body_learning_rate=float(self.lr), max_steps=self.max_steps or -1,
                warmup_proportion=self.warmup_ratio, max_length=self.max_length, seed=self.seed,
                report_to="none", save_strategy="no", show_progress_bar=False,
                logging_strategy="no", logging_first_step=False,
            )
            trainer = Trainer(model=wrapper, args=args)
            from transformers.trainer_callback import PrinterCallback, ProgressCallback

            # The library's bar and printed logs (the final metrics dict goes to stdout) are
            # replaced by our lines on stderr.
            for callback in (PrinterCallback, ProgressCallback):
                trainer.st_trainer.remove_callback(callback)
            trainer.st_trainer.add_callback(
                _training_lines(self.name, self.verbose, lambda: len(trainer.st_trainer.train_dataset)))
            trainer.st_trainer.args.dataloader_pin_memory = self.device_.type == "cuda"
            trainer.train_embeddings(self._inputs(train), [int(y) for y in train.labels], args=args)
            st = trainer.st_trainer
            state = st.state
            optimizer = {"lr": st.optimizer.defaults["lr"] if st.optimizer is not None else None,
                         "batch_size": st.args.per_device_train_batch_size,
                         "epochs": st.args.num_train_epochs,
                         "warmup_steps": st.args.get_warmup_steps(state.max_steps)}
        return {"steps": int(state.global_step), "optimizer": optimizer,
                "pairs": len(st.train_dataset),
                "train_loss": next((h["train_loss"] for h in reversed(state.log_history)
                                    if "train_loss" in h), None)}

    def fit(self, train: LabeledTexts, validation: LabeledTexts | None = None) -> SetFit:
        import torch

        self.labels = list(train.label_names)
        self.ref_ = resolve_model(self.model, self.name)
        torch.manual_seed(self.seed)
        self.body_ = self._load_body(self.ref_.source)
        body = self._train_body(train)
        self.body_.eval()
        x_train = self.embed(train)
        x_val = functools.cache(lambda: self.embed(validation))  # only when C is chosen
        self.C_, self.lr_, by_c = choose_c(
            self.name, self.C, self.c_grid,
            fit=lambda c: self._lr(c).fit(x_train, train.labels),
            predict=lambda lr: all_label_proba(lr, len(self.labels), lr.predict_proba(x_val())).argmax(1),
            validation=validation, n_labels=len(self.labels), verbose=self.verbose,
        )
        self.fit_info_ = {
            **body, "C": self.C_, "validation_macro_f1_by_C": by_c,
            "num_iterations": self.num_iterations,
            "sampling_strategy": None if self.num_iterations else self.sampling_strategy,
            "loss": "CosineSimilarityLoss", "embedding_dim": int(x_train.shape[1]),
            "model": {"name": self.ref_.name, "kind": self.ref_.kind},
            "device": str(self.device_), "library": f"setfit {_version('setfit')}",
        }
        return self

    def predict_proba(self, X: Texts) -> np.ndarray:
        return all_label_proba(self.lr_, len(self.labels), self.lr_.predict_proba(self.embed(X)))

    def n_parameters(self) -> tuple[int, int]:
        head = int(self.lr_.coef_.size + self.lr_.intercept_.size)
        body = sum(p.numel() for p in self.body_.parameters())
        return body + head, body + head  # the encoder is fine-tuned in full

    def inference_info(self) -> dict[str, Any]:
        return {"device": str(self.device_), "batch_size": 64, "max_length": self.max_length}

    # --- persistence: the tuned encoder (sentence-transformers folder) and the head ---------
    def _save_state(self, path: Path) -> None:
        self.body_.save(str(path / "body"))
        save_estimator(self.lr_, path, "logreg")  # skops: loading runs no code
        state = {"C": self.C_, "encoder": {"name": self.ref_.name, "kind": self.ref_.kind},
                 "fit_info": self.fit_info_}
        (path / "state.json").write_text(json.dumps(state, indent=2, default=str))

    def _load_state(self, path: Path) -> None:
        state = json.loads((path / "state.json").read_text())
        self.body_ = self._load_body(str(path / "body")).eval()
        self.ref_ = ModelRef(state["encoder"]["name"], str(path / "body"), state["encoder"]["kind"])
        self.lr_ = load_estimator(path, "logreg")
        self.C_ = state["C"]
        self.fit_info_ = state.get("fit_info", {})


def _training_lines(name: str, verbose: bool, n_pairs: Callable[[], int]) -> Any:
    """A TrainerCallback giving the contrastive training clfbench's progress on stderr (see
    the module's notes); nothing when not `verbose`. A factory: transformers loads lazily."""
    from transformers import TrainerCallback

    class TrainingLines(TrainerCallback):
        def __init__(self) -> None:
            self.bar: Any = None
            self.t_train = self.t_step = 0.0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.t_train = time.perf_counter()
            self.bar = progress_bar(f"{name}: contrastive training, steps", state.max_steps, verbose)

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.t_step = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar.update(1)
            if verbose and state.global_step == 2:  # the 2nd step: the 1st has one-off costs
                st = kwargs.get("st_args", args)  # setfit hands callbacks its own arguments
                say(estimate_line(n_pairs(), st.per_device_train_batch_size * st.gradient_accumulation_steps,
                                  max(1, math.ceil(st.num_train_epochs)), time.perf_counter() - self.t_step,
                                  unit="pairs", max_steps=state.max_steps))

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.bar.close()
            loss = next((h["train_loss"] for h in reversed(state.log_history) if "train_loss" in h), None)
            if verbose:
                say(f"{name}: contrastive training" + (f" loss {loss:.4f}" if loss is not None else "")
                    + f" ({state.global_step:,} steps, {format_seconds(time.perf_counter() - self.t_train)})")

    return TrainingLines()


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)
