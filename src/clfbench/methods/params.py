"""What a method's parameters are and mean, for `clfbench methods`: names, defaults, one line each.

Names and defaults come from the method class's `__init__` signature (exactly what `--param`
accepts). Meanings come from `PARAM_HELP`: "name" is shared by every method that takes the
parameter, "method.name" is one method's own; a class (a plug-in method) may also declare its
own `param_help` dict (the nearest class in its MRO wins over `PARAM_HELP`).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

from clfbench.methods.base import get_method

_DEVICE = "cpu, cuda or mps (default: the GPU when present, else the CPU)"
_LORA = "(LoRA) "

#: One line per parameter name, shared by the methods that take it.
PARAM_HELP: dict[str, str] = {
    # Shared by many methods.
    "model": "hub id, local folder or the offline alias minilm (also --model)",
    "seed": "training seed (also --seed)",
    "device": _DEVICE,
    "batch_size": "examples per batch (also --batch-size)",
    "max_length": "tokens per input; longer texts are truncated (also --max-length)",
    "class_weight": "balanced: weight the loss by inverse class frequency (default unweighted)",
    "tfidf-lr.model": "not taken: tfidf-lr learns from the training texts alone",
    "llm-prompt.model": "a causal LM: hub id or local folder (required; also --model)",
    "llm-sft.model": "a causal LM: hub id or local folder (required; also --model)",
    "decoder-head.model": "a decoder LM: hub id or local folder (required; also --model)",
    "llm-api.model": "the server's model name, e.g. gpt-4o-mini (required; also --model)",
    "llm-api.decision": "auto (logprobs when the server returns them), logprobs or generate",
    "llm-api.seed": "seed of the few-shot draw (also --seed)",
    "llm-prompt.seed": "seed of the few-shot draw (also --seed)",
    # Logistic-regression methods.
    "C": "fixed inverse regularisation of the logistic regression (default: chosen from c_grid)",
    "c_grid": "C values tried on validation (a one-value grid is that value)",
    "max_iter": "logistic regression solver iterations",
    "ngram_max": "longest word n-gram of the TF-IDF features",
    "min_df": "drop n-grams found in fewer training texts than this",
    "max_features": "keep the N most frequent n-grams (null: all)",
    "normalize": "L2-normalise the embeddings before the probe",
    # Training loop.
    "lr": "learning rate (default: searched on validation when tune=auto, else the recipe's)",
    "lr_grid": "learning rates to search instead of the method's default range",
    "tune": "auto: search the learning rate on validation; off: train the fixed recipe once",
    "tune_trials": "learning rates tried when tuning",
    "epochs": "passes over the training data (also --epochs)",
    "warmup_ratio": "share of the steps with a linear learning-rate warm-up",
    "weight_decay": "AdamW weight decay",
    "max_grad_norm": "gradient-norm clipping",
    "sampling": "balanced: draw class-balanced training batches (default: plain shuffling)",
    "selection": "epoch kept: f1 (best validation macro-F1), gap (F1 minus the train-val gap), last",
    "grad_accum": "gradient accumulation: batches of batch_size summed into one optimizer step",
    "grad_checkpointing": "recompute activations in the backward pass: less memory, more compute",
    "bf16": "bf16 mixed-precision training: auto (on a GPU that supports it, off on CPU), true, false",
    "checkpoint_dir": "save a checkpoint every epoch here and resume an interrupted training from it "
                      "(one subfolder per configuration, deleted when the fit completes)",
    "checkpoint_steps": "also save a checkpoint every N optimizer steps (needs checkpoint_dir; "
                        "default: at the end of each epoch only)",
    "r": _LORA + "adapter rank",
    "lora_alpha": _LORA + "scaling alpha",
    "lora_dropout": _LORA + "dropout on the adapter's input",
    "target_modules": _LORA + "modules that get an adapter (default: the method's own)",
    # Encoder inference engine.
    "eval_batch_size": "prediction batch size, or auto to search it",
    "backend": "torch or onnx (ONNX Runtime) for predictions (also --backend)",
    "quantize": "ONNX dynamic int8 (with backend=onnx); agreement with fp32 is recorded",
    "eval_dtype": "auto (bf16 on GPU, fp32 on CPU), bf16 or fp32 for predictions",
    "recheck": "auto or a margin: near-ties of an inexact path are recomputed in fp32",
    # Prompted LLMs.
    "shots": "few-shot examples from train, balanced over classes; 0 is zero-shot (also --shots)",
    "decision": "score: label log-likelihoods; generate: greedy generation parsed (also --decision)",
    "draws": "runs per seed, each with another few-shot set; mean and std reported (also --draws)",
    "use_chat_template": "wrap the prompt in the tokenizer's chat template when it has one",
    "length_normalize": "score an answer by its mean token log-likelihood instead of the sum",
    "template": "a prompt template YAML (default src/clfbench/prompts/default.yaml)",
    "prompt": "overrides of the task's prompt (instruction, verbalizers, text_name)",
    "prefix_cache": "reuse the key/value cache of the prompt prefix shared by every query",
    "max_new_tokens": "generation length limit (default: enough for the longest answer)",
    "dtype": "weights dtype, e.g. bfloat16 (default: bf16 on a GPU that supports it, else fp32)",
    "bos": "auto (as the tokenizer does), always or never add a beginning-of-text token",
    "complete_answers": "score each answer with the token that ends it (default: only when needed)",
    "descriptions": "auto (default; llm-sft: off): the labels' one-line descriptions in the prompt unless they leave a local model less than half of max_length for the query; on: always (refused if they do not fit); off: never",
    "label_descriptions": "a YAML/JSON file label -> one-line description (adds to or overrides the task's)",
    # DSPy.
    "optimizer": "bootstrap (DSPy BootstrapFewShot; with trials > 1 random search over bootstraps) or mipro (MIPROv2)",
    "trials": "candidate programs scored on validation (null: 1 for bootstrap, no search; 10 for mipro)",
    "llm-dspy.max_tokens": "completion token limit of a classification call (null: 32, room for DSPy's format)",
    "max_demos": "most few-shot demonstrations the optimised program keeps",
    "max_calls": "hard cap on the optimisation's API calls (null: no cap; budget_usd still applies)",
    "proposal_max_tokens": "completion token limit of MIPROv2's instruction-proposal calls",
    "llm-dspy.model": "the server's model name, e.g. gpt-4o-mini (required; also --model)",
    "llm-dspy.seed": "seed of the optimiser (also --seed)",
    # API models.
    "base_url": "the OpenAI-compatible endpoint",
    "api_key_env": "environment variable that holds the API key (never printed or saved)",
    "concurrency": "requests in flight at once",
    "max_retries": "retries on 429, 5xx and timeouts, with exponential backoff",
    "timeout_s": "seconds before a request is abandoned",
    "budget_usd": "hard spending limit: nothing is sent that would exceed it",
    "prices": "a price table YAML for models missing from the shipped one",
    "max_tokens": "completion token limit per request",
    "temperature": "sampling temperature (0: greedy)",
    "top_logprobs": "log-probabilities requested per token (label probabilities)",
    "stream": "stream responses (measures the time to the first token)",
    "backoff_base_s": "first retry delay in seconds (doubled at each retry)",
    "backoff_max_s": "longest retry delay in seconds",
}


@dataclass(frozen=True)
class ParamInfo:
    """One parameter of a method: its name, default and one-line meaning."""

    name: str
    default: Any
    help: str


def param_help(klass: type, name: str) -> str:
    """The meaning of `name` for `klass`: its own `param_help`, else the method's entry in
    PARAM_HELP, else the shared one, else ''."""
    for k in klass.__mro__:
        own = vars(k).get("param_help") or {}
        if name in own:
            return own[name]
    method = getattr(klass, "name", "")
    return PARAM_HELP.get(f"{method}.{name}", PARAM_HELP.get(name, ""))


def method_params(method: str) -> list[ParamInfo]:
    """The parameters of a registered method in signature order (what `--param` accepts)."""
    klass = get_method(method)
    out = []
    for p in list(inspect.signature(klass.__init__).parameters.values())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        default = None if p.default is inspect.Parameter.empty else p.default
        out.append(ParamInfo(p.name, default, param_help(klass, p.name)))
    return out


def format_default(value: Any) -> str:
    """A default as a user would type it after `--param KEY=` (YAML: null, true, [a, b])."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(format_default(v) for v in value) + "]"
    return str(value)
