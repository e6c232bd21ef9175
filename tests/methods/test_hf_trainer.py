"""Training on transformers.Trainer (methods/hf_trainer.py): what clfbench adds to it, seen
through the methods and `train_loop` on tiny dropout-free models."""

from __future__ import annotations

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

NO_DROPOUT = {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "classifier_dropout": 0.0}


def bert(zoo, seed: int = 0):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = zoo("bert")  # built on first use: before seeding the head
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3, **NO_DROPOUT)
    return model, AutoTokenizer.from_pretrained(path)


def run(model, tokenizer, train, validation=None, **over):
    """`train_loop` with a plain recipe; `over` overrides any setting."""
    settings = dict(lr=1e-3, batch_size=16, epochs=1, max_length=32, warmup_ratio=0.0,
                    weight_decay=0.0, max_grad_norm=1.0, class_weight=None, sampling=None,
                    selection="f1", seed=0, device=torch.device("cpu"), verbose=False)
    settings.update(over)
    return train_loop(model, tokenizer, train, validation, lambda X: np.zeros((len(X), 3)), **settings)


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
