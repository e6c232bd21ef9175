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
from clfbench.methods.torch_training import (
    LORA_PARAMS,
    TRAINER_PARAMS,
    TRAINING_PARAMS,
    HFSequenceClassifier,
    LoRAParams,
)

DECODER_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
PAIR_SEPARATOR = "\n"


class DecoderHead(LoRAParams, HFSequenceClassifier):
    """Decoder LLM + classification head on the last token, LoRA-trained (the 0.46% recipe)."""

    name = "decoder-head"
    use_lora = True
    default_lr = 2e-4
    default_lr_grid = (5e-5, 1e-4, 2e-4, 5e-4)

    model = HFSequenceClassifier.model.but(
        None, "a decoder LM: hub id or local folder (required; also --model)")
    r = LoRAParams.r.but(16)
    lora_alpha = LoRAParams.lora_alpha.but(32)
    lora_dropout = LoRAParams.lora_dropout.but(0.05)
    target_modules = LoRAParams.target_modules.but(DECODER_LORA_TARGETS)
    eval_batch_size: int = HFSequenceClassifier.eval_batch_size.but(32)

    # Where each parameter is declared once: lr, lr_grid, tune, tune_trials and the Trainer's
    # extras in `tuning.Tunable`; the training loop's in `torch_training.HFSequenceClassifier`;
    # LoRA's in `torch_training.LoRAParams`.
    param_order = ("model", *LORA_PARAMS, *TRAINING_PARAMS, "tune", "tune_trials", "lr_grid", "seed",
                   *TRAINER_PARAMS)

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
