"""llm-sft: answer-only loss mask, training, save/reload, prediction through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiny_models

from clfbench.cli import main
from clfbench.data.texts import LabeledTexts, Texts
from clfbench.methods.base import Classifier, make_method

# peft's read of a deprecated transformers name is silenced (torch_training.peft_quietly), and
# the LM's cache goes by its new name (llm.cache_argument): no FutureWarning reaches a user.
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")

WORDS = {0: ["bad", "awful", "terrible", "boring"], 1: ["good", "great", "wonderful", "fun"]}


def toy(n: int, seed: int) -> LabeledTexts:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    texts = [f"the movie was {rng.choice(WORDS[y])} and {rng.choice(WORDS[y])}" for y in labels]
    return LabeledTexts(texts, None, labels, ["negative", "positive"])


PROMPT = {"instruction": "classify the sentiment", "verbalizers": {"negative": "negative", "positive": "positive"},
          "text_name": "review"}


@pytest.fixture(scope="module")
def llama(tmp_path_factory):
    return str(tiny_models.build_decoder(tmp_path_factory.mktemp("sft") / "llama", "llama"))


def test_loss_mask_covers_only_answer_and_eos(llama):
    m = make_method("llm-sft", model=llama, prompt=PROMPT, epochs=1, batch_size=4)
    m.fit(toy(8, 0))
    eos, pad = m.tokenizer_.eos_token_id, m.tokenizer_.pad_token_id
    ids, labels = m.training_example("the movie was good", None, 1)
    answer = m.encoder_.answer_ids[1]
    n_prompt = len(ids) - len(answer) - 1
    assert labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:] == answer + [eos] == ids[n_prompt:]
    short = m.training_example("good", None, 0)
    batch = m.collate([(ids, labels), short])
    pad_len = len(ids) - len(short[0])
    assert batch["labels"][1, :pad_len].tolist() == [-100] * pad_len
    assert batch["attention_mask"][1, :pad_len].sum() == 0 and batch["input_ids"][1, 0] == pad
    # pad == eos: the answer's eos is still a target (masks are positional, not by token id).
    m.tokenizer_.pad_token = m.tokenizer_.eos_token
    batch = m.collate([(ids, labels), short])
    assert batch["labels"][1, -1] == eos and batch["labels"][1, 0] == -100


def test_trains_saves_and_reloads_identical_predictions(llama, tmp_path):
    train, val = toy(48, 1), toy(16, 2)
    m = make_method("llm-sft", model=llama, prompt=PROMPT, epochs=3, lr=5e-3, batch_size=8,
                    class_weight="balanced", max_length=128, tune="off")
    m.fit(train, val)
    hist = m.fit_info_["history"]
    assert len(hist) == 3 and hist[-1]["train_loss"] < hist[0]["train_loss"]
    best = max(hist, key=lambda r: r["validation_macro_f1"])
    assert m.fit_info_["best_epoch"] == best["epoch"]
    total, trainable = m.n_parameters()
    assert 0 < trainable < total
    X = Texts(val.texts)
    before = m.predict_proba(X)
    np.testing.assert_allclose(before.sum(1), 1.0, atol=1e-6)
    m.save(tmp_path / "saved")
    assert (tmp_path / "saved" / "adapter" / "adapter_config.json").is_file()
    again = Classifier.load(tmp_path / "saved")
    np.testing.assert_allclose(again.predict_proba(X), before, atol=1e-6)
    assert again.n_parameters()[1] == trainable
    gen = make_method("llm-sft", model=llama, prompt=PROMPT, decision="generate")
    gen.labels, gen.is_pair_, gen.shot_examples_ = m.labels, False, []
    gen.lm_, gen.tokenizer_ = m.lm_, m.tokenizer_
    gen._build()
    pred, proba = gen.classify(X)
    assert proba is None and pred.shape == (len(X),) and pred.min() >= -1


def test_cli_run_and_predict(llama, datasets_dir, tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["run", "--task", "sst2", "--data-dir", str(datasets_dir / "sst2"), "--method", "llm-sft",
            "--model", llama, "--epochs", "1", "--max-train", "32", "--max-eval", "8", "--out", str(out),
            "-q", "--latency-examples", "2", "--save-model", "--param", "max_length=96"]
    assert main(argv) == 0
    (folder,) = [p.parent for p in out.glob("*/metrics.json")]
    m = json.loads((folder / "metrics.json").read_text())
    assert m["fit_info"]["best_epoch"] == 1 and m["trainable_parameters"] > 0 and m["ece"] is not None
    assert m["fit_info"]["prompt"]["verbalizers"]["positive"] == "positive"
    preds = [json.loads(line) for line in (folder / "predictions.jsonl").open()]
    capsys.readouterr()
    assert main(["predict", "--run", str(folder), "--text", preds[0]["text"]]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert row["label"] == preds[0]["pred"]
    assert row["probabilities"]["positive"] == pytest.approx(preds[0]["probabilities"]["positive"], abs=1e-4)


@pytest.mark.parametrize("method", ["llm-prompt", "llm-sft"])
def test_saved_local_llm_reloads_without_its_descriptions_file(zoo, tmp_path, method):
    """`saved_params` folds the file's descriptions into `prompt`: the same scores after the
    file is gone (llm-sft inherits it from llm-prompt)."""
    from neural_helpers import LABELS, toy_data

    descriptions = tmp_path / "d.yaml"
    descriptions.write_text("positive: FILEDESC liked it\n")
    extra = {"epochs": 1, "tune": "off"} if method == "llm-sft" else {}
    m = make_method(method, model=zoo("llama"), prompt={"verbalizers": {n: n for n in LABELS}},
                    label_descriptions=str(descriptions), descriptions="on", max_length=96, **extra)
    m.verbose = False
    train, test = toy_data(12, 0), toy_data(4, 1)
    m.fit(train, None)
    assert "FILEDESC" in m.fit_info()["prompt"]["rendered_example"]
    m.save(tmp_path / "model")
    descriptions.unlink()
    loaded = Classifier.load(tmp_path / "model")
    assert np.allclose(loaded.predict_proba(test), m.predict_proba(test))
