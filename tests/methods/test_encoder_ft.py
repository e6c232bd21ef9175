"""encoder-ft / encoder-lora and the shared training loop, on tiny random encoders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from neural_helpers import LABELS, toy_data

from clfbench.data.texts import Texts
from clfbench.errors import ClfbenchError
from clfbench.methods.base import Classifier, make_method
from clfbench.methods.encoder_ft import ENCODER_LORA_TARGETS
from clfbench.methods.torch_training import (
    balanced_class_weights,
    balanced_sampler,
    encode,
    make_sampler,
    train_loop,
)
from clfbench.methods.training_settings import TrainingSettings

ENCODERS = ["bert", "deberta-v2", "modernbert", "distilbert"]


def fitted(method: str, model: str, train, validation, **params):
    m = make_method(method, model=model, **params)
    m.verbose = False
    return m.fit(train, validation)


@pytest.mark.parametrize("arch", ENCODERS)
@pytest.mark.parametrize("method", ["encoder-ft", "encoder-lora"])
def test_fit_predict_save_reload(zoo, tmp_path, method, arch):
    train, val, test = toy_data(60, 0), toy_data(30, 1), toy_data(20, 2)
    m = fitted(method, zoo(arch), train, val, epochs=1, batch_size=16)
    proba = m.predict_proba(test)
    assert proba.shape == (20, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    pred, proba2 = m.classify(test)
    assert np.array_equal(pred, proba.argmax(1)) and np.array_equal(proba, proba2)
    assert m.model_.config.id2label == dict(enumerate(LABELS))
    assert len(m.fit_info_["history"]) == 1 and m.fit_info_["best_epoch"] == 1
    total, trainable = m.n_parameters()
    if method == "encoder-ft":
        assert total == trainable == sum(p.numel() for p in m.model_.parameters())
    else:
        lora = m.fit_info_["lora"]
        assert lora["target_modules"] == ENCODER_LORA_TARGETS[arch]
        assert 0 < trainable < total
        assert total == lora["lora_parameters"] + sum(p.numel() for p in m.model_.parameters())
        assert not any("lora_" in n for n, _ in m.model_.named_parameters())  # merged
    m.save(tmp_path / "saved")
    meta = json.loads((tmp_path / "saved" / "method.json").read_text())
    assert meta["method"] == method and meta["labels"] == LABELS
    again = Classifier.load(tmp_path / "saved")
    assert type(again) is type(m) and again.labels == LABELS
    assert np.array_equal(again.predict_proba(test), proba)
    assert again.n_parameters() == (total, trainable)


def test_learns_and_keeps_the_best_epoch(zoo):
    train, val = toy_data(150, 0), toy_data(60, 1)
    m = fitted("encoder-ft", zoo("modernbert"), train, val, epochs=5, lr=3e-3, batch_size=16,
               tune="off")
    history = m.fit_info_["history"]
    f1s = [h["val_macro_f1"] for h in history]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5]
    assert m.fit_info_["best_epoch"] == 1 + int(np.argmax(f1s))  # first of ties
    assert max(f1s) > 0.8  # a learnable toy task: the loop really trains
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    from sklearn.metrics import f1_score

    again = f1_score(val.labels, m.predict(val), average="macro", labels=range(3))
    assert again == pytest.approx(max(f1s), abs=1e-9)  # the kept weights are that epoch's


def _scripted_predict(model, by_text: dict[str, int], script: list[str], snapshots: list):
    """A fake `predict` for train_loop: logits of a chosen quality per call, in order
    ("perfect", "mid": class 2 mistaken for 0, "const": always class 0), and a snapshot of the
    trainable weights at each validation call."""
    calls = iter(script)

    def predict(X: Texts) -> np.ndarray:
        kind = next(calls)
        if kind.startswith("val:"):
            snapshots.append({n: p.detach().clone() for n, p in model.named_parameters()
                              if p.requires_grad})
            kind = kind[4:]
        gold = np.array([by_text[t] for t in X.texts])
        pred = {"perfect": gold, "mid": np.where(gold == 2, 0, gold),
                "const": np.zeros_like(gold)}[kind]
        return np.eye(3)[pred]

    return predict


@pytest.mark.parametrize(
    "selection, script, expected",
    [
        ("f1", ["val:mid", "val:perfect", "val:const"], 2),
        ("last", ["val:perfect", "val:mid", "val:const"], 3),
        # gap: epoch 2 has the best F1_val but a huge train/val gap, so epoch 1 wins.
        ("gap", ["val:mid", "mid", "val:perfect", "const", "val:const", "const"], 1),
    ],
)
def test_train_loop_restores_the_selected_epoch(zoo, selection, script, expected):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    train, val = toy_data(48, 0), toy_data(24, 1)
    by_text = {t: int(y) for d in (train, val) for t, y in zip(d.texts, d.labels)}
    model = AutoModelForSequenceClassification.from_pretrained(zoo("bert"), num_labels=3)
    tokenizer = AutoTokenizer.from_pretrained(zoo("bert"))
    snapshots: list = []
    record = train_loop(
        model, tokenizer, train, val, _scripted_predict(model, by_text, script, snapshots),
        TrainingSettings(lr=1e-2, batch_size=16, epochs=3, seed=0, max_length=32, warmup_ratio=0.1,
                         weight_decay=0.01, max_grad_norm=1.0, class_weight=None, sampling=None,
                         selection=selection),
        device=torch.device("cpu"), verbose=False,
    )
    assert record["best_epoch"] == expected
    kept = snapshots[expected - 1]
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), kept[n]), n
    # the epochs really differ, so the check above is not vacuous
    assert any(not torch.equal(snapshots[0][n], snapshots[2][n]) for n in kept)
    if selection == "gap":
        h = record["history"][1]
        assert h["val_macro_f1"] == 1.0
        assert h["selection_score"] == pytest.approx(1.0 - abs(1.0 - h["train_macro_f1"]))


def test_pairs_are_encoded_as_tokenizer_pairs(zoo):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    train, val = toy_data(60, 0, pair=True), toy_data(30, 1, pair=True)
    tok = AutoTokenizer.from_pretrained(zoo("bert"))
    model = AutoModelForSequenceClassification.from_pretrained(zoo("bert"), num_labels=3)
    feats = encode(model, tok, train, 128)
    sep = tok.sep_token_id
    assert all(f["input_ids"].count(sep) == 2 for f in feats)
    m = fitted("encoder-ft", zoo("bert"), train, val, epochs=1)
    with_pair = m.predict_proba(Texts(val.texts, val.pairs))
    without = m.predict_proba(Texts(val.texts))
    assert not np.allclose(with_pair, without)


def test_balanced_class_weights_and_sampler():
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    np.testing.assert_allclose(balanced_class_weights(labels, 4), [10 / 18, 10 / 9, 10 / 3, 0.0])
    big = np.array([0] * 900 + [1] * 90 + [2] * 10)
    sampler = balanced_sampler(big, torch.Generator().manual_seed(0))
    drawn = big[list(sampler)]
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    assert len(drawn) == len(big)
    np.testing.assert_allclose(shares, [1 / 3] * 3, atol=0.06)


def test_class_weight_and_sampling_change_training(zoo):
    from torch.utils.data import RandomSampler, WeightedRandomSampler

    train = toy_data(90, 0, proportions=(6, 2, 1))
    val = toy_data(30, 1)
    losses = {}
    for opts in ({}, {"class_weight": "balanced"}, {"sampling": "balanced"}):
        m = fitted("encoder-ft", zoo("bert"), train, val, epochs=1, lr=1e-3, **opts)
        losses[tuple(opts)] = m.fit_info_["history"][0]["train_loss"]
        key = next(iter(opts), None)
        assert (m.fit_info_[key] == "balanced") if key else m.fit_info_["class_weight"] is None
    assert len(set(losses.values())) == 3
    g = torch.Generator().manual_seed(0)
    assert isinstance(make_sampler(train.labels, "balanced", g), WeightedRandomSampler)
    assert isinstance(make_sampler(train.labels, None, g), RandomSampler)


@pytest.mark.parametrize("bad", [{"class_weight": "auto"}, {"sampling": "over"}, {"selection": "loss"}])
def test_bad_options_are_clfbench_errors(zoo, bad):
    with pytest.raises(ClfbenchError, match=next(iter(bad))):
        fitted("encoder-ft", zoo("bert"), toy_data(30, 0), toy_data(15, 1), **bad)


@pytest.mark.parametrize("bad", [{"backend": "tf"}, {"quantize": True}, {"eval_dtype": "int4"},
                                 {"recheck": "often"}, {"eval_batch_size": 0}])
def test_bad_inference_settings_fail_before_training(bad):
    with pytest.raises(ClfbenchError, match=next(iter(bad)).replace("eval_", "")):
        make_method("encoder-lora", **bad)


def test_bf16_with_recheck_reports_how_it_predicted(zoo):
    train, val, test = toy_data(60, 0), toy_data(40, 1), toy_data(20, 2)
    m = fitted("encoder-ft", zoo("bert"), train, val, epochs=1, batch_size=16, eval_dtype="bf16",
               recheck="auto")
    info = m.inference_info()
    assert info["dtype"] == "bfloat16" and info["recheck"]["calibrated"]
    assert info["agreement_n"] == len(val) and info["recheck"]["margin"] >= 0
    exact = fitted("encoder-ft", zoo("bert"), train, val, epochs=1, batch_size=16)
    assert (m.predict(test) == exact.predict(test)).mean() >= 0.9


def test_truncation_is_recorded(zoo):
    from transformers import AutoTokenizer

    train, val, test = toy_data(60, 0, long_every=3), toy_data(30, 1), toy_data(30, 2, long_every=5)
    m = fitted("encoder-ft", zoo("distilbert"), train, val, epochs=1, max_length=24)
    tok = AutoTokenizer.from_pretrained(zoo("distilbert"))
    expected = sum(len(ids) > 24 for ids in tok(train.texts)["input_ids"])
    trunc = m.fit_info_["truncation"]
    assert trunc["strategy"] == "longest_first" and trunc["max_length"] == 24
    assert trunc["train_truncated"] == expected == 20 and trunc["train_total"] == 60
    assert trunc["validation_truncated"] == 0
    m.predict_proba(test)
    m.predict_proba(test.subset([0]))  # a later, smaller call does not replace the record
    info = m.inference_info()
    assert info["test_truncated"] == 6 and info["test_total"] == 30


def test_no_validation_keeps_the_last_epoch(zoo):
    m = fitted("encoder-ft", zoo("bert"), toy_data(40, 0), None, epochs=2)
    assert m.fit_info_["best_epoch"] == 2
    assert "val_macro_f1" not in m.fit_info_["history"][0]


def test_missing_model_is_a_clfbench_error(tmp_path):
    with pytest.raises(ClfbenchError, match="not found: not a local folder, not cached"):
        fitted("encoder-ft", "no-such-org/no-such-model", toy_data(30, 0), None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ClfbenchError, match="config.json"):
        fitted("encoder-lora", str(tmp_path / "empty"), toy_data(30, 0), None)


def test_cli_run_then_predict(zoo, datasets_dir, tmp_path, capsys):
    from clfbench.cli import main

    out = tmp_path / "runs"
    rc = main(["run", "--task", "sst2", "--data-dir", str(datasets_dir / "sst2"), "--method",
               "encoder-ft", "--model", zoo("bert"), "--max-train", "64", "--max-eval", "32",
               "--epochs", "1", "--out", str(out), "--save-model", "-q"])
    assert rc == 0
    (run,) = [p.parent for p in out.glob("*/model")]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["method"] == "encoder-ft" and 0.0 <= metrics["accuracy"] <= 1.0
    assert metrics["fit_info"]["truncation"]["train_total"] == 64
    assert metrics["parameters"] == metrics["trainable_parameters"] > 0
    capsys.readouterr()
    assert main(["predict", "--run", str(run), "--text", "a great film", "--text", "awful"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["text"] for r in rows] == ["a great film", "awful"]
    for r in rows:
        assert r["label"] in ("negative", "positive")
        assert sum(r["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)


def test_saved_folder_is_a_plain_transformers_model(zoo, tmp_path):
    """LoRA is merged before saving: the folder loads without peft, with the label names."""
    from transformers import AutoModelForSequenceClassification

    m = fitted("encoder-lora", zoo("bert"), toy_data(40, 0), toy_data(20, 1), epochs=1)
    m.save(tmp_path / "s")
    assert not list(Path(tmp_path / "s").rglob("adapter_config.json"))
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path / "s" / "model")
    assert plain.config.id2label == dict(enumerate(LABELS))


@pytest.mark.parametrize("method", ["encoder-ft", "encoder-lora"])
def test_onnx_backend_predicts_like_torch_and_says_so(zoo, method):
    pytest.importorskip("onnxruntime")
    train, val, test = toy_data(60, 0), toy_data(30, 1), toy_data(20, 2)
    torch_m = fitted(method, zoo("bert"), train, val, epochs=1, batch_size=16)
    onnx_m = fitted(method, zoo("bert"), train, val, epochs=1, batch_size=16, backend="onnx",
                    eval_batch_size="auto")
    np.testing.assert_allclose(onnx_m.predict_proba(test), torch_m.predict_proba(test), atol=1e-4)
    info = onnx_m.inference_info()
    assert info["backend"] == "onnx" and info["agreement"] == 1.0 and info["agreement_n"] > 0
    assert isinstance(info["batch_size"], int) and info["batch_size_search"]
    assert torch_m.inference_info()["backend"] == "torch"


def test_training_announces_its_size_and_an_estimated_time(zoo, capsys):
    m = make_method("encoder-ft", model=zoo("bert"), epochs=2, batch_size=16, tune="off")
    m.verbose = True
    m.fit(toy_data(80, 0), toy_data(30, 1))
    err = capsys.readouterr().err
    assert "training on 80 examples: 2 epochs x 5 steps of 16 = 10 steps, about" in err
    assert "epoch 1/2: train loss" in err and "validation macro-F1" in err  # readable epoch lines
    # stderr is not a terminal here: the epoch bar is whole lines, not tqdm's carriage returns
    assert "\repoch" not in err and "\nepoch 2/2: 0/5\n" in err and "\nepoch 2/2: 5/5 done in" in err
