"""Encoder fine-tuning: full (`encoder-ft`) or with a LoRA adapter (`encoder-lora`).

Parameters are declared once, beside the class that uses them (`params.Param`: default, type,
range, help): the training loop's on `HFSequenceClassifier` (torch_training.py), the search's
and the Trainer's extras on `Tunable` (tuning.py), the adapter's on `LoRAParams`
(torch_training.py), the inference engine's on `EngineRouted` below.

Both are `AutoModelForSequenceClassification` on an encoder (BERT, RoBERTa, DeBERTa-v2/v3,
ModernBERT, DistilBERT, MiniLM, ...) trained on `transformers.Trainer` by `torch_training.py`;
text pairs are encoded as tokenizer pairs ([CLS] a [SEP] b [SEP]), truncated longest-first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from clfbench.data.texts import LabeledTexts, Texts
from clfbench.methods.params import Param
from clfbench.methods.torch_training import (
    LORA_PARAMS,
    TRAINER_PARAMS,
    TRAINING_PARAMS,
    HFSequenceClassifier,
    LoRAParams,
)

# LoRA targets per architecture: the attention query/value projections (Hu et al. 2021's
# default). ModernBERT fuses q/k/v into one `Wqkv` layer. Others fall back to "all-linear".
ENCODER_LORA_TARGETS: dict[str, list[str]] = {
    "bert": ["query", "value"],
    "roberta": ["query", "value"],
    "xlm-roberta": ["query", "value"],
    "electra": ["query", "value"],
    "camembert": ["query", "value"],
    "deberta-v2": ["query_proj", "value_proj"],
    "distilbert": ["q_lin", "v_lin"],
    "modernbert": ["Wqkv"],
}

#: The inference engine's parameters (`EngineRouted`), after the training loop's.
ENGINE_PARAMS = ("backend", "quantize", "eval_dtype", "recheck")


class EngineRouted(HFSequenceClassifier):
    """After fit (or load), predictions go through `clfbench.engines.inference.EncoderEngine`:
    `backend` ("torch" or "onnx"), `quantize` (ONNX dynamic int8), `eval_dtype` ("auto": bf16
    on GPU, fp32 on CPU; "bf16" is worth trying on CPUs with native bf16), `recheck` ("auto"
    or a margin: near-ties of an inexact path are recomputed in fp32) and `eval_batch_size`
    ("auto" searches it). Training-time validation keeps the plain torch path."""

    # The inference engine's parameters (`check_settings` checks them, with its own messages).
    eval_batch_size: int | str
    backend: str = Param("torch", "torch or onnx (ONNX Runtime) for predictions (also --backend)")
    quantize: bool = Param(False, "ONNX dynamic int8 (with backend=onnx); agreement with fp32 is recorded")
    eval_dtype: str = Param("auto", "auto (bf16 on GPU, fp32 on CPU), bf16 or fp32 for predictions")
    recheck: float | str | None = Param(None, "auto or a margin: near-ties of an inexact path are "
                                              "recomputed in fp32")
    engine_: Any = None

    def _check_params(self) -> None:
        """Fail on impossible inference settings when the method is built, not after training."""
        from clfbench.engines.inference import check_settings

        super()._check_params()
        check_settings(self.backend, self.quantize, self.eval_batch_size, self.eval_dtype,
                       self.recheck)

    def _engine(self) -> Any:
        if self.engine_ is None:
            from clfbench.engines.inference import EncoderEngine

            self.engine_ = EncoderEngine(
                self.model_, self.tokenizer_, max_length=self.max_length,
                batch_size=self.eval_batch_size, device=self.device_, backend=self.backend,
                quantize=self.quantize, dtype=self.eval_dtype, recheck=self.recheck,
            )
        return self.engine_

    def fit(self, train: LabeledTexts, validation: LabeledTexts | None = None) -> EngineRouted:
        self.engine_, self._fitting = None, True
        try:
            super().fit(train, validation)
        finally:
            self._fitting = False
        # batch-size search and the fast path's agreement with fp32 torch, on held-out texts
        sample = validation if validation is not None else train
        self._engine().prepare(self._prepared(sample))
        return self

    def _load_state(self, path: Path) -> None:
        self.engine_ = None
        super()._load_state(path)

    def _logits_prepared(self, X: Texts) -> np.ndarray:
        if getattr(self, "_fitting", False):  # per-epoch validation: plain torch, fixed batch
            from clfbench.engines.device import autocast
            from clfbench.engines.inference import predict_logits

            size = self.eval_batch_size if isinstance(self.eval_batch_size, int) else 64
            with autocast(self.device_):
                return predict_logits(self.model_, self.tokenizer_, X, size, self.max_length,
                                      self.device_)
        return self._engine().logits(X)

    def inference_info(self) -> dict[str, Any]:
        return {**super().inference_info(), **self._engine().info()}


class EncoderFineTune(EngineRouted):
    """Full fine-tuning of an encoder with a classification head (AdamW, linear warm-up).

    The learning rate is searched on validation over 2e-5..2e-4 (`tune="auto"`); the fixed
    recipe (`tune="off"`) is BERT's lr 2e-5, batch 32, 3 epochs.
    """

    name = "encoder-ft"
    default_lr = 2e-5
    default_lr_grid = (2e-5, 5e-5, 1e-4, 2e-4)

    # Where each parameter is declared once (default, type and range, help): lr, lr_grid, tune,
    # tune_trials and the Trainer's extras in `tuning.Tunable`; the training loop's (batch_size,
    # epochs, ...) in `torch_training.HFSequenceClassifier`; the engine's (backend, ...) in
    # `EngineRouted` above. `clfbench methods encoder-ft` lists them with their defaults.
    param_order = ("model", *TRAINING_PARAMS, *ENGINE_PARAMS, "tune", "tune_trials", "lr_grid",
                   "seed", *TRAINER_PARAMS)


class EncoderLoRA(LoRAParams, EngineRouted):
    """An encoder with a LoRA adapter on attention q/v and the classification head trained in full.

    The recipe's learning rate is 2e-4, ten times full fine-tuning's: LoRA updates start at
    zero and have few parameters, and 1e-4..1e-3 is the usual range for them (the search grid
    with `tune="auto"`). Weights are merged after training (see HFSequenceClassifier).
    """

    name = "encoder-lora"
    use_lora = True
    default_lr = 2e-4
    default_lr_grid = (1e-4, 2e-4, 5e-4, 1e-3)

    # Declared as encoder-ft's are; LoRA's (r, lora_alpha, ...) in `torch_training.LoRAParams`.
    param_order = ("model", *LORA_PARAMS, *TRAINING_PARAMS, *ENGINE_PARAMS, "tune", "tune_trials",
                   "lr_grid", "seed", *TRAINER_PARAMS)

    def _default_targets(self, model: Any) -> Any:
        return ENCODER_LORA_TARGETS.get(model.config.model_type, "all-linear")
