"""Encoder fine-tuning: full (`encoder-ft`) or with a LoRA adapter (`encoder-lora`).

Both are `AutoModelForSequenceClassification` on an encoder (BERT, RoBERTa, DeBERTa-v2/v3,
ModernBERT, DistilBERT, MiniLM, ...) trained on `transformers.Trainer` by `torch_training.py`;
text pairs are encoded as tokenizer pairs ([CLS] a [SEP] b [SEP]), truncated longest-first.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from clfbench.data.texts import LabeledTexts, Texts
from clfbench.methods.torch_training import HFSequenceClassifier

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


class EngineRouted(HFSequenceClassifier):
    """After fit (or load), predictions go through `clfbench.engines.inference.EncoderEngine`:
    `backend` ("torch" or "onnx"), `quantize` (ONNX dynamic int8), `eval_dtype` ("auto": bf16
    on GPU, fp32 on CPU; "bf16" is worth trying on CPUs with native bf16), `recheck` ("auto"
    or a margin: near-ties of an inexact path are recomputed in fp32) and `eval_batch_size`
    ("auto" searches it). Training-time validation keeps the plain torch path."""

    backend: str
    quantize: bool
    eval_dtype: str
    recheck: float | str | None
    engine_: Any = None

    def _check_engine_settings(self) -> None:
        """Fail on impossible inference settings when the method is built, not after training."""
        from clfbench.engines.inference import check_settings

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

    def __init__(
        self,
        model: str | None = "minilm",
        lr: float | None = None,
        batch_size: int = 32,
        epochs: int = 3,
        max_length: int = 128,
        warmup_ratio: float = 0.1,
        weight_decay: float = 0.01,
        max_grad_norm: float = 1.0,
        class_weight: str | None = None,
        sampling: str | None = None,
        selection: str = "f1",
        eval_batch_size: int | str = 64,
        device: str | None = None,
        backend: str = "torch",
        quantize: bool = False,
        eval_dtype: str = "auto",
        recheck: float | str | None = None,
        tune: str = "auto",
        tune_trials: int = 4,
        lr_grid: list[float] | None = None,
        seed: int = 99,
        grad_accum: int = 1,
        grad_checkpointing: bool = False,
        bf16: bool | str = "auto",
        checkpoint_dir: str | None = None,
        checkpoint_steps: int | None = None,
    ) -> None:
        self.model = model
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.max_length = max_length
        self.warmup_ratio = warmup_ratio
        self.weight_decay = weight_decay
        self.max_grad_norm = max_grad_norm
        self.class_weight = class_weight
        self.sampling = sampling
        self.selection = selection
        self.eval_batch_size = eval_batch_size
        self.device = device
        self.backend = backend
        self.quantize = quantize
        self.eval_dtype = eval_dtype
        self.recheck = recheck
        self.tune = tune
        self.tune_trials = tune_trials
        self.lr_grid = lr_grid
        self.seed = seed
        self.grad_accum = grad_accum
        self.grad_checkpointing = grad_checkpointing
        self.bf16 = bf16
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_steps = checkpoint_steps
        self._check_tuning()
        self._check_trainer()
        self._check_engine_settings()


class EncoderLoRA(EngineRouted):
    """An encoder with a LoRA adapter on attention q/v and the classification head trained in full.

    The recipe's learning rate is 2e-4, ten times full fine-tuning's: LoRA updates start at
    zero and have few parameters, and 1e-4..1e-3 is the usual range for them (the search grid
    with `tune="auto"`). Weights are merged after training (see HFSequenceClassifier).
    """

    name = "encoder-lora"
    use_lora = True
    default_lr = 2e-4
    default_lr_grid = (1e-4, 2e-4, 5e-4, 1e-3)

    def __init__(
        self,
        model: str | None = "minilm",
        r: int = 8,
        lora_alpha: float = 16,
        lora_dropout: float = 0.1,
        target_modules: str | list[str] | None = None,
        lr: float | None = None,
        batch_size: int = 32,
        epochs: int = 3,
        max_length: int = 128,
        warmup_ratio: float = 0.1,
        weight_decay: float = 0.01,
        max_grad_norm: float = 1.0,
        class_weight: str | None = None,
        sampling: str | None = None,
        selection: str = "f1",
        eval_batch_size: int | str = 64,
        device: str | None = None,
        backend: str = "torch",
        quantize: bool = False,
        eval_dtype: str = "auto",
        recheck: float | str | None = None,
        tune: str = "auto",
        tune_trials: int = 4,
        lr_grid: list[float] | None = None,
        seed: int = 99,
        grad_accum: int = 1,
        grad_checkpointing: bool = False,
        bf16: bool | str = "auto",
        checkpoint_dir: str | None = None,
        checkpoint_steps: int | None = None,
    ) -> None:
        self.model = model
        self.r = r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.target_modules = target_modules
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.max_length = max_length
        self.warmup_ratio = warmup_ratio
        self.weight_decay = weight_decay
        self.max_grad_norm = max_grad_norm
        self.class_weight = class_weight
        self.sampling = sampling
        self.selection = selection
        self.eval_batch_size = eval_batch_size
        self.device = device
        self.backend = backend
        self.quantize = quantize
        self.eval_dtype = eval_dtype
        self.recheck = recheck
        self.tune = tune
        self.tune_trials = tune_trials
        self.lr_grid = lr_grid
        self.seed = seed
        self.grad_accum = grad_accum
        self.grad_checkpointing = grad_checkpointing
        self.bf16 = bf16
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_steps = checkpoint_steps
        self._check_tuning()
        self._check_trainer()
        self._check_engine_settings()

    def _default_targets(self, model: Any) -> Any:
        return ENCODER_LORA_TARGETS.get(model.config.model_type, "all-linear")
