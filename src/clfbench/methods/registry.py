"""The registry of methods: name -> "module:Class", imported when first asked for.

Imports are lazy so that `tfidf-lr` never pays for torch. A plug-in is one line:
`register_method("my-method", "my_pkg.module:MyClassifier")`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from clfbench.errors import ClfbenchError

if TYPE_CHECKING:
    from clfbench.methods.base import Classifier

METHODS: dict[str, str] = {
    "tfidf-lr": "clfbench.methods.tfidf_lr:TfidfLogReg",
    "embed-probe": "clfbench.methods.embed_probe:EmbeddingProbe",
    "encoder-ft": "clfbench.methods.encoder_ft:EncoderFineTune",
    "encoder-lora": "clfbench.methods.encoder_ft:EncoderLoRA",
    "llm-prompt": "clfbench.methods.llm_prompt:LLMPrompt",
    "llm-sft": "clfbench.methods.llm_sft:LLMSFT",
    "decoder-head": "clfbench.methods.decoder_head:DecoderHead",
    "llm-api": "clfbench.methods.llm_api:LlmApi",
    "llm-dspy": "clfbench.methods.llm_dspy:LlmDspy",
    "setfit": "clfbench.methods.setfit:SetFit",
    "distill": "clfbench.methods.distill:Distill",
}


def register_method(name: str, target: str) -> None:
    """Register a plug-in method: `register_method("my-method", "my_pkg.mod:MyClassifier")`."""
    METHODS[name] = target


def get_method(name: str) -> type[Classifier]:
    if name not in METHODS:
        known = ", ".join(sorted(METHODS))
        raise ClfbenchError(f"unknown method {name!r}; known methods: {known}")
    module, _, attr = METHODS[name].partition(":")
    return getattr(importlib.import_module(module), attr)
