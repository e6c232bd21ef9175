"""llm-api label scoring from logprobs: only when the first answer token can tell labels apart."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("httpx")  # the `api` extra

from api_server import ApiServer

from clfbench.data.texts import LabeledTexts
from clfbench.methods.base import make_method

CFPB = {  # the cfpb task's own answers: two of them start with "credit"
    "instruction": "Which financial product is the consumer complaint about?",
    "text_name": "complaint",
    "verbalizers": {"credit_card": "credit card", "credit_reporting": "credit reporting",
                    "debt_collection": "debt collection", "mortgages_and_loans": "mortgage or loan",
                    "retail_banking": "retail banking"},
}
LABELS = list(CFPB["verbalizers"])


def complaints(n: int) -> LabeledTexts:
    labels = np.arange(n) % len(LABELS)
    texts = [f"complaint number {i} about my {LABELS[y].replace('_', ' ')}" for i, y in enumerate(labels)]
    return LabeledTexts(texts, None, labels, list(LABELS))


def confident_credit_card(messages: list[dict]) -> dict:
    """The model answers "credit card", its first token "credit" at p 0.93 (a token that two
    labels start with), "debt" at 0.05 and "mortgage" at 0.02."""
    return {"text": "credit card", "top_logprobs": [("credit", math.log(0.93)), ("debt", math.log(0.05)),
                                                    ("mortgage", math.log(0.02))]}


def test_shared_first_token_falls_back_to_the_generated_answer():
    """Dropping the shared first token "credit" and renormalising the rest turned p 0.93 for
    "credit ..." into debt_collection at 0.71: a confident wrong label."""
    with ApiServer(confident_credit_card) as server:
        m = make_method("llm-api", model="test-model", base_url=server.url, prompt=CFPB,
                        api_key_env="CLFBENCH_TEST_NO_KEY", timeout_s=2.0).fit(complaints(10))
        pred, proba = m.classify(complaints(5))
        info = m.inference_info()
    assert m.decision_ == "logprobs" and m.label_scoring() == "generate+parse"
    assert pred.tolist() == [0] * 5  # credit_card, parsed from "credit card", never debt_collection
    # a parsed answer has no probability: none are reported (no one-hot calibration)
    assert proba is None and not m.has_probabilities
    assert info["label_scoring"] == "generate+parse" and info["logprob_unmapped"] == 0


def test_distinct_first_tokens_keep_first_token_logprobs():
    m = make_method("llm-api", model="x", prompt={"verbalizers": {"a": "credit card", "b": "debt collection"}})
    from clfbench.engines.prompts import PromptBuilder

    m.builder_ = PromptBuilder(m.prompt, ["a", "b"])
    assert m.label_scoring() == "first-token logprobs"
    top = [("credit", math.log(0.6)), ("debt", math.log(0.3)), ("cr", math.log(0.1))]
    scores = m.label_scores([{"token": "credit", "logprob": math.log(0.6), "top": top}])
    np.testing.assert_allclose(scores, [0.7, 0.3])
    # a chosen token that could start either answer decides nothing: parse the text instead
    m.builder_ = PromptBuilder({"verbalizers": {"a": "neutral", "b": "negative"}}, ["a", "b"])
    assert m.label_scoring() == "first-token logprobs"
    assert m.label_scores([{"token": "ne", "logprob": math.log(0.9), "top": [("ne", math.log(0.9))]}]) is None


SENTIMENT = {"instruction": "Classify the sentiment as negative or positive.",
             "verbalizers": {"negative": "negative", "positive": "positive"}}


def reviews(n: int, offset: int = 0) -> LabeledTexts:
    labels = (np.arange(n) + offset) % 2
    texts = [f"review {i + offset}: {'wonderful' if y else 'dull'}" for i, y in enumerate(labels)]
    return LabeledTexts(texts, None, labels, ["negative", "positive"])


def the_answer_is(messages: list[dict]) -> dict:
    """A chatty model: "The answer is <label>", the right label for the review. At its first
    token "The" the alternatives are "Answer" (8%) and the *other* label, capitalised (2%)."""
    label = "positive" if "wonderful" in messages[-1]["content"] else "negative"
    other = "Negative" if label == "positive" else "Positive"
    return {"text": f"The answer is {label}",
            "top_logprobs": [("The", math.log(0.9)), ("Answer", math.log(0.08)), (other, math.log(0.02))]}


def test_a_first_token_that_is_no_label_falls_back_to_the_answered_word():
    """The first answer token "The" maps to no label: its 2% alternative "Positive" used to
    become the prediction at probability 1.0 (every label flipped, `logprob_unmapped` 0)."""
    test = reviews(20, offset=100)
    with ApiServer(the_answer_is) as server:
        m = make_method("llm-api", model="test-model", base_url=server.url, prompt=SENTIMENT,
                        api_key_env="CLFBENCH_TEST_NO_KEY", timeout_s=2.0).fit(reviews(10))
        pred, proba = m.classify(test)
        info = m.inference_info()
    assert m.decision_ == "logprobs" and m.label_scoring() == "first-token logprobs"
    assert pred.tolist() == test.labels.tolist()  # the word the model answered, never its opposite
    assert info["logprob_unmapped"] == 20 and info["invalid_answers"] == 0
    assert m.label_scores([{"token": "The", "logprob": math.log(0.9),
                            "top": [("The", math.log(0.9)), ("Positive", math.log(0.02))]}]) is None


def chatty_credit_reporting(messages: list[dict]) -> dict:
    """A nine-word answer whose label ("credit reporting") is its last two words."""
    return {"text": "I would say this complaint is about credit reporting",
            "top_logprobs": [("I", math.log(0.9)), ("credit", math.log(0.1))]}


@pytest.mark.parametrize("logprobs", [True, False])
def test_shared_first_words_are_generated_with_the_generation_budget(logprobs):
    """Labels that share a first word are parsed from the text, so the answer gets
    generation's 16 tokens even when the server returns logprobs: with the logprob budget (8)
    "... about credit reporting" was cut to "... about credit" and parsed INVALID."""
    with ApiServer(chatty_credit_reporting, logprobs=logprobs, honour_max_tokens=True) as server:
        m = make_method("llm-api", model="test-model", base_url=server.url, prompt=CFPB,
                        api_key_env="CLFBENCH_TEST_NO_KEY", timeout_s=2.0).fit(complaints(10))
        pred, _ = m.classify(complaints(2))
        body = server.requests[-1]["body"]
    assert m.decision_ == ("logprobs" if logprobs else "generate")
    assert m.label_scoring() == "generate+parse"
    assert pred.tolist() == [1, 1]  # credit_reporting
    assert body["max_tokens"] == 16 and "logprobs" not in body
    assert m.inference_info()["invalid_answers"] == 0
