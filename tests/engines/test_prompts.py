"""Prompt templates, answer parsing and few-shot sampling (no model needed)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from cli_helpers import refused

from clfbench.data.texts import LabeledTexts
from clfbench.engines.prompts import PromptBuilder, normalize_answer, sample_shots
from clfbench.errors import ClfbenchError
from clfbench.methods.base import INVALID

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


# --- label descriptions ------------------------------------------------------------------------
DESCRIBED = {**SST2, "label_descriptions": {"negative": "the writer disliked the film",
                                            "positive": "the writer liked the film"}}


def test_label_descriptions_are_rendered_when_on_and_left_out_when_off():
    on = PromptBuilder(DESCRIBED, ["negative", "positive"])
    off = PromptBuilder(DESCRIBED, ["negative", "positive"], descriptions="off")
    first_on = on.messages("a film", None, SHOTS)[0]["content"]
    assert first_on.startswith(SST2["instruction"] + "\n\nLabels:\n- negative: the writer disliked")
    assert "- positive: the writer liked the film" in on.render_plain("a film", None, [])
    # only the first user turn carries them; later turns and the query do not repeat them
    assert all("writer" not in m["content"] for m in on.messages("a film", None, SHOTS)[1:])
    for text in (off.messages("a film", None, SHOTS)[0]["content"], off.render_plain("a film", None, [])):
        assert "writer" not in text and "Labels:" not in text
    assert off.messages("a film", None, []) == PromptBuilder(SST2, ["negative", "positive"]).messages(
        "a film", None, [])  # off is exactly the prompt without descriptions
    assert on.describe()["descriptions"] == "auto" and on.describe()["label_descriptions"]["positive"]
    assert off.describe()["descriptions"] == "off" and off.describe()["label_descriptions"] is None


def test_auto_descriptions_are_left_out_when_they_crowd_out_the_query(caplog):
    """banking77's 77 descriptions take ~1,000 tokens: with the default max_length 512 every
    llm-prompt run on it failed ("the prompt without the query already takes ..."). "auto"
    leaves them out (warned, recorded) when they leave under half of max_length for the query;
    "on" keeps them or refuses; a large enough max_length keeps them under "auto"."""
    import tiny_models

    from clfbench.data.tasks import get_task
    from clfbench.engines.llm import PromptEncoder

    tok = tiny_models.train_decoder_tokenizer(chat_template=False)
    task = get_task("banking77")
    prompt = {"text_name": task.text, **task.prompt}
    with caplog.at_level("WARNING", logger="clfbench.engines.llm"):
        enc = PromptEncoder(PromptBuilder(prompt, list(task.labels)), tok, [], True, 512)
    d = enc.builder.describe()
    assert d["label_descriptions"] is None and "max_length=512" in d["descriptions_dropped"]
    assert "label descriptions left out" in caplog.text and enc.text_budget > 256
    with pytest.raises(ClfbenchError, match="max_length=512: the prompt without the query"):
        PromptEncoder(PromptBuilder(prompt, list(task.labels), descriptions="on"), tok, [], True, 512)
    big = PromptEncoder(PromptBuilder(prompt, list(task.labels)), tok, [], True, 200_000)
    assert big.builder.describe()["descriptions_dropped"] is None
    assert "- card arrival: " in big.builder.labels_block and len(big.prefix_ids) > 1000


def test_label_descriptions_file_adds_to_and_overrides_the_task(tmp_path):
    yaml_file = tmp_path / "d.yaml"
    yaml_file.write_text("positive: loved it\n")
    json_file = tmp_path / "d.json"
    json_file.write_text('{"negative": "hated it"}')
    b = PromptBuilder(DESCRIBED, ["negative", "positive"], descriptions_file=str(yaml_file))
    assert b.label_descriptions == {"negative": "the writer disliked the film", "positive": "loved it"}
    b = PromptBuilder(SST2, ["negative", "positive"], descriptions_file=str(json_file))
    assert b.descriptions() == [("negative", "hated it")]
    assert "- negative: hated it" in b.messages("x", None, [])[0]["content"]


@pytest.mark.parametrize("content,expected", [
    (None, "label descriptions file not found"),
    ("neutral: neither\n", r"unknown label\(s\) neutral; labels: negative, positive"),
    ("- a list\n", "must be a mapping"),
    ('positive: "two\\nlines"\n', "must be one non-empty line"),
    ("positive: [1]\n", "must be one non-empty line"),
])
def test_bad_label_descriptions_file_is_one_clear_error(tmp_path, content, expected):
    path = tmp_path / "d.yaml"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ClfbenchError, match=expected) as err:
        PromptBuilder(SST2, ["negative", "positive"], descriptions_file=str(path))
    assert "\n" not in str(err.value)
    with pytest.raises(ClfbenchError, match="descriptions='maybe'"):
        PromptBuilder(SST2, ["negative", "positive"], descriptions="maybe")


def test_task_yaml_label_descriptions_reach_the_prompt_block():
    from clfbench.data.tasks import Task, all_tasks

    for name in ("trec-coarse", "trec-fine", "banking77"):
        task = all_tasks()[name]
        assert set(task.label_descriptions) == set(task.labels)
        b = PromptBuilder(task.prompt, task.labels)
        first = b.messages("who wrote it?", None, [])[0]["content"]
        assert all(f"- {w}: " in first for w in b.verbalizers)
    with pytest.raises(ClfbenchError, match=r"task t: label_descriptions: unknown label\(s\) c"):
        Task(name="t", description="", labels=["a", "b"], label_descriptions={"c": "no such label"})


def test_methods_take_descriptions_and_check_the_file_when_built(tmp_path):
    from clfbench.methods.base import accepted_params, make_method

    for method in ("llm-prompt", "llm-sft", "llm-api", "llm-dspy"):
        assert {"descriptions", "label_descriptions"} <= accepted_params(method)
    with pytest.raises(ClfbenchError, match="parameter descriptions='yes'"):
        make_method("llm-prompt", model="x", descriptions="yes")
    with pytest.raises(ClfbenchError, match="label descriptions file not found"):
        make_method("llm-prompt", model="x", label_descriptions=str(tmp_path / "missing.yaml"))


def test_cli_refuses_a_bad_descriptions_file_in_one_line(tmp_path, capsys):
    from pathlib import Path


    data = Path(__file__).resolve().parents[2] / "src" / "clfbench" / "demo_data"
    bad = tmp_path / "d.yaml"
    bad.write_text("no_such_intent: a label the data does not have\n")
    for path, expected in ((tmp_path / "missing.yaml", "label descriptions file not found"),
                           (bad, r"unknown label\(s\) no_such_intent")):
        line = refused(["run", "--train", str(data / "train.csv"), "--test", str(data / "test.csv"),
                        "--method", "llm-api", "--model", "m", "--param", "base_url=http://127.0.0.1:9/v1",
                        "--param", f"label_descriptions={path}"], tmp_path / "runs", capsys)
        assert re.search(expected, line), line


def test_one_grid_ab_tests_descriptions_on_and_off(datasets_dir, tmp_path):
    """trec-coarse's task descriptions in the prompts of one grid entry, not of the other."""
    pytest.importorskip("httpx")
    from api_server import ApiServer

    from clfbench.cli import main

    grid = tmp_path / "grid.yaml"
    with ApiServer(lambda messages: "location") as server:
        entry = (f"{{name: llm-api, models: [test-model], params: {{base_url: '{server.url}', "
                 f"api_key_env: CLFBENCH_NO_KEY, decision: generate, concurrency: 1")
        grid.write_text(f"tasks: [trec-coarse]\ndata_dir: {datasets_dir}\nmethods:\n"
                        f"  - {entry}}}}}\n  - {entry}, descriptions: 'off'}}}}\n"
                        "seeds: [99]\nmax_train: 60\nmax_eval: 6\n")
        assert main(["run", str(grid), "--latency-examples", "1", "--out", str(tmp_path / "runs"), "-q"]) == 0
        firsts = [r["body"]["messages"][0]["content"] for r in server.requests]
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if (p / "metrics.json").is_file())
    modes = {}
    for run in runs:
        metrics = json.loads((run / "metrics.json").read_text())
        params = json.loads((run / "config.json").read_text())["method_params"]
        modes[params["descriptions"]] = metrics["fit_info"]["prompt"]
    assert modes["auto"]["label_descriptions"]["LOC"].startswith("a place")  # API: no max_length
    assert modes["off"]["label_descriptions"] is None and modes["off"]["labels_block"] is None
    with_block = [f for f in firsts if "\n- location: a place" in f]
    assert 0 < len(with_block) < len(firsts)  # one entry's requests carry them, the other's not
