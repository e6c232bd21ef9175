"""decoder-head: a decoder LLM + classification head, LoRA-trained, on tiny random decoders."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from neural_helpers import LABELS, toy_data

from clfbench.data.texts import Texts
from clfbench.engines.inference import predict_logits
from clfbench.errors import ClfbenchError
from clfbench.methods.base import Classifier, make_method
from clfbench.methods.decoder_head import DecoderHead
from clfbench.methods.torch_training import apply_lora

# peft's read of a deprecated transformers name is silenced (torch_training.peft_quietly), and
# the LM's cache goes by its new name (llm.cache_argument): no FutureWarning reaches a user.
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")

DECODERS = ["qwen2", "llama", "gemma2"]


def fitted(model: str, train, validation, **params) -> DecoderHead:
    m = make_method("decoder-head", model=model, **params)
    m.verbose = False
    return m.fit(train, validation)


@pytest.mark.parametrize("arch", DECODERS)
def test_fit_predict_save_reload_and_left_padding(zoo, tmp_path, arch):
    train, val = toy_data(60, 0), toy_data(30, 1)
    m = fitted(zoo(arch), train, val, epochs=2, batch_size=16)
    # The recipe: left padding, pad id in the config, LoRA r16/a32/0.05 on q/k/v/o, score saved.
    assert m.tokenizer_.padding_side == "left"
    assert m.model_.config.pad_token_id == m.tokenizer_.pad_token_id is not None
    lora = m.fit_info_["lora"]
    assert (lora["r"], lora["alpha"], lora["dropout"]) == (16, 32, 0.05)
    assert lora["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert lora["modules_to_save"] == ["score"]
    total, trainable = m.n_parameters()
    assert m.fit_info_["parameters"]["trainable_share"] == trainable / total < 0.5
    assert len(m.fit_info_["history"]) == 2

    # Texts of very different lengths: one left-padded batch == one text at a time.
    lengths = [1, 3, 40, 7, 90, 2]
    texts = Texts([" ".join(["good film"] * k) for k in lengths])
    batched = predict_logits(m.model_, m.tokenizer_, texts, 8, 256, "cpu")
    single = np.concatenate([predict_logits(m.model_, m.tokenizer_, texts.subset([i]), 1, 256, "cpu")
                             for i in range(len(texts))])
    np.testing.assert_allclose(batched, single, atol=1e-4, rtol=1e-4)
    assert not np.allclose(single[0], single[4], atol=1e-3)  # the rows really differ

    test = toy_data(20, 2)
    proba = m.predict_proba(test)
    assert proba.shape == (20, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    m.save(tmp_path / "saved")
    again = Classifier.load(tmp_path / "saved")
    assert isinstance(again, DecoderHead) and again.labels == LABELS
    assert again.tokenizer_.padding_side == "left"
    assert np.array_equal(again.predict_proba(test), proba)
    assert again.n_parameters() == (total, trainable)


def test_pairs_and_selection(zoo):
    train, val = toy_data(60, 0, pair=True), toy_data(30, 1, pair=True)
    m = fitted(zoo("qwen2"), train, val, epochs=3, lr=3e-3, batch_size=16)
    f1s = [h["val_macro_f1"] for h in m.fit_info_["history"]]
    assert m.fit_info_["best_epoch"] == 1 + int(np.argmax(f1s))
    from sklearn.metrics import f1_score

    again = f1_score(val.labels, m.predict(val), average="macro", labels=range(3))
    assert again == pytest.approx(max(f1s), abs=1e-9)
    prepared = m._prepare_inputs(Texts(["a"], ["b"]))
    assert prepared.texts == ["a"] and prepared.pairs == ["\nb"]
    assert not np.allclose(m.predict_proba(Texts(val.texts, val.pairs)), m.predict_proba(Texts(val.texts)))


def test_pad_token_falls_back_to_eos(zoo):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(zoo("llama"))
    tok.pad_token = None
    extra = DecoderHead(model="x")._prepare_tokenizer(tok)
    assert tok.pad_token == tok.eos_token and extra["pad_token_id"] == tok.eos_token_id
    assert tok.padding_side == "left"
    tok.eos_token = None
    tok.pad_token = None
    with pytest.raises(ClfbenchError, match="neither a pad nor an eos"):
        DecoderHead(model="x")._prepare_tokenizer(tok)


def test_missing_model_is_a_clfbench_error():
    with pytest.raises(ClfbenchError, match="needs a model"):
        fitted(None, toy_data(30, 0), None)
    with pytest.raises(ClfbenchError, match="'Qwen/not-cached-anywhere' not found"):
        fitted("Qwen/not-cached-anywhere", toy_data(30, 0), None)


def test_qwen25_05b_shape_trains_0_46_percent():
    """The recipe on Qwen2.5-0.5B's architecture with 113 labels trains ~0.46% of the weights
    (built on the meta device: shapes only, no memory, ~2 s)."""
    from transformers import AutoModelForSequenceClassification, Qwen2Config

    cfg = Qwen2Config(hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
                      num_key_value_heads=2, intermediate_size=4864, vocab_size=151936,
                      tie_word_embeddings=True, num_labels=113, pad_token_id=151643)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(cfg)
        _, info = apply_lora(model, 16, 32, 0.05, ["q_proj", "k_proj", "v_proj", "o_proj"])
    # per layer r*(in+out) for q (896->896), k, v (896->128), o (896->896); score 896*113
    assert info["lora_parameters"] == 24 * 16 * ((896 + 896) * 2 + (896 + 128) * 2)
    assert info["trainable"] == info["lora_parameters"] + 896 * 113
    assert 494e6 < info["total"] < 497e6
    assert info["trainable"] / info["total"] == pytest.approx(0.0046, abs=0.00005)
