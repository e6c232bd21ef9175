"""The settings of one training run, carried as one object below the estimator's parameters.

Why: the estimators' flat parameters (`EncoderFineTune(lr=..., epochs=...)`) are the user-facing
API; below them, `torch_training.train_loop` and `hf_trainer.train` used to restate every setting
as a long keyword chain at each call. `TrainingSettings` (modelled on setfit's
`TrainingArguments`) is built once per training run from the estimator (`from_estimator`) and
passed down whole; a caller that changes one setting uses `dataclasses.replace`. Runtime objects
(model, tokenizer, data, device, callbacks, the checkpoint folder) stay separate arguments.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

WARMUP_ROUNDING = ("up", "down")


@dataclass(frozen=True)
class TrainingSettings:
    """Every setting of one training run (what `transformers.Trainer` and our loop run with).

    `lr` is the run's learning rate (the tuning trial's, or the fixed recipe's) and `bf16`
    is resolved for the device (never "auto"). `selection`: "f1", "gap" or "last" (see
    `torch_training.train_loop`); llm-sft keeps the best validation macro-F1 ("f1").
    `decay_all`: weight decay on every parameter (llm-sft) or on matrices only.
    `warmup_rounding`: the warm-up steps are `warmup_ratio * total steps` rounded "up"
    (sequence classifiers) or "down" (llm-sft), as each method always did.
    """

    lr: float
    batch_size: int
    epochs: int
    seed: int
    max_length: int
    warmup_ratio: float
    weight_decay: float
    max_grad_norm: float
    class_weight: str | None
    sampling: str | None
    selection: str
    grad_accum: int = 1
    grad_checkpointing: bool = False
    bf16: bool = False
    checkpoint_steps: int | None = None
    decay_all: bool = False
    warmup_rounding: str = "up"

    def __post_init__(self) -> None:
        if self.warmup_rounding not in WARMUP_ROUNDING:
            raise ValueError(f"warmup_rounding={self.warmup_rounding!r} (expected 'up' or 'down')")

    @classmethod
    def from_estimator(cls, estimator: Any, *, lr: float, bf16: bool, **overrides: Any) -> TrainingSettings:
        """The settings `estimator` trains with: each field from the estimator's parameter of
        the same name, else from `overrides` (which win), else the field's default. `lr` and
        `bf16` are always given: the estimator's own may be unset (tuned) or "auto"."""
        values: dict[str, Any] = {"lr": lr, "bf16": bool(bf16)}
        missing = []
        for field in dataclasses.fields(cls):
            if field.name in values:
                continue
            if field.name in overrides:
                values[field.name] = overrides.pop(field.name)
            elif hasattr(estimator, field.name):
                values[field.name] = getattr(estimator, field.name)
            elif field.default is dataclasses.MISSING:
                missing.append(field.name)
        if overrides:
            raise TypeError(f"TrainingSettings has no field(s) {', '.join(sorted(overrides))}")
        if missing:
            raise TypeError(f"{type(estimator).__name__} has no {', '.join(missing)}: give them as overrides")
        return cls(**values)

    @property
    def keep(self) -> str:
        """Which epoch's weights `hf_trainer.train` keeps: "last", or the "best" selection score."""
        return "last" if self.selection == "last" else "best"

    def warmup_steps(self, total_steps: int) -> int:
        """The linear schedule's warm-up steps out of `total_steps` optimizer steps."""
        if self.warmup_rounding == "up":
            return math.ceil(self.warmup_ratio * total_steps)
        return int(self.warmup_ratio * total_steps)


__all__ = ["TrainingSettings", "WARMUP_ROUNDING"]
