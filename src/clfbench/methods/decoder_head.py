"""A decoder LLM (Qwen2/2.5/3, Llama, Gemma) with a classification head, trained with LoRA.

The recipe of the "Half a Percent" write-up: `AutoModelForSequenceClassification`
on the decoder, which scores the hidden state of the last non-pad token (transformers finds
it from `config.pad_token_id`); LEFT padding, so that token is the last position of every
row in a batch; LoRA r=16, alpha=32, dropout 0.05 on q/k/v/o projections with the `score`
head trained in full; lr 2e-4, batch 32, 3 epochs, max length 128, best epoch by validation
macro-F1 (`tune="off"`; by default the learning rate is searched over 5e-5..5e-4 on validation).
Training and selection: `torch_training.py`, on `transformers.Trainer`.
"""

from __future__ import annotations

from typing import Any

from clfbench.data.texts import Texts
from clfbench.errors import ClfbenchError
from clfbench.methods.torch_training import HFSequenceClassifier

DECODER_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
PAIR_SEPARATOR = "\n"


class DecoderHead(HFSequenceClassifier):
    """Decoder LLM + classification head on the last token, LoRA-trained (the 0.46% recipe)."""

    name = "decoder-head"
    use_lora = True
    default_lr = 2e-4
    default_lr_grid = (5e-5, 1e-4, 2e-4, 5e-4)

    def __init__(
        self,
        model: str | None = None,
        r: int = 16,
        lora_alpha: float = 32,
        lora_dropout: float = 0.05,
        target_modules: str | list[str] | None = DECODER_LORA_TARGETS,
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
        eval_batch_size: int = 32,
        device: str | None = None,
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
        self.target_modules = list(target_modules) if isinstance(target_modules, tuple) else target_modules
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

    def _default_targets(self, model: Any) -> Any:
        return list(DECODER_LORA_TARGETS)

    def _prepare_tokenizer(self, tokenizer: Any) -> dict[str, Any]:
        """Left padding; pad token = the tokenizer's own, else its eos token."""
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ClfbenchError(
                    f"model {self.model!r}: the tokenizer has neither a pad nor an eos token"
                )
            tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
        return {"pad_token_id": tokenizer.pad_token_id}

    def _prepare_inputs(self, X: Texts) -> Texts:
        """Pairs stay pairs (longest-first truncation cuts the longer text), with the second
        text starting on a new line: decoder tokenizers add no separator between the two."""
        if X.pairs is None:
            return X
        return Texts(X.texts, [PAIR_SEPARATOR + p for p in X.pairs])
