"""Prompt templates, answer parsing and few-shot sampling (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from clfbench.data import LabeledTexts
from clfbench.errors import ClfbenchError
from clfbench.methods.base import INVALID
from clfbench.prompts import PromptBuilder, normalize_answer, sample_shots

SST2 = {
    "instruction": "Classify the sentiment. Answer with one word: negative or positive.",
    "verbalizers": {"negative": "negative", "positive": "positive"},
    "text_name": "sentence",
    "pair_name": None,
}
NLI = {
    "instruction": "Does the premise entail the hypothesis? Answer yes or no.",
    "verbalizers": {"entailment": "yes", "not_entailment": "no"},
    "text_name": "premise",
    "pair_name": "hypothesis",
}
SHOTS = [("great fun", None, 1), ("dull plot", None, 0), ("awful", None, 0)]


def test_instruction_in_zero_and_few_shot_messages():
    b = PromptBuilder(SST2, ["negative", "positive"])
    zero = b.messages("a film", None, [])
    assert [m["role"] for m in zero] == ["user"]
    assert SST2["instruction"] in zero[0]["content"] and "Sentence: a film" in zero[0]["content"]
    few = b.messages("a film", None, SHOTS)
    assert [m["role"] for m in few] == ["user", "assistant"] * 3 + ["user"]
    assert SST2["instruction"] in few[0]["content"]
    assert [m["content"] for m in few if m["role"] == "assistant"] == ["positive", "negative", "negative"]
    assert few[-1]["content"] == "Sentence: a film"


def test_plain_prompt_has_instruction_and_ends_with_answer_slot():
    b = PromptBuilder(SST2, ["negative", "positive"])
    for shots in ([], SHOTS):
        text = b.render_plain("a film", None, shots)
        assert text.startswith(SST2["instruction"])
        assert text.endswith("Sentence: a film\nAnswer:")
    few = b.render_plain("a film", None, SHOTS)
    assert "Sentence: great fun\nAnswer: positive" in few
    assert few.index("great fun") < few.index("dull plot") < few.index("a film")


def test_pair_prompt_names_both_fields():
    b = PromptBuilder(NLI, ["entailment", "not_entailment"])
    msg = b.messages("A man sleeps.", "Someone rests.", [])[-1]["content"]
    assert "Premise: A man sleeps.\nHypothesis: Someone rests." in msg
    assert b.verbalizers == ["yes", "no"]


def test_default_prompt_for_user_data():
    b = PromptBuilder({}, ["billing", "tech_support", "other"])
    assert b.verbalizers == ["billing", "tech_support", "other"]
    assert b.instruction == "Classify the text. Answer with one of: billing, tech_support, other."
    assert "Text: hello" in b.messages("hello", None, [])[0]["content"]


@pytest.mark.parametrize(
    "output, expected",
    [
        ("positive", 1),
        ("  POSITIVE.", 1),
        ("Answer: Negative!", 0),
        ("The sentiment is negative, not positive", 0),
        ("<think>positive?</think>negative", 0),
        ("posit ive", INVALID),
        ("neutral", INVALID),
        ("", INVALID),
        ("positively", INVALID),  # whole words only
    ],
)
def test_parse(output, expected):
    assert PromptBuilder(SST2, ["negative", "positive"]).parse(output) == expected


def test_parse_prefers_longer_answer_at_same_place():
    b = PromptBuilder({"verbalizers": {"a": "not entailment", "b": "not"}}, ["a", "b"])
    assert b.parse("Not entailment") == 0
    assert b.parse("not sure") == 1
    assert normalize_answer("  Not_Entailment!! ") == "not entailment"


def test_bad_verbalizers_fail_clearly():
    with pytest.raises(ClfbenchError, match="same answer word"):
        PromptBuilder({"verbalizers": {"a": "Yes", "b": "yes."}}, ["a", "b"])
    with pytest.raises(ClfbenchError, match="unknown label"):
        PromptBuilder({"verbalizers": {"c": "x"}}, ["a", "b"])


def test_template_override_file(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text('system: "You are a careful annotator."\ninput: "<<{{ text }}>>"\n')
    b = PromptBuilder(SST2, ["negative", "positive"], str(f))
    msgs = b.messages("a film", None, [])
    assert msgs[0] == {"role": "system", "content": "You are a careful annotator."}
    assert msgs[1]["content"] == SST2["instruction"] + "\n\n<<a film>>"
    assert b.describe()["template"] == f.read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("inptu: x\n")
    with pytest.raises(ClfbenchError, match="unknown template key"):
        PromptBuilder(SST2, ["negative", "positive"], str(bad))
    with pytest.raises(ClfbenchError, match="not found"):
        PromptBuilder(SST2, ["negative", "positive"], str(tmp_path / "missing.yaml"))


def _train(counts: list[int]) -> LabeledTexts:
    labels = np.concatenate([np.full(c, i) for i, c in enumerate(counts)])
    return LabeledTexts([f"t{i}" for i in range(len(labels))], None, labels, [f"c{i}" for i in range(len(counts))])


def test_sample_shots_stratified_seeded_shuffled():
    train = _train([60, 30, 10])
    a = sample_shots(train, 6, 99)
    assert a == sample_shots(train, 6, 99)
    assert a != sample_shots(train, 6, 100)
    assert len(set(a)) == 6
    assert np.bincount(train.labels[a], minlength=3).tolist() == [2, 2, 2]  # balanced, not 60/30/10
    five = sample_shots(train, 5, 7)
    assert sorted(np.bincount(train.labels[five], minlength=3).tolist()) == [1, 2, 2]
    for seed in range(30):  # never one block per class (e.g. all c0, then all c1)
        labels = train.labels[sample_shots(train, 6, seed)].tolist()
        blocks = [labels[0]] + [b for x, b in zip(labels, labels[1:]) if x != b]
        assert len(blocks) > len(set(blocks))


def test_sample_shots_small_class_and_limits():
    train = _train([20, 1])
    idx = sample_shots(train, 4, 0)
    assert np.bincount(train.labels[idx], minlength=2).tolist() == [3, 1]
    assert sample_shots(train, 0, 0) == []
    with pytest.raises(ClfbenchError, match="only 21"):
        sample_shots(train, 30, 0)


def test_ambiguous_answers_are_word_prefixes():
    b = PromptBuilder({"verbalizers": {"DESC:desc": "description", "HUM:desc": "description of a person",
                                       "x": "not", "y": "nothing"}}, ["DESC:desc", "HUM:desc", "x", "y"])
    assert b.ambiguous_answers() == [("DESC:desc", "HUM:desc")]  # "not" / "nothing": whole words differ
    assert PromptBuilder(SST2, ["negative", "positive"]).ambiguous_answers() == []
    assert b.plain_answer_end() == "\n\n"
