"""Label scoring, the prefix KV cache, truncation and generation on tiny random causal LMs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import tiny_models
import torch

from clfbench.data.texts import Texts
from clfbench.engines import llm
from clfbench.engines.llm import CausalLMClassifier, PromptEncoder, load_causal_lm, softmax
from clfbench.engines.prompts import PromptBuilder

# The key/value cache is passed under the model's own argument name (`cache` since transformers
# renamed it; `past_key_values` warns and goes in 5.40): no FutureWarning may pass unseen.
pytestmark = pytest.mark.filterwarnings("error::FutureWarning")

PROMPT = {
    "instruction": "classify the sentiment as negative or positive",
    "verbalizers": {"negative": "negative", "positive": "positive"},
    "text_name": "sentence",
}
SHOTS = [("the movie was great fun", None, 1), ("terrible boring plot", None, 0),
         ("good acting", None, 1), ("bad awful film", None, 0), ("wonderful story", None, 1)]
ONE_TOKEN = {**PROMPT, "verbalizers": {"negative": "n", "positive": "p"}}  # one token each here
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


@pytest.mark.parametrize("kind, attn", [("qwen2", "sdpa"), ("qwen2", "eager"), ("llama", "sdpa"),
                                        ("llama", "eager"), ("gemma2", "eager")])  # gemma2: eager only
@pytest.mark.parametrize("cached", [True, False])
def test_packed_scores_equal_padded_scores(lms, kind, attn, cached):
    """Single-token answers are scored with the batch's queries packed into one row (no pads,
    one prefix copy, block-diagonal causal mask): the scores must equal padded batches, with
    either attention kernel, and the packing must really be used."""
    model, tok = lms[kind]
    own = model.config._attn_implementation
    model.set_attn_implementation(attn)
    try:
        enc = PromptEncoder(PromptBuilder(ONE_TOKEN, ["negative", "positive"]), tok, SHOTS, True, 384)
        assert all(len(a) == 1 for a in enc.score_ids)
        clf = CausalLMClassifier(model, enc, batch_size=4)
        prompts, _ = enc.encode_all(X)
        inp = clf.packed_inputs(prompts[:3], cached)
        P = inp["past_key_values"].get_seq_length() if cached else 0
        assert inp["input_ids"].shape[1] == sum(len(q) for q in prompts[:3]) - 3 * P  # no pads
        packed, info = clf.score(X, cached=cached)
        assert info["packed"] and clf._packed_ok
        with torch.inference_mode():
            padded = np.concatenate([clf._score_padded([q], cached, False) for q in prompts])
        np.testing.assert_allclose(packed, padded, atol=1e-4)
    finally:
        model.set_attn_implementation(own)


def test_packed_scoring_falls_back_when_it_disagrees(lms, monkeypatch, caplog):
    """A model whose attention ignored the packed mask would score wrongly: the first batch is
    checked against padded scoring, and on a mismatch every batch is scored padded."""
    model, tok = lms["qwen2"]
    enc = PromptEncoder(PromptBuilder(ONE_TOKEN, ["negative", "positive"]), tok, SHOTS, True, 384)
    clf = CausalLMClassifier(model, enc, batch_size=2)
    true_scores, _ = CausalLMClassifier(model, enc, batch_size=2).score(X)
    real = clf._score_packed
    monkeypatch.setattr(clf, "_score_packed", lambda p, c: real(p, c) + 0.5)
    with caplog.at_level("WARNING", logger="clfbench.engines.llm"):
        scores, info = clf.score(X)
    assert not info["packed"] and "packed scoring differs" in caplog.text
    np.testing.assert_allclose(scores, true_scores, atol=1e-4)


def test_prompts_longer_than_the_sliding_window_are_never_scored_packed(lms):
    """The packed 4D mask replaces the model's own masks, sliding window included. The packed
    check ran once, on the first batch: once short prompts had passed it, longer ones were
    scored packed, seeing tokens beyond the window (Gemma-2's alternate layers)."""
    model, tok = lms["gemma2"]
    own_attn, own_window = model.config._attn_implementation, model.config.sliding_window
    model.set_attn_implementation("eager")
    model.config.sliding_window = 32
    try:
        enc = PromptEncoder(PromptBuilder(ONE_TOKEN, ["negative", "positive"]), tok, [], True, 384)
        clf = CausalLMClassifier(model, enc, batch_size=4)
        short = Texts(["good", "bad plot", "a", "fun"])
        long = Texts(["the film was good " * 12, "awful " * 40, "what a wonderful story " * 10])
        prompts, _ = enc.encode_all(short)
        assert max(map(len, prompts)) <= 32
        _, info = clf.score(short)
        assert info["packed"] and clf._packed_ok  # the check passed on short prompts
        long_prompts, _ = enc.encode_all(long)
        assert min(map(len, long_prompts)) > 32
        scores, _ = clf.score(long)
        with torch.inference_mode():
            padded = np.concatenate([clf._score_padded([q], False, False) for q in long_prompts])
            packed = clf._score_packed(long_prompts, False)
        assert np.abs(packed - padded).max() > 1e-3  # packed would be wrong here
        np.testing.assert_allclose(scores, padded, atol=1e-4)
    finally:
        model.config.sliding_window = own_window
        model.set_attn_implementation(own_attn)


@pytest.mark.parametrize("normalize", [False, True])
def test_multi_token_scores_equal_hand_computed_log_probs(lms, normalize):
    model, tok = lms["llama"]
    prompt = {**PROMPT, "verbalizers": {"negative": "bad awful film", "positive": "good"}}
    enc = PromptEncoder(PromptBuilder(prompt, ["negative", "positive"]), tok, SHOTS[:2], True, 384)
    assert len(enc.answer_ids[0]) > 1
    clf = CausalLMClassifier(model, enc, batch_size=4, length_normalize=normalize)
    scores, _ = clf.score(X)
    for i in range(len(X)):
        prompt, _ = enc.encode(X.texts[i])
        assert prompt[: len(enc.prefix_ids)] == enc.prefix_ids
        for label, answer in enumerate(enc.answer_ids):
            ids = prompt + answer
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
    text, _, _ = enc.fit_query("awful " * 200)
    assert cut and 158 <= len(long_ids) <= 160 and ("awful " * 200).startswith(text)
    assert long_ids == enc.ids(enc.render(text, None))  # the answer slot is intact
    short_ids, short_cut = enc.encode("a good film")
    assert not short_cut and len(short_ids) < 160
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
    text, pair, _ = enc.fit_query("the movie " * 100, "a good film")
    assert cut and 118 <= len(ids) <= 120 and pair == "a good film"  # the short field is whole
    assert ids == enc.ids(enc.render(text, pair)) and len(text) < len("the movie " * 100)


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


# --- issue 11: prompts as the model sees them ------------------------------------------------
LABELS2 = ["negative", "positive"]


@pytest.fixture(scope="module")
def subword(tmp_path_factory):
    """{(kind, chat): (model, tokenizer)}: Llama-2-style SentencePiece ("sp") and Qwen-style
    byte-level BPE ("bpe") tiny decoders, plain layout and chat template."""
    short = {"sentencepiece": "sp", "bpe": "bpe"}
    loaded = tiny_models.subword_decoders(tmp_path_factory.mktemp("subword"))
    return {(short[tk], chat): v for (tk, chat), v in loaded.items()}


def as_model_sees(tok, text: str) -> list[int]:
    """The whole text tokenized once, with the tokenizer's own special tokens (none added when
    the text writes its own BOS), as lm-evaluation-harness tokenizes a context."""
    own_bos = bool(tok.bos_token) and text.startswith(tok.bos_token)
    return list(tok(text, add_special_tokens=not own_bos)["input_ids"])


def hand_loglikelihood(model, context: list[int], whole: list[int]) -> float:
    """Sum of log p(token) over `whole[len(context):]`, from one forward pass over `whole`."""
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([whole])).logits[0].float(), -1)
    return sum(float(logp[k - 1, whole[k]]) for k in range(len(context), len(whole)))


@pytest.mark.parametrize("kind", ["sp", "bpe"])
@pytest.mark.parametrize("chat", [False, True])
def test_prompt_is_tokenized_as_one_text(subword, kind, chat):
    """SentencePiece put a '▁' before every separately tokenized piece ("\nAnswer:" became
    ['▁', '\n', 'Answer', ':']): the model saw more tokens than the rendered prompt has.
    Scores must be the log-likelihood of the answer, as the template writes it, after the
    whole rendered prompt tokenized once."""
    model, tok = subword[kind, chat]
    enc = PromptEncoder(PromptBuilder(PROMPT, LABELS2), tok, SHOTS, True, 384)
    assert enc.chat == chat
    clf = CausalLMClassifier(model, enc, batch_size=2)
    X = Texts(["the film was good", "awful " * 20, "a", "what a wonderful story of the world", "bad plot"])
    scores, info = clf.score(X)
    assert info["truncated"] == 0
    # the answer as the template writes an assistant turn (" positive" after Llama-2's [/INST])
    answers = [w if chat and kind == "bpe" else " " + w for w in LABELS2]
    for i, text in enumerate(X.texts):
        rendered = enc.render(text.strip(), None)  # Llama-2's template strips messages
        context = as_model_sees(tok, rendered)
        for j, answer in enumerate(answers):
            whole = as_model_sees(tok, rendered + answer)
            assert scores[i, j] == pytest.approx(hand_loglikelihood(model, context, whole), abs=1e-4)
        assert enc.encode(text)[0] == context
    assert enc.answer_texts == answers
    np.testing.assert_allclose(clf.score(X, cached=False)[0], scores, atol=1e-4)


def test_truncation_cuts_at_token_starts_of_the_whole_prompt(subword):
    _, tok = subword["sp", False]
    enc = PromptEncoder(PromptBuilder(PROMPT, LABELS2), tok, [], True, 64)
    long = "the movie was really quite boring and the plot was bad " * 10
    ids, cut = enc.encode(long)
    text, _, _ = enc.fit_query(long)
    assert cut and long.startswith(text) and 60 <= len(ids) <= 64
    assert ids == as_model_sees(tok, enc.render(text, None))
    assert enc.render(text, None).endswith("\nAnswer:")


def test_bos_follows_the_tokenizer_and_is_recorded(subword):
    builder = PromptBuilder(PROMPT, LABELS2)
    _, sp = subword["sp", False]
    enc = PromptEncoder(builder, sp, [], True, 256)
    ids, _ = enc.encode("good")
    assert ids[0] == sp.bos_token_id and ids[1] != sp.bos_token_id
    assert enc.describe()["bos"]["tokens_added"] == ["<s>"]
    assert PromptEncoder(builder, sp, [], True, 256, bos="never").encode("good")[0] == ids[1:]
    _, chat_sp = subword["sp", True]  # Llama-2's chat template writes <s> itself: not doubled
    chat_ids, _ = PromptEncoder(builder, chat_sp, [], True, 256).encode("good")
    assert chat_ids[0] == chat_sp.bos_token_id and chat_ids[1] != chat_sp.bos_token_id
    # A BOS token that the tokenizer's own post-processor does not add (GPT-NeoX, OLMo): none
    # by default, as lm-evaluation-harness does; `bos="always"` adds it.
    _, bpe = subword["bpe", False]
    bpe = copy.deepcopy(bpe)
    bpe.bos_token = "<|endoftext|>"
    auto = PromptEncoder(builder, bpe, [], True, 256)
    assert auto.encode("good")[0] == as_model_sees(bpe, auto.render("good", None))
    assert auto.encode("good")[0][0] != bpe.bos_token_id and auto.describe()["bos"]["tokens_added"] == []
    always = PromptEncoder(builder, bpe, [], True, 256, bos="always")
    assert always.encode("good")[0] == [bpe.bos_token_id] + auto.encode("good")[0]
    assert always.describe()["bos"]["tokens_added"] == ["<|endoftext|>"]


@pytest.mark.parametrize("policy", ["auto", "always", "never"])
def test_describe_reports_the_bos_the_prompt_really_has(subword, policy):
    """Llama-2's chat template writes <s> itself: no policy adds one (the token ids were right),
    but describe() said "<s>" was added under auto and always, and nothing about the
    template's <s> under never."""
    _, chat_sp = subword["sp", True]
    enc = PromptEncoder(PromptBuilder(PROMPT, LABELS2), chat_sp, [], True, 256, bos=policy)
    ids, _ = enc.encode("good")
    assert ids[0] == chat_sp.bos_token_id and ids[1] != chat_sp.bos_token_id  # one <s>, the template's
    bos = enc.describe()["bos"]
    assert bos["policy"] == policy and bos["tokens_added"] == [] and bos["written_by_template"] is True
    _, sp = subword["sp", False]  # the plain layout: the policy's own <s>, or none
    plain = PromptEncoder(PromptBuilder(PROMPT, LABELS2), sp, [], True, 256, bos=policy).describe()["bos"]
    assert plain["tokens_added"] == ([] if policy == "never" else ["<s>"])
    assert plain["written_by_template"] is False


def test_generate_is_greedy_whatever_the_checkpoint_generation_config(lms):
    model, tok = lms["qwen2"]
    enc = PromptEncoder(PromptBuilder(PROMPT, LABELS2), tok, SHOTS[:2], True, 256)
    clf = CausalLMClassifier(model, enc, batch_size=2)
    n_new, sub = 6, X.subset(range(3))
    want = []
    with torch.no_grad():
        for text in sub.texts:  # plain argmax decoding, eos barred as min_new_tokens bars it
            ids, _ = enc.encode(text)
            for _ in range(n_new):
                logits = model(torch.tensor([ids])).logits[0, -1]
                logits[tok.eos_token_id] = -float("inf")
                ids = ids + [int(logits.argmax())]
            want.append(tok.decode(ids[-n_new:], skip_special_tokens=True))
    saved = copy.deepcopy(model.generation_config)
    gc = model.generation_config
    gc.repetition_penalty, gc.no_repeat_ngram_size, gc.do_sample, gc.temperature, gc.top_k = 30.0, 1, True, 3.0, 2
    try:
        texts, info = clf.generate(sub, max_new_tokens=n_new, min_new_tokens=n_new)
    finally:
        model.generation_config = saved
    assert model.generation_config.repetition_penalty == saved.repetition_penalty
    assert texts == want
    cfg = info["generation_config"]
    assert cfg["do_sample"] is False and cfg["num_beams"] == 1 and cfg["repetition_penalty"] == 1.0
    assert cfg["no_repeat_ngram_size"] == 0 and cfg["max_new_tokens"] == n_new


TREC = {  # trec-fine's own words for these labels: "description" is a prefix of another answer
    "instruction": "What type of answer does the question ask for?",
    "text_name": "question",
    "verbalizers": {"DESC:desc": "description", "HUM:desc": "description of a person",
                    "DESC:def": "definition", "DESC:manner": "manner"},
}
TREC_LABELS = ["DESC:desc", "HUM:desc", "DESC:def", "DESC:manner"]


def test_a_label_that_extends_another_can_win(subword, caplog, monkeypatch):
    """Summed log-likelihoods: "description of a person" = p(description) x p(of a person |
    ...) can never beat "description" (HUM:desc was predicted 0 times in 120). Complete
    answers (answer + the token that ends it) make every label reachable."""
    import logging

    base, tok = subword["sp", False]
    model = copy.deepcopy(base)
    builder = PromptBuilder(TREC, TREC_LABELS)
    # warnings are given once per process: whatever an earlier test (lm-eval's trec-fine) warned
    monkeypatch.setattr(llm, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="clfbench.engines.llm"):
        enc = PromptEncoder(builder, tok, [], True, 128)
        PromptEncoder(builder, tok, [], True, 128)
    assert [r.getMessage().count("ambiguous") for r in caplog.records] == [1]  # warned once
    d = enc.describe()
    assert enc.complete and d["complete_answers"] and d["ambiguous_answers"] == [["DESC:desc", "HUM:desc"]]
    end = d["answer_end_token"]  # the first token of the plain layout's separator "\n\n"
    assert end in ("\n", "\n\n") and enc.score_texts == [a + end for a in enc.answer_texts]
    assert all(s == a + [s[-1]] for s, a in zip(enc.score_ids, enc.answer_ids))
    # Teach the tiny model: "who" questions are answered "description of a person".
    train = [(f"who {w} the actor in the movie", 1) for w in ("is", "was", "played", "plays")]
    train += [(f"what {w} the story of the movie", 0) for w in ("is", "was", "means", "tells")]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    torch.manual_seed(0)
    model.train()
    # Train to a loss, not a step count: CPUs differ in float rounding, and on CI's 60 fixed
    # steps left one example just short of the boundary (here it converges at about step 55).
    for _ in range(400):
        loss = 0.0
        for text, y in train:
            ids, _ = enc.encode(text)
            full = torch.tensor([ids + enc.score_ids[y]])
            labels = full.clone()
            labels[0, : len(ids)] = -100
            loss = loss + model(input_ids=full, labels=labels).loss
        if float(loss) < 0.02:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.02, f"the tiny model did not learn its 8 examples (loss {float(loss):.3f})"
    model.eval()
    X_trec = Texts([t for t, _ in train])
    y = [y for _, y in train]
    complete = CausalLMClassifier(model, enc).score(X_trec)[0].argmax(1)
    assert complete.tolist() == y  # HUM:desc is reachable
    summed = PromptEncoder(builder, tok, [], True, 128, complete_answers=False)
    assert not summed.complete and summed.score_ids == summed.answer_ids
    assert 1 not in CausalLMClassifier(model, summed).score(X_trec)[0].argmax(1).tolist()
