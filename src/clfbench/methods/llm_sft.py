"""LoRA supervised fine-tuning of a causal LM on prompt -> answer-word pairs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clfbench.data.texts import LabeledTexts
from clfbench.errors import ClfbenchError
from clfbench.methods.llm_prompt import LLMPrompt
from clfbench.methods.params import CLASS_WEIGHT, EPOCHS, SEED, WARMUP_RATIO, WEIGHT_DECAY
from clfbench.methods.torch_training import (
    LORA_PARAMS,
    TRAINER_PARAMS,
    LoRAParams,
    peft_quietly,
    peft_wrap,
    resolve_bf16,
    training_device,
)
from clfbench.methods.training_settings import TrainingSettings
from clfbench.methods.tuning import EpochCallback, Tunable

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
#: The training settings llm-sft has no parameter for (`TrainingSettings.from_estimator`).
SFT_RECIPE = {"max_grad_norm": 1.0, "decay_all": True, "warmup_rounding": "down", "selection": "f1",
              "sampling": None}


class LLMSFT(LoRAParams, Tunable, LLMPrompt):
    """LoRA SFT of a causal LM on the llm-prompt prompt, then label scoring (or generation).

    Each training example is the zero-shot prompt (same PromptBuilder as llm-prompt, chat
    template applied when the tokenizer has one) followed by the label's answer word and
    eos. The loss covers only the answer tokens and eos: prompt and padding positions are
    -100, set by position, so pad == eos never masks an answer's eos. The best epoch is
    chosen by validation macro-F1 computed with the same label scoring that predicts.
    LoRA: r=16, alpha=32, dropout 0.05 on q/k/v/o projections by default. The learning rate
    is searched on validation over 5e-5..5e-4 (`tune="auto"`, see `tuning.Tunable`); the
    fixed recipe (`tune="off"`) uses 2e-4.
    """

    name = "llm-sft"
    needs_training = True
    default_lr = 2e-4
    default_lr_grid = (5e-5, 1e-4, 2e-4, 5e-4)

    # llm-prompt's parameters, with the recipe's defaults; LoRA's (`LoRAParams`) and the
    # search's and the Trainer's (`Tunable`) are shared with the fine-tuning methods.
    epochs: int = EPOCHS
    batch_size: int = LLMPrompt.batch_size.but(16)
    class_weight: str | None = CLASS_WEIGHT
    warmup_ratio: float = WARMUP_RATIO
    weight_decay: float = WEIGHT_DECAY.but(0.0)
    seed: int = SEED
    r = LoRAParams.r.but(16)
    lora_alpha: int = LoRAParams.lora_alpha.but(32)
    lora_dropout = LoRAParams.lora_dropout.but(0.05)
    target_modules: tuple[str, ...] | list[str] = LoRAParams.target_modules.but(LORA_TARGETS)
    descriptions = LLMPrompt.descriptions.but("off")
    shots = 0  # not parameters here: SFT prompts are zero-shot (the examples are in the weights)
    draws = 1

    # Where each parameter is declared once: lr, lr_grid, tune, tune_trials and the Trainer's
    # extras in `tuning.Tunable`; LoRA's in `torch_training.LoRAParams`; the prompt's in
    # `llm_prompt.LLMPrompt`; its own above.
    param_order = (
        "model", "decision", "epochs", "lr", "batch_size", "max_length", *LORA_PARAMS, "class_weight",
        "warmup_ratio", "weight_decay", "use_chat_template", "length_normalize", "template", "prompt",
        "prefix_cache", "max_new_tokens", "seed", "device", "dtype", "tune", "tune_trials", "lr_grid",
        "descriptions", "label_descriptions", *TRAINER_PARAMS, "bos", "complete_answers")

    # --- training data ----------------------------------------------------------------------
    def training_example(self, text: str, pair: str | None, label: int) -> tuple[list[int], list[int]]:
        """(input ids, labels): the prompt, then answer + eos; labels -100 over the prompt."""
        prompt, _ = self.encoder_.encode(text, pair)
        answer = self.encoder_.answer_ids[label] + [self.tokenizer_.eos_token_id]
        return prompt + answer, [-100] * len(prompt) + answer

    def collate(self, examples: list[tuple[list[int], list[int]]]) -> dict[str, torch.Tensor]:
        """Left-padded batch; padding gets attention 0 and label -100; explicit positions."""
        T = max(len(ids) for ids, _ in examples)
        pad = self.tokenizer_.pad_token_id
        ids = torch.tensor([[pad] * (T - len(i)) + i for i, _ in examples])
        labels = torch.tensor([[-100] * (T - len(lab)) + lab for _, lab in examples])
        mask = torch.tensor([[0] * (T - len(i)) + [1] * len(i) for i, _ in examples])
        pos = (mask.cumsum(1) - 1).clamp(min=0)
        return {"input_ids": ids, "attention_mask": mask, "position_ids": pos, "labels": labels}

    def example_losses(self, batch: dict[str, torch.Tensor], model: Any = None) -> torch.Tensor:
        """Mean cross-entropy over each example's answer tokens (B,).

        Answers sit at the end of every left-padded row, so only the last K+1 positions'
        logits are computed (K = longest answer + eos in the batch). `model`: the module to
        run (the Trainer's, possibly DDP-wrapped); default the fitted LM.
        """
        labels = batch["labels"]
        K = int((labels != -100).sum(1).max())
        out = (model if model is not None else self.lm_)(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"], logits_to_keep=K + 1,
        )
        logits = out.logits[:, :-1, :].float()
        target = labels[:, -K:]
        tok_loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100, reduction="none"
        ).view(target.shape)
        keep = (target != -100).float()
        return (tok_loss * keep).sum(1) / keep.sum(1).clamp(min=1)

    # --- fit -------------------------------------------------------------------------------
    def _fit_once(self, train: LabeledTexts, validation: LabeledTexts | None, lr: float,
                  on_epoch: EpochCallback | None) -> float | None:
        """One LoRA training run at learning rate `lr` on `transformers.Trainer` (see
        `hf_trainer`); returns the kept epoch's validation macro-F1 (None without validation)."""
        from peft import LoraConfig
        from sklearn.metrics import accuracy_score

        from clfbench.engines.llm import load_causal_lm
        from clfbench.evaluation.metrics import macro_f1
        from clfbench.methods import hf_trainer

        device = training_device(self.device)
        bf16 = resolve_bf16(self.name, self.bf16, device)
        self.labels = list(train.label_names)
        self.shot_examples_ = []
        self.is_pair_ = train.pairs is not None
        base, self.tokenizer_ = load_causal_lm(self.model, self.device, self.dtype, self.name)
        torch.manual_seed(self.seed)
        cfg = LoraConfig(
            task_type="CAUSAL_LM", r=self.r, lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout, target_modules=list(self.target_modules),
        )
        try:
            self.lm_ = peft_wrap(base, cfg)
        except ValueError as e:
            raise ClfbenchError(f"{self.name}: LoRA target_modules {self.target_modules}: {str(e).splitlines()[0]}") from None
        self._build()
        data = [(*self.training_example(train.texts[i], train.pairs[i] if train.pairs is not None else None,
                                        int(train.labels[i])), int(train.labels[i])) for i in range(len(train))]
        counts = np.bincount(train.labels, minlength=len(self.labels)).astype(float)
        weights = np.ones(len(self.labels))
        if self.class_weight == "balanced":
            weights = np.where(counts > 0, counts.sum() / (len(self.labels) * np.maximum(counts, 1)), 0.0)
        w = torch.tensor(weights, dtype=torch.float32)

        def collate(items: list[tuple[list[int], list[int], int]]) -> dict[str, torch.Tensor]:
            batch = self.collate([(ids, labels) for ids, labels, _ in items])
            batch["classes"] = torch.tensor([c for _, _, c in items])
            return batch

        def loss_fn(model: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, int]:
            classes = batch.pop("classes")
            losses = self.example_losses(batch, model)
            yw = w.to(losses.device)[classes]
            loss = (losses * yw).sum() / yw.sum().clamp(min=1e-8)
            return loss, losses.sum(), len(classes)  # train loss: the unweighted example mean

        def validate(epoch: int) -> tuple[dict[str, Any], float]:
            self.lm_.eval()
            self.scorer_.reset_cache()
            # Label scoring whatever `decision` is (predict_proba refuses decision=generate).
            pred = self.scorer_.score(validation)[0].argmax(1)
            f1 = macro_f1(validation.labels, pred)  # over the gold classes, as reported
            return ({"validation_macro_f1": f1,
                     "validation_accuracy": float(accuracy_score(validation.labels, pred))}, f1)

        has_val = validation is not None and len(validation) > 0
        # llm-sft's fixed recipe below its parameters: clipping at 1.0, decay on every parameter,
        # warm-up rounded down, the best validation macro-F1 kept, data order by permutation
        settings = TrainingSettings.from_estimator(self, lr=lr, bf16=bf16, **SFT_RECIPE)
        record = hf_trainer.train(
            self.lm_, data, collate, loss_fn, hf_trainer.PermutationSampler(len(data), self.seed),
            settings, device=device, validate=validate if has_val else None, on_epoch=on_epoch,
            verbose=self.verbose, checkpoint=self._checkpoint(train, validation, lr, device),
        )
        self.lm_.eval()
        self.scorer_.reset_cache()
        self._info = {}
        total_p, trainable = self.n_parameters()
        self.fit_info_ = {
            "best_epoch": record["best_epoch"],
            "selection": "validation macro-F1 (label scoring)" if has_val else "last epoch (no validation split)",
            "history": record["history"],
            "optimizer": {"name": "AdamW", "lr": settings.lr, "weight_decay": settings.weight_decay,
                          "schedule": "linear", **record["schedule"], "epochs": settings.epochs,
                          "batch_size": settings.batch_size, "max_grad_norm": settings.max_grad_norm},
            "trainer": record["trainer"],
            "precision": "bf16-autocast" if bf16 else "fp32",
            "train_examples": len(data),
            "train_tokens_mean": float(np.mean([len(i) for i, _, _ in data])) if data else 0.0,
            "class_weights": dict(zip(self.labels, map(float, weights))),
            "lora": {"r": self.r, "alpha": self.lora_alpha, "dropout": self.lora_dropout,
                     "target_modules": list(self.target_modules)},
            "trainable_parameters": trainable,
            "decision": self.decision,
            "prompt": self.encoder_.describe(),
        }
        return record["score"]

    def n_parameters(self) -> tuple[int, int]:
        total = sum(p.numel() for p in self.lm_.parameters())
        lora = sum(p.numel() for n, p in self.lm_.named_parameters() if "lora_" in n)
        return int(total), int(lora)

    # --- persistence -----------------------------------------------------------------------
    def _save_state(self, path: Path) -> None:
        """The LoRA adapter and tokenizer (in adapter/), the template and the prompt state."""
        self.lm_.save_pretrained(path / "adapter")
        self.tokenizer_.save_pretrained(path / "adapter")
        (path / "template.yaml").write_text(self.encoder_.builder.template_text, encoding="utf-8")
        state = {"is_pair": self.is_pair_, "fit_info": self.fit_info_}
        (path / "prompt_state.json").write_text(json.dumps(state, indent=2, ensure_ascii=False))

    def _load_state(self, path: Path) -> None:
        from peft import PeftModel

        from clfbench.engines.llm import load_causal_lm, load_decoder_tokenizer
        from clfbench.engines.models import ModelRef

        state = json.loads((path / "prompt_state.json").read_text())
        self.shot_examples_ = []
        self.is_pair_ = bool(state["is_pair"])
        self.fit_info_ = state.get("fit_info", {})
        base, _ = load_causal_lm(self.model, self.device, self.dtype, self.name)
        self.tokenizer_ = load_decoder_tokenizer(ModelRef(str(path / "adapter"), str(path / "adapter"), "folder"))
        with peft_quietly():
            self.lm_ = PeftModel.from_pretrained(base, str(path / "adapter")).eval()
        self._build(str(path / "template.yaml"))
