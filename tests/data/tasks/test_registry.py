"""The task registry: every task YAML is complete, consistent and listed by `clfbench tasks`."""

import re

import pytest
import yaml

from clfbench.cli import main
from clfbench.data.tasks import TASK_DIR, all_tasks, get_task, task_from_yaml
from clfbench.data.tasks import readers as readers_module
from clfbench.errors import ClfbenchError

EXPECTED = {
    "sst2": 2, "rte": 2, "boolq": 2, "anli_r1": 3, "mnli": 3, "ag_news": 4, "imdb": 2,
    "dbpedia_14": 14, "trec-coarse": 6, "trec-fine": 50, "banking77": 77, "cfpb": 5,
}
PAIR_TASKS = {"rte", "boolq", "anli_r1", "mnli"}
SOURCE_KEYS = {"text", "pair", "label", "label_map", "id", "transform"}
HUB_KEYS = SOURCE_KEYS | {"path", "name", "revision", "splits"}
LOCAL_KEYS = SOURCE_KEYS | {"dir", "format", "quoting", "header", "names", "reader", "splits"}
SPLIT_KEYS = LOCAL_KEYS - {"dir", "splits"} | {"file", "optional"}


def test_every_expected_task_is_registered():
    tasks = all_tasks()
    assert set(EXPECTED) <= set(tasks)
    for name, n in EXPECTED.items():
        assert len(tasks[name].labels) == n, name


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_task_yaml_is_complete(name):
    t = get_task(name)
    assert t.description and t.text and t.sizes and t.hub and t.prompt
    assert all(isinstance(v, int) and v > 0 for v in t.sizes.values())
    assert set(t.sizes) <= {"train", "validation", "test"} and "train" in t.sizes
    assert t.is_pair == (name in PAIR_TASKS)
    # The hub block: a dataset id, known keys only, labeled splits mapped onto our roles.
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", t.hub["path"])
    assert set(t.hub) <= HUB_KEYS, set(t.hub) - HUB_KEYS
    assert set(t.hub["splits"]) <= {"train", "validation", "test"}
    assert t.is_pair == ("pair" in t.hub)
    if t.local:
        assert set(t.local) <= LOCAL_KEYS, set(t.local) - LOCAL_KEYS
        for split in t.local["splits"].values():
            assert "file" in split and set(split) <= SPLIT_KEYS
        assert t.is_pair == ("pair" in t.local)
    for block in filter(None, (t.hub, t.local)):
        for key in ("transform", "reader"):
            if key in block:
                assert callable(getattr(readers_module, block[key], None)), block[key]
        assert set((block.get("label_map") or {}).values()) <= set(t.labels)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_prompt_block(name):
    t = get_task(name)
    p = t.prompt
    assert p["instruction"].strip().endswith(".") and "answer" in p["instruction"].lower()
    verbalizers = p["verbalizers"]
    assert list(verbalizers) == t.labels  # every label, in label order
    words = [w.lower() for w in verbalizers.values()]
    assert all(isinstance(w, str) and w.strip() for w in words)
    assert len(set(words)) == len(words)  # a word maps back to one label
    if t.is_pair:
        assert p["text_name"] and p["pair_name"] and p["text_name"] != p["pair_name"]
    if len(t.labels) <= 6:  # short label sets: the instruction names every answer word
        assert all(w in p["instruction"].lower() for w in words), name


def test_label_conventions():
    assert get_task("ag_news").labels == ["World", "Sports", "Business", "Sci/Tech"]
    assert get_task("rte").prompt["verbalizers"] == {"entailment": "yes", "not_entailment": "no"}
    coarse = get_task("trec-coarse").labels
    fine = get_task("trec-fine").labels
    assert all(re.fullmatch(r"[A-Z]+:[a-z]+", f) and f.split(":")[0] in coarse for f in fine)
    assert "HUM:ind" in fine
    banking = get_task("banking77").labels
    assert banking[0] == "activate_my_card" and banking[-1] == "wrong_exchange_rate_for_cash_withdrawal"
    assert "Refund_not_showing_up" in banking and "reverted_card_payment?" in banking


def test_yaml_slips_are_caught_where_the_task_is_defined(tmp_path):
    spec = yaml.safe_load((TASK_DIR / "boolq.yaml").read_text())
    spec["labels"] = [False, True]  # what unquoted `[false, true]` becomes
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(spec))
    with pytest.raises(ClfbenchError, match=r"task boolq \(.*bad.yaml\): labels must be non-empty strings"):
        task_from_yaml(bad)
    spec = yaml.safe_load((TASK_DIR / "rte.yaml").read_text())
    spec["prompt"]["verbalizers"] = {"entailment": "yes", "not_entailment": "yes"}
    bad.write_text(yaml.safe_dump(spec))
    with pytest.raises(ClfbenchError, match="share a prompt verbalizer"):
        task_from_yaml(bad)


def test_unknown_task_names_the_known_ones():
    with pytest.raises(ClfbenchError, match="unknown task 'sst3'; known tasks: ag_news"):
        get_task("sst3")


def test_cli_lists_every_task_with_sizes_and_labels(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in out}
    assert set(EXPECTED) <= set(rows)
    assert "train 67,349, validation 872" in rows["sst2"] and "negative, positive" in rows["sst2"]
    assert "pair" in rows["anli_r1"] and "train 16,946, validation 1,000, test 1,000" in rows["anli_r1"]
    assert "77 labels" in rows["banking77"] and rows["banking77"].endswith(", ...")
    assert all(len(line) < 130 for line in out)


def test_unquoted_yes_no_labels_stay_label_names(tmp_path):
    """YAML 1.2 booleans (`io.yaml_load`): `[no, yes]` is two label names, not False/True."""
    own = tmp_path / "own.yaml"
    own.write_text("name: own\ndescription: a yes/no question\nlabels: [no, yes]\n"
                   "prompt: {verbalizers: {no: No, yes: Yes}}\n")
    task = task_from_yaml(own)
    assert task.labels == ["no", "yes"] and task.prompt["verbalizers"] == {"no": "No", "yes": "Yes"}
