"""Every task's local loader on the real files in ../shared/datasets.

Row counts and label distributions are the ones each dataset's SOURCE.md gives.
"""

import numpy as np
import pytest

from clfbench.data.tasks import get_task
from clfbench.data.tasks.loading import load_local, load_task

# split -> {label: count}, from the SOURCE.md files.
SOURCE_COUNTS = {
    "sst2": {"train": {"negative": 29780, "positive": 37569},
             "validation": {"negative": 428, "positive": 444}},
    "rte": {"train": {"entailment": 1249, "not_entailment": 1241},
            "validation": {"entailment": 146, "not_entailment": 131}},
    "boolq": {"validation": {"true": 2033, "false": 1237}},
    "anli_r1": {"validation": {"entailment": 334, "neutral": 333, "contradiction": 333},
                "test": {"entailment": 334, "neutral": 333, "contradiction": 333}},
    "ag_news": {"test": {"World": 1900, "Sports": 1900, "Business": 1900, "Sci/Tech": 1900}},
    "trec-coarse": {"train": {"ABBR": 86, "DESC": 1162, "ENTY": 1250, "HUM": 1223, "LOC": 835, "NUM": 896},
                    "test": {"ABBR": 9, "DESC": 138, "ENTY": 94, "HUM": 65, "LOC": 81, "NUM": 113}},
    "cfpb": {"train": {"debt_collection": 174, "credit_reporting": 160, "mortgages_and_loans": 148,
                       "credit_card": 130, "retail_banking": 88},
             "test": {"credit_reporting": 73, "mortgages_and_loans": 65, "debt_collection": 62,
                      "credit_card": 60, "retail_banking": 40}},
}
SMALL = ["rte", "boolq", "anli_r1", "ag_news", "trec-coarse", "trec-fine", "cfpb"]


@pytest.fixture(scope="module")
def raw(datasets_dir):
    """The official splits as read from disk, each task once (sst2 train is 67k rows)."""
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = load_local(get_task(name), datasets_dir)
        return cache[name]

    return get


@pytest.fixture(scope="module")
def resolved(datasets_dir):
    cache = {}

    def get(name, seed=99):
        if (name, seed) not in cache:
            cache[name, seed] = load_task(get_task(name), datasets_dir, data_seed=seed)
        return cache[name, seed]

    return get


def counts(data):
    return {n: int(c) for n, c in zip(data.label_names, data.class_counts()) if c}


@pytest.mark.parametrize("name", sorted(SOURCE_COUNTS))
def test_rows_and_label_distribution_match_source(raw, name):
    splits = raw(name)
    assert set(splits) == set(SOURCE_COUNTS[name])
    for split, expected in SOURCE_COUNTS[name].items():
        assert counts(splits[split]) == expected, (name, split)
        size = get_task(name).sizes.get(split)
        if size is not None and name not in ("boolq", "ag_news"):  # full official splits here
            assert len(splits[split]) == size


def test_trec_fine_has_50_classes_in_train_and_42_in_test(raw):
    splits = raw("trec-fine")
    assert len(splits["train"]) == 5452 and len(splits["test"]) == 500
    assert len(counts(splits["train"])) == 50 and len(counts(splits["test"])) == 42
    assert sorted(counts(splits["train"]).values())[:2] == [4, 4]  # the long tail
    coarse = raw("trec-coarse")["train"]
    assert splits["train"].texts == coarse.texts  # same questions, finer labels


@pytest.mark.parametrize("name", SMALL + ["sst2"])
def test_resolved_splits_are_disjoint_stratified_and_seeded(resolved, name):
    s = resolved(name)
    train, val, test = set(s.train.ids), set(s.validation.ids), set(s.test.ids)
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train) == len(s.train) and len(test) == len(s.test)  # ids are unique
    assert set(counts(s.train)) == set(s.label_names)  # train has every class
    share = s.train.class_counts() / len(s.train)
    val_share = s.validation.class_counts() / len(s.validation)
    big = s.train.class_counts() >= 50
    assert np.abs(share - val_share)[big].max() < 0.02  # carved validation is stratified
    assert s.notes["sizes"] == {"train": len(s.train), "validation": len(s.validation), "test": len(s.test)}
    assert s.notes["origin"].startswith("local files in")


@pytest.mark.parametrize("name", ["boolq", "ag_news", "cfpb"])
def test_data_seed_decides_the_carve(resolved, name):
    a, b = resolved(name, 99), resolved(name, 100)
    assert a.validation.ids != b.validation.ids
    if "carved" in a.notes["test_source"]:
        assert a.test.ids != b.test.ids


def test_same_seed_same_splits(datasets_dir, resolved):
    first = resolved("ag_news", 99)
    second = load_task(get_task("ag_news"), datasets_dir, data_seed=99)
    assert first.train.ids == second.train.ids and first.test.ids == second.test.ids


def test_reported_split_is_the_official_one_when_it_exists(raw, resolved):
    assert set(resolved("sst2").test.ids) == set(raw("sst2")["validation"].ids)  # GLUE dev
    assert set(resolved("anli_r1").test.ids) == set(raw("anli_r1")["test"].ids)
    anli = resolved("anli_r1")
    assert "no training split" in anli.notes["train_source"]
    assert set(anli.train.ids) | set(anli.validation.ids) == set(raw("anli_r1")["validation"].ids)
    assert set(resolved("trec-fine").test.ids) == set(raw("trec-fine")["test"].ids)
    boolq = resolved("boolq")
    assert boolq.notes["test_source"].startswith("carved: 30%") and len(boolq.test) == 981


def test_texts_are_clean(raw):
    cfpb = raw("cfpb")
    for split in cfpb.values():
        assert not any("Narrative:" in t or "Product:" in t or "Comment:" in t for t in split.texts)
    assert raw("cfpb")["test"].texts[0].startswith("xxxxxxxx unemployment card")
    news = raw("ag_news")["test"]
    assert not any("\\" in t or "#36;" in t or "&lt;" in t for t in news.texts)
    assert any("$10 million" in t for t in news.texts)
    rte = raw("rte")["train"]
    assert rte.pairs is not None and rte.texts[0].startswith("No Weapons of Mass Destruction")
    anli = raw("anli_r1")["validation"]
    assert anli.pairs[0] == "Form and meaning are the only aspects of language linguistics is concerned with."
    assert anli.label_names[anli.labels[0]] == "contradiction"  # 'c' in the file


def test_max_train_and_max_eval_on_real_data(datasets_dir):
    s = load_task(get_task("trec-fine"), datasets_dir, data_seed=5, max_train=500, max_eval=100)
    assert (len(s.train), len(s.validation), len(s.test)) == (500, 100, 100)
    assert len(counts(s.train)) == 50  # every class kept, even the 4-example ones
    full = load_task(get_task("trec-fine"), datasets_dir, data_seed=5)
    assert set(s.train.ids) <= set(full.train.ids) and set(s.test.ids) <= set(full.test.ids)
    assert s.train.ids != full.train.ids[:500]
