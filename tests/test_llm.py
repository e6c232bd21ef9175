"""Label scoring, the prefix KV cache, truncation and generation on tiny random causal LMs."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_models
import torch

from clfbench.data import Texts
from clfbench.llm import CausalLMClassifier, PromptEncoder, load_causal_lm, softmax
from clfbench.prompts import PromptBuilder

PROMPT = {
    "instruction": "classify the sentiment as negative or positive",
    "verbalizers": {"negative": "negative", "positive": "positive"},
    "text_name": "sentence",
}
SHOTS = [("the movie was great fun", None, 1), ("terrible boring plot", None, 0),
         ("good acting", None, 1), ("bad awful film", None, 0), ("wonderful story", None, 1)]
X = Texts(["the film was good", "awful " * 60, "a", "what a wonderful story of the world", "bad plot"])


@pytest.fixture(scope="module")
def lms(tmp_path_factory):
    root = tmp_path_factory.mktemp("decoders")
    out = {}
    for kind in ("qwen2", "llama", "gemma2"):
        out[kind] = load_causal_lm(str(tiny_models.build_decoder(root / kind, kind)))
    out["plain"] = load_causal_lm(str(tiny_models.build_decoder(root / "plain", "llama", chat_template=False)))
    return out


@pytest.mark.parametrize("kind", ["qwen2", "llama", "gemma2"])
def test_prefix_cache_matches_uncached_and_batch_size(lms, kind):
    model, tok = lms[kind]
    enc = PromptEncoder(PromptBuilder(PROMPT, ["negative", "positive"]), tok, SHOTS, True, 384)
    clf = CausalLMClassifier(model, enc, batch_size=3)
    cached, info = clf.score(X, cached=True)
    uncached, _ = clf.score(X, cached=False)
    assert info["prefix_cache"] and np.isfinite(cached).all()
    np.testing.assert_allclose(cached, uncached, atol=1e-4)
    clf.batch_size = 1
    np.testing.assert_allclose(clf.score(X, cached=False)[0], uncached, atol=1e-4)
    p = softmax(cached)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-9)
    out_c, _ = clf.generate(X, cached=True)
    out_u, _ = clf.generate(X, cached=False)
    assert out_c == out_u


@pytest.mark.parametrize("normalize", [False, True])
def test_multi_token_scores_equal_hand_computed_log_probs(lms, normalize):
    model, tok = lms["llama"]
    prompt = {**PROMPT, "verbalizers": {"negative": "bad awful film", "positive": "good"}}
    enc = PromptEncoder(PromptBuilder(prompt, ["negative", "positive"]), tok, SHOTS[:2], True, 384)
    assert len(enc.answer_ids[0]) > 1
    clf = CausalLMClassifier(model, enc, batch_size=4, length_normalize=normalize)
    scores, _ = clf.score(X)
    for i in range(len(X)):
        query, _ = enc.encode(X.texts[i])
        for label, answer in enumerate(enc.answer_ids):
            ids = enc.prefix_ids + query + answer
            with torch.no_grad():
                logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)
            start = len(ids) - len(answer)
            want = sum(float(logp[start + j - 1, t]) for j, t in enumerate(answer))
            if normalize:
                want /= len(answer)
            assert scores[i, label] == pytest.approx(want, abs=1e-4)


def test_truncation_cuts_only_the_query_text(lms):
    model, tok = lms["llama"]
    enc = PromptEncoder(PromptBuilder(PROMPT, ["negative", "positive"]), tok, SHOTS, True, 160)
    long_ids, cut = enc.encode("awful " * 200)
    assert cut and len(enc.prefix_ids) + len(long_ids) == 160
    assert long_ids[-len(enc.suffix_ids):] == enc.suffix_ids  # the answer slot is intact
    short_ids, short_cut = enc.encode("a good film")
    assert not short_cut and len(enc.prefix_ids) + len(short_ids) < 160
    _, info = CausalLMClassifier(model, enc).score(X)
    assert info["truncated"] == 1 and info["prompt_tokens_max"] <= 160
    d = enc.describe()
    assert "never cut" in d["truncation_policy"] and d["prefix_tokens"] == len(enc.prefix_ids)
    # A long few-shot text is cut to the per-shot cap; its answer stays.
    enc2 = PromptEncoder(enc.builder, tok, [("awful " * 200, None, 0), ("good", None, 1)], True, 160)
    assert enc2.shots_truncated == 1 and "negative" in enc2.render("{text}", None)


def test_pair_truncation_cuts_longest_field_first(lms):
    _, tok = lms["llama"]
    prompt = {"instruction": "does the premise entail the hypothesis", "text_name": "premise",
              "pair_name": "hypothesis", "verbalizers": {"entailment": "yes", "not_entailment": "no"}}
    enc = PromptEncoder(PromptBuilder(prompt, ["entailment", "not_entailment"]), tok, [], True, 120, is_pair=True)
    ids, cut = enc.encode("the movie " * 100, "a good film")
    hyp = enc._ids(enc.pair_lead + "a good film")
    assert cut and len(enc.prefix_ids) + len(ids) == 120
    assert ids[-len(enc.suffix_ids) - len(hyp):-len(enc.suffix_ids)] == hyp  # the short field is whole


def test_plain_prompt_without_chat_template(lms):
    model, tok = lms["plain"]
    builder = PromptBuilder(PROMPT, ["negative", "positive"])
    enc = PromptEncoder(builder, tok, SHOTS[:2], True, 256)
    assert not enc.chat and enc.render("x", None).endswith("Answer:")
    assert builder.instruction in enc.render("x", None)
    _, chat_tok = lms["llama"]
    off = PromptEncoder(builder, chat_tok, SHOTS[:2], use_chat_template=False, max_length=256)
    assert not off.chat and "<|im_start|>" not in off.render("x", None)
    scores, _ = CausalLMClassifier(model, enc).score(X)
    assert scores.shape == (len(X), 2) and np.isfinite(scores).all()


def test_too_small_max_length_fails_clearly(lms):
    from clfbench.errors import ClfbenchError

    _, tok = lms["llama"]
    with pytest.raises(ClfbenchError, match="max_length=40"):
        PromptEncoder(PromptBuilder(PROMPT, ["negative", "positive"]), tok, SHOTS, True, 40)
