"""Prompting a local causal LM: zero- or few-shot, labels by answer log-likelihood or generation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from annotated_types import Ge

from clfbench.data.texts import LabeledTexts, Texts
from clfbench.engines.prompts import BOS_POLICIES
from clfbench.errors import ClfbenchError
from clfbench.methods.base import INVALID, Classifier
from clfbench.methods.params import (
    BATCH_SIZE,
    DESCRIPTIONS,
    DEVICE,
    LABEL_DESCRIPTIONS,
    MAX_LENGTH,
    MODEL,
    PROMPT,
    SEED,
    TEMPLATE,
    Param,
)
from clfbench.methods.schema import OneOf

DECISIONS = ("score", "generate")


class LLMPrompt(Classifier):
    """Prompt a causal LM (zero/few-shot); decide by label log-likelihood or by parsing generation.

    `decision="score"`: each label's answer word is scored as the continuation of the
    prompt; a softmax over labels gives probabilities. `decision="generate"`: greedy
    generation parsed against the answer words; an output matching none is INVALID (-1),
    counted in the invalid rate and never mapped to a class; no probabilities. Generation is
    greedy whatever the checkpoint's generation_config says (the config used is recorded).
    `bos`: "auto" (as the tokenizer does, like lm-evaluation-harness), "always" or "never".
    `complete_answers`: score each answer followed by the token that ends it (None: only when
    one label's answer is a prefix of another's, which is warned about and recorded).
    `descriptions`: "on" renders the labels' one-line descriptions (task YAML
    `label_descriptions`, or the file `label_descriptions`) into the prompt, "off" leaves them out,
    "auto" (the default) renders them unless the fixed prompt would take over half of `max_length`.
    Few-shot examples: `shots` from the training split, balanced over classes, seeded by
    `seed`, shuffled, the same for every query. `draws=N` is expanded by the runner into N
    runs per seed, draw d getting seed `config.draw_seed(seed, d)` (each a different shot set),
    summarised as mean and std.
    """

    name = "llm-prompt"
    model_params = ("model",)
    needs_training = False

    model: str | None = MODEL.but(None, "a causal LM: hub id or local folder (required; also --model)")
    shots: int = Param(0, "few-shot examples from train, balanced over classes; 0 is zero-shot (also --shots)",
                       Ge(0))
    decision: str = Param("score", "score: label log-likelihoods; generate: greedy generation parsed "
                                   "(also --decision)", OneOf(DECISIONS))
    draws: int = Param(1, "runs per seed, each with another few-shot set; mean and std reported "
                          "(also --draws)", Ge(1))
    seed: int = SEED.but(help="seed of the few-shot draw (also --seed)")
    batch_size: int = BATCH_SIZE.but(8)
    max_length: int = MAX_LENGTH.but(512)
    use_chat_template: bool = Param(True, "wrap the prompt in the tokenizer's chat template when it has one")
    length_normalize: bool = Param(False, "score an answer by its mean token log-likelihood instead of the sum")
    template: str | None = TEMPLATE
    prompt: dict | None = PROMPT
    prefix_cache: bool = Param(True, "reuse the key/value cache of the prompt prefix shared by every query")
    max_new_tokens: int | None = Param(None, "generation length limit (default: enough for the longest "
                                             "answer)", Ge(1))
    device: str | None = DEVICE
    dtype: str | None = Param(None, "weights dtype, e.g. bfloat16 (default: bf16 on a GPU that supports it, "
                                    "else fp32)")
    bos: str = Param("auto", "auto (as the tokenizer does), always or never add a beginning-of-text token",
                     OneOf(BOS_POLICIES))
    complete_answers: bool | None = Param(None, "score each answer with the token that ends it (default: "
                                                "only when needed)")
    descriptions: str = DESCRIPTIONS
    label_descriptions: str | None = LABEL_DESCRIPTIONS

    def _check_params(self) -> None:
        super()._check_params()
        if self.label_descriptions:  # a missing or malformed file fails here, when built
            from clfbench.engines.prompts import read_label_descriptions

            read_label_descriptions(self.label_descriptions)

    @property
    def has_probabilities(self) -> bool:  # type: ignore[override]
        return self.decision == "score"

    # --- fit -------------------------------------------------------------------------------
    def fit(self, train: LabeledTexts, validation: LabeledTexts | None = None) -> LLMPrompt:
        """Record labels, pick the few-shot set, load the model and tokenize the shared prefix."""
        from clfbench.engines.llm import load_causal_lm, shots_from
        from clfbench.engines.prompts import sample_shots

        self.labels = list(train.label_names)
        self._builder()  # bad descriptions (unknown labels) fail before the model is loaded
        idx = sample_shots(train, self.shots, self.seed)
        self.shot_examples_ = shots_from(train, idx)
        self.is_pair_ = train.pairs is not None
        self.lm_, self.tokenizer_ = load_causal_lm(self.model, self.device, self.dtype, self.name)
        self._build()
        self.fit_info_ = {
            "shots": self.shots,
            "shot_seed": self.seed,
            "draws": self.draws,
            "shot_ids": [train.ids[i] for i in idx],
            "shot_labels": [self.labels[y] for _, _, y in self.shot_examples_],
            "decision": self.decision,
            "bos": self.encoder_.bos,
            "prompt": self.encoder_.describe(),
        }
        return self

    def _build(self, template: str | None = None) -> None:
        """PromptBuilder + PromptEncoder + scorer from the fitted state."""
        from clfbench.engines.llm import CausalLMClassifier, PromptEncoder

        builder = self._builder(template)
        # A tuned model (llm-sft) learnt "answer + eos": eos is what ends its answers.
        answer_end = self.tokenizer_.eos_token if self.needs_training else None
        self.encoder_ = PromptEncoder(
            builder, self.tokenizer_, self.shot_examples_, self.use_chat_template, self.max_length,
            self.is_pair_, getattr(self, "bos", "auto"), answer_end,
            getattr(self, "complete_answers", None),
        )
        self.scorer_ = CausalLMClassifier(
            self.lm_, self.encoder_, self.batch_size, self.prefix_cache, self.length_normalize
        )
        self._info: dict[str, Any] = {}

    def _builder(self, template: str | None = None):
        """The PromptBuilder of this run (labels known): template, descriptions on or off."""
        from clfbench.engines.prompts import method_builder

        return method_builder(self, template or self.template)

    # --- predict ---------------------------------------------------------------------------
    def _check_input(self, X: Texts) -> None:
        if (X.pairs is not None) != self.is_pair_:
            kind = "text pairs" if self.is_pair_ else "single texts"
            raise ClfbenchError(f"{self.name}: this model was set up for {kind}")

    def _record(self, info: dict[str, Any]) -> None:
        """Keep the facts of the largest prediction call (the full test pass)."""
        if info.get("n_examples", 0) >= self._info.get("n_examples", 0):
            self._info = info

    def predict_proba(self, X: Texts) -> np.ndarray:
        if self.decision != "score":
            raise ClfbenchError(f"{self.name}: decision=generate gives no probabilities")
        from clfbench.engines.llm import softmax

        self._check_input(X)
        scores, info = self.scorer_.score(X)
        self._record({**info, "decision": "score", "length_normalize": self.length_normalize})
        return softmax(scores)

    def generate(self, X: Texts) -> list[str]:
        """Raw greedy outputs for `X` (what decision=generate parses)."""
        self._check_input(X)
        texts, info = self.scorer_.generate(X, self.max_new_tokens)
        preds = [self.encoder_.builder.parse(t) for t in texts]
        bad = [t for t, p in zip(texts, preds) if p == INVALID]
        self._record({**info, "decision": "generate", "invalid": len(bad),
                      "invalid_rate": len(bad) / max(1, len(texts)), "invalid_examples": bad[:5]})
        self._last_preds = preds
        return texts

    def predict(self, X: Texts) -> np.ndarray:
        return self.classify(X)[0]

    def classify(self, X: Texts) -> tuple[np.ndarray, np.ndarray | None]:
        if self.decision == "score":
            proba = self.predict_proba(X)
            return proba.argmax(axis=1), proba
        self.generate(X)
        return np.asarray(self._last_preds, dtype=np.int64), None

    def inference_info(self) -> dict[str, Any]:
        return dict(self._info)

    def n_parameters(self) -> tuple[int, int]:
        total = sum(p.numel() for p in self.lm_.parameters())
        trainable = sum(p.numel() for p in self.lm_.parameters() if p.requires_grad)
        return int(total), int(trainable) if self.needs_training else 0

    # --- persistence -----------------------------------------------------------------------
    def _save_state(self, path: Path) -> None:
        """The few-shot set and the template text; the model is reloaded from `model`."""
        (path / "template.yaml").write_text(self.encoder_.builder.template_text, encoding="utf-8")
        state = {"shots": self.shot_examples_, "is_pair": self.is_pair_, "fit_info": self.fit_info_}
        (path / "prompt_state.json").write_text(json.dumps(state, indent=2, ensure_ascii=False))

    def saved_params(self) -> dict[str, Any]:
        """A descriptions file's content is saved in `prompt` (the model reloads without it)."""
        from clfbench.engines.prompts import inline_descriptions

        return inline_descriptions(self.get_params(), self.encoder_.builder)

    def _load_state(self, path: Path) -> None:
        from clfbench.engines.llm import load_causal_lm

        state = json.loads((path / "prompt_state.json").read_text())
        self.shot_examples_ = [(t, p, int(y)) for t, p, y in state["shots"]]
        self.is_pair_ = bool(state["is_pair"])
        self.fit_info_ = state.get("fit_info", {})
        self.lm_, self.tokenizer_ = load_causal_lm(self.model, self.device, self.dtype, self.name)
        self._build(str(path / "template.yaml"))
