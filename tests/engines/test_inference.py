"""The encoder inference engine: exact logits, input order, batch-size search, GPU-path choices."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_models
import torch
from transformers import AutoModelForSequenceClassification

from clfbench.data.texts import Texts
from clfbench.engines.encoding import encode, model_input_names
from clfbench.engines.inference import (
    BATCH_CANDIDATES,
    EncoderEngine,
    label_agreement,
    predict_logits,
    recheck_threshold,
    resolve_dtype,
    top2_margin,
    with_recheck,
)
from clfbench.errors import ClfbenchError
from clfbench.evaluation.measure import synchronize


@pytest.fixture(scope="module")
def encoders(tmp_path_factory):
    """Tiny sequence classifiers (3 labels, seeded head) and their tokenizers, by model type."""
    return tiny_models.build_classifiers(tmp_path_factory, seed=1)


def mixed_texts(n: int = 37) -> Texts:
    """Short and long texts interleaved, so sorting by length really reorders them."""
    base = tiny_models.corpus(n)
    return Texts([t if i % 3 else " ".join([t] * 4) for i, t in enumerate(base)])


def naive_logits(model, tokenizer, X: Texts) -> np.ndarray:
    """One text at a time, no padding at all: the reference the engine must reproduce."""
    names = model_input_names(model)
    rows = []
    with torch.inference_mode():
        for i in range(len(X)):
            args = (X.texts[i], X.pairs[i]) if X.pairs is not None else (X.texts[i],)
            enc = tokenizer(*args, truncation=True, max_length=128, return_tensors="pt")
            rows.append(model(**{k: v for k, v in enc.items() if k in names}).logits[0].numpy())
    return np.stack(rows)


@pytest.mark.parametrize("kind", ["bert", "distilbert", "modernbert"])
def test_engine_logits_equal_one_by_one(encoders, kind):
    model, tok, _ = encoders[kind]
    X = mixed_texts()
    engine = EncoderEngine(model, tok, batch_size=8)
    np.testing.assert_allclose(engine.logits(X), naive_logits(model, tok, X), atol=1e-5)


def test_pair_task_logits_equal_one_by_one(encoders):
    model, tok, _ = encoders["bert"]
    base = tiny_models.corpus(24)
    X = Texts(base, list(reversed(base)))
    got = EncoderEngine(model, tok, batch_size=16).logits(X)
    np.testing.assert_allclose(got, naive_logits(model, tok, X), atol=1e-5)
    # the second segment matters: swapping the pair changes the logits
    assert not np.allclose(got, EncoderEngine(model, tok, batch_size=16).logits(
        Texts(X.pairs, X.texts)), atol=1e-6)


def test_order_preserved_with_mixed_lengths(encoders):
    model, tok, _ = encoders["bert"]
    X = mixed_texts(30)
    engine = EncoderEngine(model, tok, batch_size=4)
    full = engine.logits(X)
    perm = np.random.default_rng(0).permutation(len(X))
    np.testing.assert_allclose(engine.logits(X.subset(perm)), full[perm], atol=1e-5)
    # the legacy helper goes through the same engine
    np.testing.assert_allclose(predict_logits(model, tok, X, batch_size=5), full, atol=1e-5)
    assert engine.logits(Texts([])).shape == (0, 3)


def test_auto_batch_size_is_a_candidate_and_reported(encoders):
    model, tok, _ = encoders["distilbert"]
    engine = EncoderEngine(model, tok, batch_size="auto", tune_examples=64)
    chosen = engine.tune_batch_size(mixed_texts(80))
    assert chosen in BATCH_CANDIDATES and chosen <= 64
    info = engine.info()
    assert info["backend"] == "torch" and info["batch_size"] == chosen
    assert info["batch_size_search"] and str(chosen) in info["batch_size_search"]
    assert info["agreement"] == 1.0 and info["dtype"] == "float32"


def test_lazy_tuning_on_first_call(encoders):
    model, tok, _ = encoders["bert"]
    engine = EncoderEngine(model, tok)  # batch_size="auto" by default
    engine.logits(mixed_texts(20))
    assert engine.info()["batch_size"] in BATCH_CANDIDATES


def test_tuning_stops_at_out_of_memory(encoders):
    model, tok, _ = encoders["bert"]
    engine = EncoderEngine(model, tok, batch_size=8)
    real = engine.forward

    def small_memory(feeds):
        if len(feeds["input_ids"]) > 16:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(feeds)

    engine.forward = small_memory
    best = engine.tune_batch_size(mixed_texts(64))
    assert best in (8, 16) and set(engine.tuning) <= {8, 16}

    def broken(feeds):
        raise RuntimeError("shape mismatch")  # not memory: must surface

    engine.forward = broken
    with pytest.raises(RuntimeError, match="shape mismatch"):
        engine.tune_batch_size(mixed_texts(16))


def test_tuning_respects_rss_limit(encoders):
    model, tok, _ = encoders["bert"]
    engine = EncoderEngine(model, tok, memory_limit_mb=1.0)  # any process is over 1 MB
    assert engine.tune_batch_size(mixed_texts(64)) == BATCH_CANDIDATES[0]
    assert engine.tuning == {}


def test_bad_settings_are_rejected(encoders):
    model, tok, _ = encoders["bert"]
    with pytest.raises(ClfbenchError, match="backend"):
        EncoderEngine(model, tok, backend="tensorflow")
    with pytest.raises(ClfbenchError, match="quantize"):
        EncoderEngine(model, tok, quantize=True)
    with pytest.raises(ClfbenchError, match="batch_size"):
        EncoderEngine(model, tok, batch_size=0)
    with pytest.raises(ClfbenchError, match="dtype"):
        EncoderEngine(model, tok, dtype="int4")
    for bad in ("always", -0.5):
        with pytest.raises(ClfbenchError, match="recheck"):
            EncoderEngine(model, tok, dtype="bf16", recheck=bad)
    with pytest.raises(ClfbenchError, match="recheck_target"):
        EncoderEngine(model, tok, dtype="bf16", recheck="auto", recheck_target=99.8)


def test_gpu_dtype_choice(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_dtype(cuda, "auto") == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert resolve_dtype(cuda, "auto") == torch.float16
    assert resolve_dtype(torch.device("cpu"), "auto") is None
    assert resolve_dtype(cuda, None) is None and resolve_dtype(cuda, "fp16") == torch.float16
    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    synchronize(torch.device("cpu"))
    synchronize(cuda)
    assert calls == [cuda]


def test_half_precision_autocast_reports_agreement(encoders):
    """The GPU path (autocast to bf16) run on CPU: same labels, agreement measured and reported."""
    model, tok, _ = encoders["bert"]
    X = mixed_texts(24)
    engine = EncoderEngine(model, tok, batch_size=8, dtype="bfloat16").prepare(X)
    got = engine.logits(X)
    ref = naive_logits(model, tok, X)
    assert not np.array_equal(got, ref)  # really ran in bf16
    np.testing.assert_allclose(got, ref, atol=5e-2)
    info = engine.info()
    assert info["dtype"] == "bfloat16" and info["agreement_n"] == len(X)
    assert 0.0 <= info["agreement"] <= 1.0 and info["max_abs_logit_diff"] > 0


def test_eager_attention_switched_to_sdpa(encoders):
    _, tok, path = encoders["bert"]
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=3, attn_implementation="eager"
    )
    assert EncoderEngine(model, tok, batch_size=8).info()["attn_implementation"] == "sdpa"


def test_left_padding_for_decoder_style_tokenizers(encoders):
    _, tok, _ = encoders["bert"]
    enc = encode(tok, Texts(["the movie", "the movie was really very good"]), 32,
                 ["input_ids", "attention_mask"])
    enc.padding_side = "left"
    batch = enc.batch(np.array([0, 1]))
    assert batch["attention_mask"][0, 0] == 0 and batch["attention_mask"][0, -1] == 1
    assert batch["input_ids"][0, -1] == enc.features["input_ids"][0][-1]


def test_label_agreement():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    b = np.array([[0.9, 0.1], [0.6, 0.4], [2.0, 0.0], [1.0, 3.0]])
    assert label_agreement(a, b) == 0.75
    assert label_agreement(a, a) == 1.0
    with pytest.raises(ValueError):
        label_agreement(a, b[:2])


def test_top2_margin_and_recheck_threshold():
    fast = np.array([[2.0, 0.0], [0.1, 0.0], [0.0, 0.3], [1.0, 0.2], [0.0, 0.05]])
    ref = np.array([[2.0, 0.0], [0.0, 0.1], [0.3, 0.0], [1.0, 0.2], [0.0, 0.05]])
    np.testing.assert_allclose(top2_margin(fast), [2.0, 0.1, 0.3, 0.8, 0.05])
    np.testing.assert_allclose(top2_margin(np.array([[1.0, 5.0, 4.5]])), [0.5])
    # rows 1 and 2 flip, at margins 0.1 and 0.3: catching both needs a threshold just above 0.3
    t = recheck_threshold(fast, ref, target=1.0)
    assert 0.3 < t < 0.3 + 1e-6
    assert label_agreement(with_recheck(fast, ref, t), ref) == 1.0
    # 80% agreement allows one flip (the more confident one) to stay
    assert 0.1 < recheck_threshold(fast, ref, target=0.8) < 0.3
    assert recheck_threshold(fast, ref, target=0.6) == 0.0  # already met: nothing to re-check
    np.testing.assert_array_equal(with_recheck(fast, ref, 0.2)[[0, 2, 3]], fast[[0, 2, 3]])
    np.testing.assert_array_equal(with_recheck(fast, ref, 0.2)[[1, 4]], ref[[1, 4]])


def test_recheck_with_a_fixed_margin(encoders):
    """Rows under the margin come from the fp32 model, the others from the fast path."""
    model, tok, _ = encoders["bert"]
    X = mixed_texts(30)
    ref = EncoderEngine(model, tok, batch_size=8, dtype=None).logits(X)
    fast = EncoderEngine(model, tok, batch_size=8, dtype="bf16").logits(X)
    margin = float(np.median(top2_margin(fast)))
    engine = EncoderEngine(model, tok, batch_size=8, dtype="bf16", recheck=margin)
    got = engine.logits(X)
    low = top2_margin(fast) < margin
    assert 0 < low.sum() < len(X) and engine.rechecked == low.sum()
    counts = engine.info()["recheck"]
    assert (counts["rows_rechecked"], counts["rows_predicted"]) == (low.sum(), len(X))
    np.testing.assert_allclose(got[low], ref[low], atol=1e-5)
    np.testing.assert_array_equal(got[~low], fast[~low])
    everything = EncoderEngine(model, tok, batch_size=8, dtype="bf16", recheck=1e9)
    np.testing.assert_allclose(everything.logits(X), ref, atol=1e-5)
    exact = EncoderEngine(model, tok, batch_size=8, dtype=None, recheck="auto")
    assert "recheck" not in exact.prepare(X).info()  # ignored: nothing to re-check


def test_recheck_auto_calibrates_on_the_prepare_sample(encoders):
    """A fast path that flips exactly its near-ties: the calibrated margin catches every flip."""
    model, tok, _ = encoders["bert"]
    X = mixed_texts(60)
    engine = EncoderEngine(model, tok, batch_size=8, dtype="bf16", recheck="auto",
                           recheck_target=1.0)
    ref_logits = engine.reference(engine.encode(X).batch(np.arange(len(X))))
    cut = float(np.quantile(top2_margin(ref_logits), 0.3))

    def flips_near_ties(feeds):  # swap the top two logits of rows decided by less than `cut`
        out = engine.reference(feeds).copy()
        for row in np.flatnonzero(top2_margin(out) < cut):
            a, b = np.argsort(out[row])[-2:]
            out[row, [a, b]] = out[row, [b, a]]
        return out

    engine.forward = flips_near_ties
    info = engine.prepare(X).info()
    got = engine.logits(X)
    assert info["recheck"]["calibrated"] and 0 < info["recheck"]["margin"] <= cut
    assert info["recheck"]["agreement_without_recheck"] < 0.8
    assert info["recheck"]["share_of_sample"] == pytest.approx(engine.rechecked / len(X))
    assert info["agreement_n"] == len(X) and 0.8 < info["agreement"] <= 1.0
    assert label_agreement(got, ref_logits) == 1.0
