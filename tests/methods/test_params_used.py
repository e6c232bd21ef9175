"""Every declared parameter of every registered method is used, or a bad value of it is refused.

Table-driven. For each method, USED maps a parameter to a non-default value and how its use is
seen after fitting (the fitted objects, fit_info, inference_info, what reached torch or the
API server); the values are fitted together in one fit per method, except `alone` ones
(values that conflict with the others), fitted on their own. BAD lists values that must be
refused with ClfbenchError. `test_every_parameter_is_covered` fails when a method declares a
parameter that appears in neither table, so no parameter can be added without saying how it
is used. Tiny models (tests/tiny_models.py) on ~30 examples keep this fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from neural_helpers import step_grad_norm, toy_data
from torch.optim.optimizer import register_optimizer_step_pre_hook

from clfbench.engines.prompts import sample_shots
from clfbench.errors import ClfbenchError
from clfbench.methods.base import METHODS, accepted_params, make_method

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # max_iter=7

# The learning-rate search parameters are the lead's to cover (tests of methods/tuning.py).
TUNING = {"tune", "tune_trials", "lr_grid"}
# Placeholders resolved when the test runs.
MODEL, TEMPLATE, SERVER = "<model>", "<template>", "<server>"
DESCRIPTIONS = "<descriptions>"  # a label descriptions file: positive -> "LDESC liked it"
CHECKPOINTS = "<checkpoints>"  # an empty folder for checkpoint_dir
A_FILE = "<a file>"  # an existing file (not a folder)

TRAIN = toy_data(30, 0, long_every=5, proportions=(2, 1, 1))
VALIDATION = toy_data(12, 1)
TEST = toy_data(6, 2)


@dataclass
class Use:
    """`value` given, then `seen(fitted method, probe) -> bool` says whether it was used."""

    value: Any
    seen: Callable[[Any, Probe], bool]
    alone: dict[str, Any] | None = None  # fitted on its own, with these other parameters


@dataclass
class Probe:
    """What a fit left outside the method: seeds given to torch, schedules built, requests."""

    manual_seeds: list[int] = field(default_factory=list)
    step_grad_norms: list[float] = field(default_factory=list)  # at each optimizer step, clipped
    requests: list[dict[str, Any]] = field(default_factory=list)
    train_labels: np.ndarray = field(default_factory=lambda: TRAIN.labels)


def fi(m: Any, *keys: str) -> Any:
    """fit_info()[keys[0]][keys[1]]..."""
    v = m.fit_info()
    for k in keys:
        v = v[k]
    return v


def info(m: Any, key: str) -> Any:
    """inference_info()[key] after predicting the test texts."""
    m.classify(TEST)
    return m.inference_info()[key]


# --- the tables ---------------------------------------------------------------------------------
TORCH_TRAINED = {  # encoder-ft, encoder-lora and decoder-head share the training loop
    "model": Use(MODEL, lambda m, p: fi(m, "model", "source") == m.model),
    "lr": Use(1e-3, lambda m, p: fi(m, "optimizer", "lr") == 1e-3),
    # 30 examples in batches of 8: 4 steps per epoch, 8 in 2 epochs.
    "batch_size": Use(8, lambda m, p: fi(m, "optimizer", "total_steps") == 8),
    "epochs": Use(2, lambda m, p: fi(m, "epochs_run") == 2 and len(fi(m, "history")) == 2),
    "max_length": Use(16, lambda m, p: fi(m, "truncation", "max_length") == 16
                      and fi(m, "truncation", "train_truncated") > 0),
    "warmup_ratio": Use(0.5, lambda m, p: fi(m, "optimizer", "warmup_steps") == 4),
    "weight_decay": Use(0.05, lambda m, p: fi(m, "optimizer", "weight_decay") == 0.05),
    # what the optimizer steps with: clipped to 1e-4 (an unclipped gradient is far larger)
    "max_grad_norm": Use(1e-4, lambda m, p: bool(p.step_grad_norms)
                         and 0 < max(p.step_grad_norms) <= 1e-4 * 1.001),
    "class_weight": Use("balanced", lambda m, p: fi(m, "class_weight") == "balanced"),
    "sampling": Use("balanced", lambda m, p: fi(m, "sampling") == "balanced"),
    "selection": Use("last", lambda m, p: fi(m, "selection") == "last" and fi(m, "best_epoch") == 2),
    "eval_batch_size": Use(7, lambda m, p: info(m, "batch_size") == 7),
    "device": Use("cpu", lambda m, p: fi(m, "device") == "cpu"),
    "seed": Use(7, lambda m, p: 7 in p.manual_seeds),
}
# The Trainer's extras (encoder-ft, encoder-lora, decoder-head, llm-sft): what the Trainer ran with.
TRAINER = {
    # fitted alone: 30 examples in batches of 16 = 2 batches, accumulated into 1 optimizer step
    "grad_accum": Use(2, lambda m, p: fi(m, "trainer", "gradient_accumulation_steps") == 2
                      and fi(m, "optimizer", "total_steps") == 1, alone={}),
    "grad_checkpointing": Use(True, lambda m, p: fi(m, "trainer", "gradient_checkpointing") is True),
    "bf16": Use(True, lambda m, p: fi(m, "trainer", "mixed_precision") == "bf16"),
    # checkpoints were saved under the folder; the completed fit deleted them
    "checkpoint_dir": Use(CHECKPOINTS, lambda m, p: fi(m, "trainer", "checkpoint")["folder"].startswith(
        m.checkpoint_dir) and not Path(fi(m, "trainer", "checkpoint")["folder"]).exists()),
    "checkpoint_steps": Use(1, lambda m, p: fi(m, "trainer", "checkpoint")["every_steps"] == 1),
}
LORA = {
    "r": Use(4, lambda m, p: fi(m, "lora", "r") == 4),
    "lora_alpha": Use(8, lambda m, p: fi(m, "lora", "alpha") == 8),
    "lora_dropout": Use(0.2, lambda m, p: fi(m, "lora", "dropout") == 0.2),
}
CLIENT = {  # the OpenAI-compatible client's parameters (llm-api, llm-dspy)
    "model": Use("test-model", lambda m, p: all(r["body"]["model"] == "test-model" for r in p.requests)),
    "base_url": Use(SERVER, lambda m, p: len(p.requests) > 0),
    "api_key_env": Use("CLFBENCH_TEST_PARAMS_KEY", lambda m, p: all(
        r["headers"].get("Authorization") == "Bearer sk-params-test-123" for r in p.requests)),
    "concurrency": Use(3, lambda m, p: m._client().concurrency == 3),
    "max_retries": Use(2, lambda m, p: m._client().max_retries == 2),
    "timeout_s": Use(5.0, lambda m, p: m._client().timeout_s == 5.0),
    "backoff_base_s": Use(0.02, lambda m, p: m._client().backoff_base_s == 0.02),
    "backoff_max_s": Use(0.04, lambda m, p: m._client().backoff_max_s == 0.04),
    "budget_usd": Use(5.0, lambda m, p: m._client().budget.limit_usd == 5.0),
    "prices": Use("<prices>", lambda m, p: m.price_ == {"input": 1.0, "output": 2.0}),
}
ENGINE = {  # encoder inference settings
    "eval_dtype": Use("bf16", lambda m, p: info(m, "dtype") == "bfloat16"),
    "recheck": Use(0.25, lambda m, p: info(m, "recheck")["margin"] == 0.25),
}


def _llm_prompt_table(trained: bool) -> dict[str, Use]:
    """llm-prompt's prompt and scoring parameters (llm-sft inherits them)."""
    return {
        "model": Use(MODEL, lambda m, p: Path(m.lm_.name_or_path) == Path(m.model)),
        "batch_size": Use(3, lambda m, p: m.scorer_.batch_size == 3
                          and (not trained or fi(m, "optimizer", "batch_size") == 3)),
        "max_length": Use(48, lambda m, p: fi(m, "prompt", "max_length") == 48 == m.encoder_.max_length),
        "use_chat_template": Use(False, lambda m, p: fi(m, "prompt", "chat_template_applied") is False),
        "length_normalize": Use(True, lambda m, p: info(m, "length_normalize") is True),
        "template": Use(TEMPLATE, lambda m, p: "Review >>>" in fi(m, "prompt", "rendered_example")),
        "prompt": Use({"instruction": "Say XYZZY."}, lambda m, p: "XYZZY" in fi(m, "prompt", "rendered_example")),
        "prefix_cache": Use(False, lambda m, p: info(m, "prefix_cache") is False),
        "decision": Use("generate", lambda m, p: not m.has_probabilities and info(m, "decision") == "generate",
                        alone={"max_new_tokens": 3}),
        "max_new_tokens": Use(3, lambda m, p: info(m, "max_new_tokens") == 3, alone={"decision": "generate"}),
        "device": Use("cpu", lambda m, p: m.lm_.device.type == "cpu"),
        "dtype": Use("bfloat16", lambda m, p: m.lm_.dtype == torch.bfloat16),
        "label_descriptions": Use(DESCRIPTIONS, lambda m, p: "- positive: LDESC liked it" in fi(
            m, "prompt", "rendered_example"), alone={}),  # alone: the shared fit's max_length is 48
        "descriptions": Use("off", lambda m, p: "LDESC" not in fi(m, "prompt", "rendered_example")
                            and fi(m, "prompt", "descriptions") == "off", alone={"label_descriptions": DESCRIPTIONS}),
    }


USED: dict[str, dict[str, Use]] = {
    "tfidf-lr": {
        "ngram_max": Use(1, lambda m, p: all(" " not in t for t in m.pipeline_[0].vocabulary_)),
        "min_df": Use(2, lambda m, p: m.pipeline_[0].min_df == 2),
        "max_features": Use(10, lambda m, p: len(m.pipeline_[0].vocabulary_) == 10),
        "C": Use(0.5, lambda m, p: m.pipeline_[-1].C == 0.5 == fi(m, "C")),
        "c_grid": Use([1000], lambda m, p: m.pipeline_[-1].C == 1000, alone={}),
        "class_weight": Use("balanced", lambda m, p: m.pipeline_[-1].class_weight == "balanced"),
        "seed": Use(7, lambda m, p: m.pipeline_[-1].random_state == 7),
    },
    "embed-probe": {
        "model": Use(MODEL, lambda m, p: fi(m, "model", "name") == m.model),
        "C": Use(0.5, lambda m, p: m.lr_.C == 0.5 == fi(m, "C")),
        "c_grid": Use([1000], lambda m, p: m.lr_.C == 1000 == fi(m, "C"), alone={}),
        "max_iter": Use(7, lambda m, p: m.lr_.max_iter == 7),
        "normalize": Use(False, lambda m, p: not np.allclose(np.linalg.norm(m.embed(TEST), axis=1), 1)),
        "class_weight": Use("balanced", lambda m, p: m.lr_.class_weight == "balanced"),
        "max_length": Use(8, lambda m, p: fi(m, "max_length") == 8 == info(m, "max_length")),
        "batch_size": Use(5, lambda m, p: info(m, "batch_size") == 5),
        "device": Use("cpu", lambda m, p: fi(m, "device") == "cpu"),
        "seed": Use(7, lambda m, p: m.lr_.random_state == 7),
    },
    "encoder-ft": {**TORCH_TRAINED, **TRAINER, **ENGINE},
    "encoder-lora": {**TORCH_TRAINED, **TRAINER, **LORA, **ENGINE,
                     "target_modules": Use(["query"], lambda m, p: fi(m, "lora", "target_modules") == ["query"])},
    "decoder-head": {**TORCH_TRAINED, **TRAINER, **LORA,
                     "target_modules": Use(["q_proj"], lambda m, p: fi(m, "lora", "target_modules") == ["q_proj"])},
    "llm-prompt": {
        **_llm_prompt_table(trained=False),
        "shots": Use(2, lambda m, p: len(m.shot_examples_) == 2 == fi(m, "shots")),
        "draws": Use(3, lambda m, p: fi(m, "draws") == 3),
        "bos": Use("always", lambda m, p: fi(m, "prompt", "bos")["policy"] == "always"),
        "complete_answers": Use(True, lambda m, p: fi(m, "prompt", "complete_answers") is True),
        "seed": Use(7, lambda m, p: fi(m, "shot_ids") == [TRAIN.ids[i] for i in sample_shots(TRAIN, 2, 7)]),
    },
    "llm-sft": {
        **_llm_prompt_table(trained=True),
        "bos": Use("always", lambda m, p: fi(m, "prompt", "bos")["policy"] == "always"),
        "complete_answers": Use(True, lambda m, p: fi(m, "prompt", "complete_answers") is True),
        # llm-sft leaves descriptions out by default (they would lengthen every training example)
        "label_descriptions": Use(DESCRIPTIONS, lambda m, p: "- positive: LDESC liked it" in fi(
            m, "prompt", "rendered_example"), alone={"descriptions": "on"}),
        "descriptions": Use("on", lambda m, p: "LDESC" in fi(m, "prompt", "rendered_example")
                            and fi(m, "prompt", "descriptions") == "on", alone={"label_descriptions": DESCRIPTIONS}),
        **TRAINER,
        "epochs": Use(2, lambda m, p: len(fi(m, "history")) == 2),
        "lr": Use(1e-3, lambda m, p: fi(m, "optimizer", "lr") == 1e-3),
        "r": Use(4, lambda m, p: m.lm_.peft_config["default"].r == 4),
        "lora_alpha": Use(8, lambda m, p: m.lm_.peft_config["default"].lora_alpha == 8),
        "lora_dropout": Use(0.2, lambda m, p: m.lm_.peft_config["default"].lora_dropout == 0.2),
        "target_modules": Use(["q_proj"], lambda m, p: set(m.lm_.peft_config["default"].target_modules) == {"q_proj"}),
        "class_weight": Use("balanced", lambda m, p: len(set(fi(m, "class_weights").values())) > 1),
        # 30 examples, batches of 3, 2 epochs: 20 steps, int(0.5 * 20) of them warm-up.
        "warmup_ratio": Use(0.5, lambda m, p: (fi(m, "optimizer", "warmup_steps"), fi(m, "optimizer", "total_steps"))
                            == (10, 20)),  # recorded where the Trainer's scheduler is built
        "weight_decay": Use(0.1, lambda m, p: fi(m, "optimizer", "weight_decay") == 0.1),
        "seed": Use(7, lambda m, p: 7 in p.manual_seeds),
    },
    "llm-api": {
        **CLIENT,
        "shots": Use(2, lambda m, p: fi(m, "shots") == 2 and len(p.requests[-1]["body"]["messages"]) == 5),
        "seed": Use(7, lambda m, p: fi(m, "shot_ids") == [TRAIN.ids[i] for i in sample_shots(TRAIN, 2, 7)]),
        "decision": Use("generate", lambda m, p: not m.has_probabilities
                        and all("logprobs" not in r["body"] for r in p.requests)),
        "max_tokens": Use(4, lambda m, p: all(r["body"]["max_tokens"] == 4 for r in p.requests)),
        "temperature": Use(0.3, lambda m, p: all(r["body"]["temperature"] == 0.3 for r in p.requests)),
        "top_logprobs": Use(5, lambda m, p: any(r["body"].get("top_logprobs") == 5 for r in p.requests),
                            alone={"decision": "logprobs"}),
        "stream": Use(False, lambda m, p: all(r["body"]["stream"] is False for r in p.requests)),
        "prompt": Use({"instruction": "Say XYZZY."}, lambda m, p: "XYZZY" in p.requests[-1]["body"]["messages"][0]["content"]),
        "template": Use(TEMPLATE, lambda m, p: "Review >>>" in p.requests[-1]["body"]["messages"][-1]["content"]),
        "label_descriptions": Use(DESCRIPTIONS, lambda m, p: "- positive: LDESC liked it" in p.requests[-1][
            "body"]["messages"][0]["content"]),
        "descriptions": Use("off", lambda m, p: "LDESC" not in str([r["body"] for r in p.requests])
                            and fi(m, "prompt", "descriptions") == "off", alone={"label_descriptions": DESCRIPTIONS}),
    },
    "llm-dspy": {
        **CLIENT,
        "optimizer": Use("mipro", lambda m, p: fi(m, "search", "method") == "MIPROv2"
                         and fi(m, "search", "proposer_calls") > 0, alone={"trials": 2}),
        "trials": Use(2, lambda m, p: fi(m, "search", "candidates") == 2, alone={}),
        "max_demos": Use(1, lambda m, p: len(fi(m, "program", "demos")) == 1 == fi(m, "max_demos")),
        "proposal_max_tokens": Use(77, lambda m, p: any(r["body"]["max_tokens"] == 77 for r in p.requests),
                                   alone={"optimizer": "mipro", "trials": 2}),
        "seed": Use(7, lambda m, p: fi(m, "program", "demos")[0]["text"] == TRAIN.texts[_shuffled(30, 7)[0]]),
        "max_tokens": Use(40, lambda m, p: all(r["body"]["max_tokens"] == 40 for r in p.requests)),
        "temperature": Use(0.3, lambda m, p: all(r["body"]["temperature"] == 0.3 for r in p.requests)),
        "stream": Use(False, lambda m, p: all(r["body"]["stream"] is False for r in p.requests)),
        "prompt": Use({"instruction": "Say XYZZY."}, lambda m, p: "XYZZY" in p.requests[-1]["body"]["messages"][0]["content"]),
        "label_descriptions": Use(DESCRIPTIONS, lambda m, p: "positive: LDESC liked it" in p.requests[-1][
            "body"]["messages"][0]["content"]),
        "descriptions": Use("off", lambda m, p: "LDESC" not in str([r["body"] for r in p.requests])
                            and fi(m, "default_prompt", "prompt", "descriptions") == "off",
                            alone={"label_descriptions": DESCRIPTIONS}),
    },
    "setfit": {
        "model": Use(MODEL, lambda m, p: fi(m, "model", "name") == m.model),
        # 30 texts x 2 iterations x (1 positive + 1 negative) = 120 pairs; batches of 8, 2 epochs
        "num_iterations": Use(2, lambda m, p: fi(m, "pairs") == 120 and fi(m, "num_iterations") == 2),
        "batch_size": Use(8, lambda m, p: fi(m, "steps") == 30 and fi(m, "optimizer", "batch_size") == 8),
        "epochs": Use(2, lambda m, p: fi(m, "steps") == 30 and fi(m, "optimizer", "epochs") == 2),
        "lr": Use(1e-3, lambda m, p: fi(m, "optimizer", "lr") == 1e-3),
        "warmup_ratio": Use(0.5, lambda m, p: fi(m, "optimizer", "warmup_steps") == 15),
        "max_steps": Use(3, lambda m, p: fi(m, "steps") == 3, alone={}),
        # 16/7/7 texts per class: 192 positive and 273 negative pairs (with replacement)
        "sampling_strategy": Use("undersampling", lambda m, p: fi(m, "pairs") == 2 * 192,
                                 alone={"num_iterations": None}),
        "C": Use(0.5, lambda m, p: m.lr_.C == 0.5 == fi(m, "C")),
        "c_grid": Use([1000], lambda m, p: m.lr_.C == 1000 == fi(m, "C"), alone={"max_steps": 1}),
        "max_iter": Use(7, lambda m, p: m.lr_.max_iter == 7),
        "max_length": Use(8, lambda m, p: m.body_.max_seq_length == 8),
        "device": Use("cpu", lambda m, p: fi(m, "device") == "cpu"),
        "seed": Use(7, lambda m, p: m.lr_.random_state == 7 and 7 in p.manual_seeds),
    },
    "distill": {
        "teacher": Use({"method": "llm-api", "model": "test-model", "base_url": SERVER, "timeout_s": 2.0},
                       lambda m, p: fi(m, "teacher", "method") == "llm-api"
                       and fi(m, "labelling", "calls") == len(p.requests) == 5),  # the probe + 4 pool texts
        "student": Use(MODEL, lambda m, p: fi(m, "student", "fit_info", "model", "source") == m.student),
        "student_params": Use({"epochs": 2}, lambda m, p: len(fi(m, "student", "fit_info", "history")) == 2),
        "pool": Use("<pool>", lambda m, p: fi(m, "labelling", "pool_size") == 4
                    and fi(m, "agreement_with_gold") is None),
        "pool_text_col": Use("review", lambda m, p: any("POOLTEXT" in str(r["body"]) for r in p.requests)),
        "prompt": Use({"instruction": "Say XYZZY."}, lambda m, p: "XYZZY" in p.requests[-1]["body"]["messages"][0]["content"]),
        "seed": Use(7, lambda m, p: fi(m, "teacher", "params", "seed") == 7 and 7 in p.manual_seeds),
    },
}


def _shuffled(n: int, seed: int) -> list[int]:
    import random

    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order

# (parameter, bad value, other parameters it needs to be bad with)
BAD: dict[str, list[tuple[str, Any, dict[str, Any]]]] = {
    "tfidf-lr": [("model", "minilm", {}), ("C", 0, {}), ("c_grid", [], {}), ("c_grid", [1, 4], {"C": 2.0})],
    "embed-probe": [("C", -1, {}), ("c_grid", ["x"], {}), ("c_grid", [1, 4], {"C": 2.0}),
                    ("class_weight", "weird", {}), ("device", "nope", {})],
    "encoder-ft": [("backend", "tpu", {}), ("quantize", True, {"backend": "torch"}),
                   ("eval_dtype", "fp8", {}), ("recheck", -1, {}), ("selection", "best", {}),
                   ("sampling", "weird", {}), ("class_weight", "weird", {}), ("eval_batch_size", 0, {}),
                   ("grad_accum", 0, {}), ("grad_checkpointing", "yes", {}), ("bf16", "maybe", {}),
                   ("checkpoint_dir", A_FILE, {}), ("checkpoint_steps", 0, {"checkpoint_dir": CHECKPOINTS}),
                   ("checkpoint_steps", 2, {})],
    "encoder-lora": [("backend", "tpu", {}), ("quantize", True, {"backend": "torch"}),
                     ("target_modules", ["no_such_layer"], {})],
    "decoder-head": [("target_modules", ["no_such_layer"], {}), ("selection", "best", {})],
    "llm-prompt": [("decision", "vote", {}), ("shots", -1, {}), ("draws", 0, {}), ("dtype", "float99", {}),
                   ("bos", "sometimes", {})],
    "llm-sft": [("decision", "vote", {}), ("epochs", 0, {}), ("class_weight", "weird", {}), ("grad_accum", 0, {})],
    "llm-api": [("base_url", "ftp://x", {}), ("decision", "best", {}), ("concurrency", 0, {}),
                ("budget_usd", -1, {}), ("max_tokens", 0, {})],
    "llm-dspy": [("optimizer", "best", {}), ("max_calls", 0, {}), ("max_demos", -1, {}), ("trials", 0, {}),
                 ("base_url", "ftp://x", {}), ("descriptions", "maybe", {})],
    "setfit": [("sampling_strategy", "random", {}), ("num_iterations", 0, {}), ("max_steps", 0, {}),
               ("C", -1, {}), ("c_grid", [1, 4], {"C": 2.0})],
    "distill": [("teacher", {"method": "llm-sft", "model": "x"}, {}), ("teacher", {"method": "llm-api"}, {}),
                ("student_params", {"epochs": 0}, {}), ("pool", "no/such/file.csv", {}),
                ("pool_pair_col", "review", {"pool": "<pool>"})],
}
# Per method: which tiny model, and parameters every fit gets (fast, no tuning).
SETUP: dict[str, dict[str, Any]] = {
    "tfidf-lr": {},
    "embed-probe": {"arch": "bert"},
    "encoder-ft": {"arch": "bert", "base": {"epochs": 1, "batch_size": 16}},
    "encoder-lora": {"arch": "bert", "base": {"epochs": 1, "batch_size": 16}},
    "decoder-head": {"arch": "llama", "base": {"epochs": 1, "batch_size": 16}},
    "llm-prompt": {"arch": "llama"},
    "llm-sft": {"arch": "llama", "base": {"epochs": 1, "batch_size": 16}},
    "llm-api": {"base": {"model": "test-model", "base_url": SERVER, "timeout_s": 2.0,
                         "backoff_base_s": 0.01, "backoff_max_s": 0.02}},
    "llm-dspy": {"base": {"model": "test-model", "base_url": SERVER, "timeout_s": 2.0,
                          "backoff_base_s": 0.01, "backoff_max_s": 0.02, "max_demos": 2}},
    "setfit": {"arch": "bert", "base": {"num_iterations": 1, "batch_size": 16}},
    "distill": {"arch": "bert", "base": {"teacher": {"method": "llm-api", "model": "test-model", "base_url": SERVER},
                                         "student": MODEL, "student_params": {"epochs": 1}}},
}


def test_every_method_has_a_table():
    assert set(USED) == set(BAD) == set(SETUP) == set(METHODS)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_parameter_is_covered(method):
    """Each declared parameter is in USED or BAD (or is a tuning parameter); nothing stale."""
    declared = accepted_params(method) - {"self"}
    covered = set(USED[method]) | {p for p, _, _ in BAD[method]} | (declared & TUNING)
    assert declared - covered == set(), f"{method}: parameters with no check"
    assert covered - declared == set(), f"{method}: checks of parameters it does not take"


# --- running a fit --------------------------------------------------------------------------------
@pytest.fixture
def probe(monkeypatch) -> Iterator[Probe]:
    """Record the seeds given to torch and the gradient norm at each optimizer step.

    The norm is read where the optimizer steps, not from a clipping function: which function
    clips is the Trainer's and accelerate's business (accelerate 1.16 stopped calling
    `torch.nn.utils.clip_grad_norm_`), whether the step sees clipped gradients is ours."""
    p = Probe()
    real_seed = torch.manual_seed
    monkeypatch.setattr(torch, "manual_seed", lambda s: p.manual_seeds.append(s) or real_seed(s))
    handle = register_optimizer_step_pre_hook(lambda opt, *_: p.step_grad_norms.append(step_grad_norm(opt)))
    yield p
    handle.remove()


@pytest.fixture
def resolve(zoo, tmp_path, monkeypatch):
    """Placeholders -> a tiny model, a template file, a price file."""
    template = tmp_path / "template.yaml"
    template.write_text('input: "Review >>> {{ text }}"\n')
    prices = tmp_path / "prices.yaml"
    prices.write_text("models:\n  test-model: {input: 1.0, output: 2.0}\n")
    descriptions = tmp_path / "descriptions.yaml"
    descriptions.write_text("positive: LDESC liked it\n")
    monkeypatch.setenv("CLFBENCH_TEST_PARAMS_KEY", "sk-params-test-123")
    pool = tmp_path / "pool.csv"  # distill's pool file: the texts are in column `review`
    (tmp_path / "a-file.txt").write_text("x")
    pool.write_text("text,review\n" + "".join(f"x,POOLTEXT {w} movie\n" for w in ("good", "bad", "fun", "awful")))

    def _resolve(method: str, params: dict[str, Any], server_url: str | None) -> dict[str, Any]:
        values = {MODEL: zoo(SETUP[method]["arch"]) if "arch" in SETUP[method] else None,
                  TEMPLATE: str(template), SERVER: server_url, "<prices>": str(prices),
                  DESCRIPTIONS: str(descriptions), "<pool>": str(pool), CHECKPOINTS: str(tmp_path / "ckpt"),
                  A_FILE: str(tmp_path / "a-file.txt")}
        sub = lambda v: values.get(v, v) if isinstance(v, str) else v  # noqa: E731
        return {k: {kk: sub(vv) for kk, vv in v.items()} if isinstance(v, dict) else sub(v)
                for k, v in params.items()}

    return _resolve


def _fit(method: str, params: dict[str, Any], resolve, server_url: str | None = None):
    setup = SETUP[method]
    given = {**setup.get("base", {}), **params}
    if "arch" in setup and "model" in accepted_params(method):
        given.setdefault("model", MODEL)
    if TUNING & accepted_params(method):
        given["tune"] = "off"
    m = make_method(method, **resolve(method, given, server_url))
    m.verbose = False
    return m.fit(TRAIN, VALIDATION)


def _runs(method: str) -> list[tuple[dict[str, Any], list[str]]]:
    """The fits that cover USED[method], each with the parameters it checks: one fit with
    every shared value, one per `alone` value."""
    table = USED[method]
    shared = {k: u.value for k, u in table.items() if u.alone is None}
    return [(shared, list(shared))] + [({**u.alone, k: u.value}, [k])
                                       for k, u in table.items() if u.alone is not None]


def _fitted(method: str, params: dict[str, Any], resolve, probe: Probe):
    """The method fitted with `params`; llm-api against a loopback server, requests recorded."""
    for spied in (probe.manual_seeds, probe.step_grad_norms):
        spied.clear()
    if method not in ("llm-api", "llm-dspy", "distill"):
        return _fit(method, params, resolve)
    pytest.importorskip("httpx")  # the `api` extra
    from api_server import ApiServer, dspy_reply, keyword_reply
    from neural_helpers import NEGATIVE, POSITIVE

    if method == "llm-dspy":
        pytest.importorskip("dspy")  # the `dspy` extra
        words = lambda q, ws: any(w in q.split() for w in ws)  # noqa: E731
        reply = dspy_reply(lambda q: "positive" if words(q, POSITIVE) else "negative" if words(q, NEGATIVE)
                           else "neutral")
    else:
        reply = keyword_reply({"great", "good", "wonderful", "fun"})
    with ApiServer(reply) as server:
        m = _fit(method, params, resolve, server.url)
        m.classify(TEST)
        probe.requests = list(server.requests)
    return m


@pytest.mark.parametrize("method", sorted(METHODS))
def test_given_parameters_are_used(method, resolve, probe):
    unused = []
    for params, checked in _runs(method):
        m = _fitted(method, params, resolve, probe)
        unused += [k for k in checked if not USED[method][k].seen(m, probe)]
    assert unused == [], f"{method}: given but not used: {sorted(set(unused))}"


@pytest.mark.parametrize("method, param, value, extra",
                         [(m, p, v, e) for m in sorted(BAD) for p, v, e in BAD[m]])
def test_bad_values_are_refused(method, param, value, extra, resolve):
    """Refused with a ClfbenchError naming the parameter or the value: when built, or at fit."""
    with pytest.raises(ClfbenchError) as e:
        _fit(method, {**extra, param: value}, resolve, "http://127.0.0.1:9")
    assert param in str(e.value) or repr(value) in str(e.value)

