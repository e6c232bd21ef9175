"""Training on transformers.Trainer (methods/hf_trainer.py): what clfbench adds to it, seen
through the methods and `train_loop` on tiny dropout-free models."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from neural_helpers import LABELS, toy_data
from sklearn.metrics import f1_score
from torch.optim.optimizer import register_optimizer_step_pre_hook

from clfbench.evaluation.measure import limit_threads
from clfbench.methods import hf_trainer
from clfbench.methods.base import make_method
from clfbench.methods.torch_training import (
    balanced_class_weights,
    encode,
    make_collator,
    train_loop,
)
from clfbench.methods.training_settings import TrainingSettings

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "classifier_dropout": 0.0}


def bert(zoo, seed: int = 0):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = zoo("bert")  # built on first use: before seeding the head
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3, **NO_DROPOUT)
    return model, AutoTokenizer.from_pretrained(path)


PLAIN = TrainingSettings(lr=1e-3, batch_size=16, epochs=1, seed=0, max_length=32, warmup_ratio=0.0,
                         weight_decay=0.0, max_grad_norm=1.0, class_weight=None, sampling=None,
                         selection="f1")


def run(model, tokenizer, train, validation=None, **over):
    """`train_loop` with a plain recipe; `over` overrides any setting."""
    return train_loop(model, tokenizer, train, validation, lambda X: np.zeros((len(X), 3)),
                      dataclasses.replace(PLAIN, **over), device=torch.device("cpu"), verbose=False)


def test_class_weights_weight_the_loss(zoo):
    """One full-batch step: the recorded loss is the (weighted) cross-entropy of the initial
    model on the batch, and the weighted and unweighted losses differ on imbalanced data."""
    train = toy_data(24, 0, proportions=(6, 2, 1))
    model, tok = bert(zoo)
    batch = make_collator(tok)(encode(model, tok, train, 32))
    labels = batch.pop("labels")
    with torch.no_grad():
        logits = model(**batch).logits
    weight = torch.as_tensor(balanced_class_weights(train.labels, 3), dtype=torch.float32)
    expected = {None: float(F.cross_entropy(logits, labels)),
                "balanced": float(F.cross_entropy(logits, labels, weight=weight))}
    got = {}
    for class_weight in expected:
        model, tok = bert(zoo)
        record = run(model, tok, train, batch_size=len(train), class_weight=class_weight)
        got[class_weight] = record["history"][0]["train_loss"]
    assert got == pytest.approx(expected, abs=1e-5)
    assert abs(got[None] - got["balanced"]) > 1e-3


def test_balanced_sampling_draws_classes_evenly_and_threads_stay_bounded(zoo, monkeypatch):
    """The Trainer's batches come from our sampler (labels seen by the loss), inside
    `measure.limit_threads`, which the Trainer leaves alone."""
    seen: dict[str | None, list[int]] = {}
    threads: list[int] = []
    real = hf_trainer.ClfbenchTrainer.compute_loss

    def spy(self, model, inputs, *a, **k):
        seen[key].extend(inputs["labels"].tolist())
        threads.append(torch.get_num_threads())
        return real(self, model, inputs, *a, **k)

    monkeypatch.setattr(hf_trainer.ClfbenchTrainer, "compute_loss", spy)
    train = toy_data(180, 0, proportions=(6, 2, 1))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for key in (None, "balanced"):
            seen[key] = []
            model, tok = bert(zoo)
            with limit_threads(1):
                run(model, tok, train, epochs=2, batch_size=90, max_length=16, sampling=key, lr=1e-4)
            assert torch.get_num_threads() == 2  # restored after the block
    finally:
        torch.set_num_threads(before)
    assert set(threads) == {1}
    plain = np.bincount(seen[None], minlength=3) / len(seen[None])
    balanced = np.bincount(seen["balanced"], minlength=3) / len(seen["balanced"])
    assert len(seen["balanced"]) == len(seen[None]) == 2 * len(train)
    np.testing.assert_allclose(plain, [6 / 9, 2 / 9, 1 / 9], atol=1e-9)  # every example once per epoch
    np.testing.assert_allclose(balanced, [1 / 3] * 3, atol=0.08)


def test_grad_accum_of_half_batches_gives_the_full_batch_gradient(zoo):
    """16 examples: one step of 16, or two accumulated half-batches of 8 (same seeded order):
    the gradient the optimizer steps with is the same (read at the step itself, whichever
    function the Trainer clips with)."""
    grads: list[dict[str, torch.Tensor]] = []

    def at_step(optimizer, *_):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        grads.append({str(i): p.grad.detach().clone() for i, p in enumerate(params) if p.grad is not None})

    train = toy_data(16, 0)
    records = []
    handle = register_optimizer_step_pre_hook(at_step)
    try:
        for batch_size, accum in ((16, 1), (8, 2)):
            model, tok = bert(zoo)
            records.append(run(model, tok, train, batch_size=batch_size, grad_accum=accum))
    finally:
        handle.remove()
    assert [r["optimizer"]["total_steps"] for r in records] == [1, 1]
    assert records[1]["trainer"]["gradient_accumulation_steps"] == 2
    full, accumulated = grads[0], grads[-1]
    assert full.keys() == accumulated.keys() and len(full) > 10
    for k in full:
        torch.testing.assert_close(accumulated[k], full[k], rtol=1e-4, atol=1e-6)
    assert max(float(g.abs().max()) for g in full.values()) > 1e-3  # real gradients


def test_grad_checkpointing_trains_identically_and_is_recorded(zoo):
    train = toy_data(48, 0)
    records = []
    for on in (False, True):
        model, tok = bert(zoo)
        records.append(run(model, tok, train, epochs=2, grad_checkpointing=on))
        assert not getattr(model, "is_activation_checkpointing", False)  # off again for prediction
    assert [r["trainer"]["gradient_checkpointing"] for r in records] == [False, True]
    assert [h["train_loss"] for h in records[1]["history"]] == pytest.approx(
        [h["train_loss"] for h in records[0]["history"]], abs=1e-5)


def test_early_stopping_stops_before_the_last_epoch(zoo):
    """A rate too small to change any prediction: validation F1 is flat, so the tuning trial
    stops after 1 + patience epochs of the 6 allowed."""
    m = make_method("encoder-ft", model=zoo("bert"), epochs=6, batch_size=16, lr_grid=[1e-9])
    m.verbose = False
    m.fit(toy_data(48, 0), toy_data(24, 1))
    assert m.fit_info_["epochs_run"] == len(m.fit_info_["history"]) == 3
    (trial,) = m.fit_info_["tuning"]["trials"]
    assert trial["epochs_run"] == 3 and trial["state"] == "COMPLETE"


def test_nothing_is_written_to_the_working_folder(zoo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    m = make_method("encoder-ft", model=zoo("bert"), epochs=1, batch_size=16, tune="off")
    m.verbose = False
    m.fit(toy_data(32, 0), toy_data(12, 1))
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def sft_fitted(zoo):
    """llm-sft, one full-batch step without dropout, then 3 epochs kept by validation."""
    prompt = {"instruction": "classify the sentiment", "verbalizers": {n: n for n in LABELS}}
    train, val = toy_data(12, 0), toy_data(12, 1)
    one = make_method("llm-sft", model=zoo("llama"), prompt=prompt, epochs=1, batch_size=12, lr=1e-3,
                      lora_dropout=0.0, tune="off", max_length=64)
    one.verbose = False
    one.fit(train, None)
    best = make_method("llm-sft", model=zoo("llama"), prompt=prompt, epochs=3, batch_size=4, lr=5e-3,
                       tune="off", max_length=64)
    best.verbose = False
    best.fit(train, val)
    return one, best, train, val


def test_llm_sft_trains_on_the_answer_tokens_only(sft_fitted):
    """The first step's loss is the mean over examples of the cross-entropy of the answer
    tokens + eos under the initial model (LoRA starts as a no-op), not of the whole text."""
    m, _, train, _ = sft_fitted
    data = [m.training_example(t, None, int(y)) for t, y in zip(train.texts, train.labels)]
    batch = m.collate(data)
    with torch.no_grad(), m.lm_.disable_adapter():
        logits = m.lm_(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=batch["position_ids"]).logits.float()
    target = batch["labels"][:, 1:]
    tok_loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), target.reshape(-1),
                               ignore_index=-100, reduction="none").view(target.shape)
    answer = target != -100
    per_example = (tok_loss * answer).sum(1) / answer.sum(1)
    recorded = m.fit_info_["history"][0]["train_loss"]
    assert recorded == pytest.approx(float(per_example.mean()), abs=1e-4)
    # the whole-text loss is another number, farther from it than the check's tolerance (a
    # random tiny model predicts every token at about log(vocab), so the gap is small: 1.9e-3
    # in one full-suite run)
    text = (batch["input_ids"][:, 1:] != m.tokenizer_.pad_token_id) & (batch["attention_mask"][:, 1:] == 1)
    ids = batch["input_ids"][:, 1:]
    whole = F.cross_entropy(logits[:, :-1][text], ids[text])
    assert abs(float(whole) - recorded) > 5e-4
    assert answer.sum() < text.sum()


def test_llm_sft_keeps_the_best_epoch(sft_fitted):
    _, m, _, val = sft_fitted
    f1s = [h["validation_macro_f1"] for h in m.fit_info_["history"]]
    assert len(f1s) == 3 and m.fit_info_["best_epoch"] == 1 + int(np.argmax(f1s))
    again = f1_score(val.labels, m.predict(val), average="macro", labels=range(3), zero_division=0)
    assert again == pytest.approx(max(f1s), abs=1e-9)
    assert m.fit_info_["trainer"]["engine"] == "transformers.Trainer"


def test_one_process_trains_on_the_first_visible_gpu(monkeypatch):
    """`cuda:N` (N > 0) cannot be honoured by one Trainer process: a clear error before any
    work; under torchrun (WORLD_SIZE > 1) each process's own GPU is the Trainer's choice."""
    from clfbench.errors import ClfbenchError
    from clfbench.methods import torch_training

    monkeypatch.setattr(torch_training, "pick_device", lambda requested: torch.device(requested))
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ClfbenchError, match="CUDA_VISIBLE_DEVICES=1"):
        torch_training.training_device("cuda:1")
    assert torch_training.training_device("cuda:0") == torch.device("cuda:0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert torch_training.training_device("cuda:1") == torch.device("cuda:1")


def test_bf16_auto_is_off_on_cpu_and_can_be_forced():
    from clfbench.methods.torch_training import resolve_bf16

    cpu = torch.device("cpu")
    assert resolve_bf16("x", "auto", cpu) is False
    assert resolve_bf16("x", True, cpu) is True and resolve_bf16("x", False, cpu) is False


# --- TrainingSettings: one object carries every setting from the estimator to the Trainer --------
#: A value other than the default for every setting an estimator parameter gives (bf16: forced
#: on, which a CPU accepts; the fit stops before any bf16 step).
SEQ_SETTINGS = dict(lr=3e-4, batch_size=7, epochs=2, seed=5, max_length=40, warmup_ratio=0.25,
                    weight_decay=0.03, max_grad_norm=0.7, class_weight="balanced", sampling="balanced",
                    selection="gap", grad_accum=3, grad_checkpointing=True, bf16=True, checkpoint_steps=4)
#: The settings no estimator parameter gives (each method's fixed recipe).
RECIPE_FIELDS = {"decay_all", "warmup_rounding"}


class Stop(Exception):
    """Raised where the Trainer would be built: the test has what it needs, nothing trains."""


def trainer_built_by(m, train, validation, monkeypatch):
    """(the settings `hf_trainer.train` got, the Trainer's keyword arguments) of `m.fit`."""
    seen = {}
    real_train = hf_trainer.train

    def train_spy(*args, **kwargs):
        seen["settings"] = args[5]
        return real_train(*args, **kwargs)

    def init_spy(self, *args, **kwargs):
        seen["trainer"] = kwargs
        raise Stop

    monkeypatch.setattr(hf_trainer, "train", train_spy)
    monkeypatch.setattr(hf_trainer.ClfbenchTrainer, "__init__", init_spy)
    m.verbose = False
    with pytest.raises(Stop):
        m.fit(train, validation)
    return seen["settings"], seen["trainer"]


def assert_trainer_runs_with(trainer, expected: dict, warmup_of_10: int, decay_all: bool) -> None:
    """The Trainer's arguments and our extensions hold the estimator's values."""
    args = trainer["args"]
    assert isinstance(args, hf_trainer.OneDeviceArgs)
    assert (args.learning_rate, args.per_device_train_batch_size, args.num_train_epochs, args.seed,
            args.weight_decay, args.max_grad_norm, args.gradient_accumulation_steps, args.bf16) == (
        expected["lr"], expected["batch_size"], expected["epochs"], expected["seed"],
        expected["weight_decay"], expected["max_grad_norm"], expected["grad_accum"], expected["bf16"])
    for key, value in hf_trainer.checkpointing_args(expected["grad_checkpointing"]).items():
        assert getattr(args, key) == value, key
    assert args.save_strategy == "steps" and args.save_steps == expected["checkpoint_steps"]
    assert trainer["warmup"](10) == warmup_of_10 and trainer["decay_all"] is decay_all


def test_training_settings_carry_every_sequence_classifier_parameter_to_the_trainer(zoo, tmp_path,
                                                                                     monkeypatch):
    assert {f.name for f in dataclasses.fields(TrainingSettings)} == set(SEQ_SETTINGS) | RECIPE_FIELDS
    m = make_method("encoder-ft", model=zoo("bert"), tune="off", checkpoint_dir=str(tmp_path),
                    **SEQ_SETTINGS)
    settings, trainer = trainer_built_by(m, toy_data(30, 0), toy_data(12, 1), monkeypatch)
    assert settings == TrainingSettings(**SEQ_SETTINGS, decay_all=False, warmup_rounding="up")
    assert_trainer_runs_with(trainer, SEQ_SETTINGS, warmup_of_10=3, decay_all=False)  # ceil(2.5)
    assert settings.keep == "best" and dataclasses.replace(settings, selection="last").keep == "last"


def test_training_settings_carry_llm_sft_parameters_and_its_fixed_recipe(zoo, tmp_path, monkeypatch):
    from clfbench.methods.llm_sft import SFT_RECIPE

    own = {k: SEQ_SETTINGS[k] for k in ("lr", "batch_size", "epochs", "seed", "max_length",
                                        "warmup_ratio", "weight_decay", "class_weight", "grad_accum",
                                        "grad_checkpointing", "bf16", "checkpoint_steps")}
    prompt = {"instruction": "classify the sentiment", "verbalizers": {n: n for n in LABELS}}
    m = make_method("llm-sft", model=zoo("llama"), prompt=prompt, tune="off",
                    checkpoint_dir=str(tmp_path), **own)
    settings, trainer = trainer_built_by(m, toy_data(12, 0), toy_data(6, 1), monkeypatch)
    expected = {**own, "max_grad_norm": 1.0, "selection": "f1", "sampling": None}
    assert settings == TrainingSettings(**expected, decay_all=True, warmup_rounding="down")
    assert set(expected) | RECIPE_FIELDS == {f.name for f in dataclasses.fields(TrainingSettings)}
    assert SFT_RECIPE == {"max_grad_norm": 1.0, "decay_all": True, "warmup_rounding": "down",
                          "selection": "f1", "sampling": None}
    assert_trainer_runs_with(trainer, expected, warmup_of_10=2, decay_all=True)  # int(2.5)


def test_training_settings_from_estimator_takes_overrides_and_names_what_is_missing():
    class Estimator:
        lr, bf16 = None, "auto"  # unresolved: from_estimator's own lr and bf16 win
        batch_size, epochs, seed, max_length, warmup_ratio, weight_decay = 8, 2, 1, 16, 0.1, 0.0
        max_grad_norm, class_weight, sampling, selection = 1.0, None, None, "f1"

    s = TrainingSettings.from_estimator(Estimator(), lr=0.1, bf16=False, epochs=5)
    assert (s.lr, s.bf16, s.epochs, s.grad_accum, s.checkpoint_steps) == (0.1, False, 5, 1, None)
    del Estimator.selection
    with pytest.raises(TypeError, match="no selection"):
        TrainingSettings.from_estimator(Estimator(), lr=0.1, bf16=False)
    with pytest.raises(TypeError, match="no field"):
        TrainingSettings.from_estimator(Estimator(), lr=0.1, bf16=False, selection="f1", lr_grid=[1])
    with pytest.raises(ValueError, match="warmup_rounding"):
        dataclasses.replace(s, warmup_rounding="nearest")
