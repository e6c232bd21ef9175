"""clfbench.data.splits: from whatever labeled splits exist to train / validation / test."""

import numpy as np
import pytest

from clfbench.data.splits import resolve_splits
from clfbench.data.texts import LabeledTexts
from clfbench.errors import ClfbenchError


def make(prefix, n, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.sort(rng.integers(0, n_classes, size=n))  # sorted: the first N are one class
    return LabeledTexts([f"{prefix} {i}" for i in range(n)], None, labels,
                        [f"c{k}" for k in range(n_classes)], [f"{prefix}:{i}" for i in range(n)])


def ids(d):
    return set(d.ids)


def assert_disjoint(s):
    assert not ids(s.train) & ids(s.validation)
    assert not ids(s.train) & ids(s.test)
    assert not ids(s.validation) & ids(s.test)


def test_all_three_used_as_they_are():
    s = resolve_splits({"train": make("tr", 50), "validation": make("va", 20), "test": make("te", 30)}, 1)
    assert (len(s.train), len(s.validation), len(s.test)) == (50, 20, 30)
    assert s.notes["validation_source"] == "official validation split"


def test_train_and_test_carve_validation_from_train_only():
    train, test = make("tr", 200), make("te", 40)
    s = resolve_splits({"train": train, "test": test}, 7)
    assert ids(s.test) == ids(test)  # the reported split is untouched
    assert ids(s.train) | ids(s.validation) == ids(train)
    assert len(s.validation) == 20 and "carved: 10% of train" in s.notes["validation_source"]
    assert_disjoint(s)


def test_glue_style_reports_official_validation():
    train, val = make("tr", 100), make("va", 30)
    s = resolve_splits({"train": train, "validation": val}, 7)
    assert ids(s.test) == ids(val) and "official validation" in s.notes["test_source"]
    assert ids(s.train) | ids(s.validation) == ids(train)
    assert_disjoint(s)


def test_validation_and_test_only_train_on_validation():
    val, test = make("dev", 100), make("te", 50)
    s = resolve_splits({"validation": val, "test": test}, 7)
    assert ids(s.test) == ids(test)
    assert ids(s.train) | ids(s.validation) == ids(val)
    assert "no training split" in s.notes["train_source"]


@pytest.mark.parametrize("only", ["train", "validation", "test"])
def test_single_split_is_carved_stratified(only):
    pool = make("x", 300)
    s = resolve_splits({only: pool}, 5)
    assert len(s.test) == 90 and len(s.validation) == 21 and len(s.train) == 189
    assert ids(s.train) | ids(s.validation) | ids(s.test) == ids(pool)
    assert_disjoint(s)
    share = pool.class_counts() / len(pool)
    for part in (s.train, s.validation, s.test):
        assert np.abs(part.class_counts() / len(part) - share).max() < 0.03
    assert "carved" in s.notes["test_source"]


def test_same_data_seed_same_splits_other_seed_other_splits():
    pool = make("x", 300)
    a, b, c = (resolve_splits({"test": pool}, seed) for seed in (3, 3, 4))
    assert a.test.ids == b.test.ids and a.validation.ids == b.validation.ids
    assert a.test.ids != c.test.ids


def test_max_train_and_max_eval_are_stratified_seeded_not_first_rows():
    train, test = make("tr", 600), make("te", 300)
    s = resolve_splits({"train": train, "test": test}, 11, max_train=60, max_eval=30)
    assert (len(s.train), len(s.test), len(s.validation)) == (60, 30, 30)
    assert s.notes["max_train"] == 60 and s.notes["max_eval"] == 30
    assert s.notes["sizes"] == {"train": 60, "validation": 30, "test": 30}
    # Labels are sorted in the pool, so "the first N rows" would hold a single class.
    assert s.test.ids != test.ids[:30] and len(set(s.test.labels)) == 3
    assert np.abs(s.test.class_counts() - test.class_counts() * 30 / 300).max() <= 1
    again = resolve_splits({"train": train, "test": test}, 11, max_train=60, max_eval=30)
    assert again.train.ids == s.train.ids and again.test.ids == s.test.ids
    other = resolve_splits({"train": train, "test": test}, 12, max_train=60, max_eval=30)
    assert other.train.ids != s.train.ids


def test_no_split_at_all_is_an_error():
    with pytest.raises(ClfbenchError):
        resolve_splits({}, 1)
    with pytest.raises(ValueError):
        resolve_splits({"dev": make("x", 10)}, 1)
