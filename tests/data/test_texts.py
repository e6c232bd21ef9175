"""clfbench.data.texts: the text containers and the seeded, stratified sampling everything uses."""

import numpy as np
import pytest

from clfbench.data.texts import (
    LabeledTexts,
    Texts,
    _allocate,
    check_labeled,
    stratified_indices,
    stratified_split,
)
from clfbench.errors import ClfbenchError


def labeled(labels, names=("a", "b", "c"), pairs=False):
    texts = [f"text {i}" for i in range(len(labels))]
    return LabeledTexts(texts, [f"pair {i}" for i in texts] if pairs else None,
                        np.asarray(labels), list(names), [f"id{i}" for i in range(len(labels))])


def test_texts_pairs_and_joined():
    x = Texts(["a", "b"], ["x", "y"])
    assert x.is_pair and len(x) == 2
    assert x.joined(" | ") == ["a | x", "b | y"]
    assert x.subset([1]).texts == ["b"] and x.subset([1]).pairs == ["y"]
    assert Texts(["a"]).joined() == ["a"]
    with pytest.raises(ValueError):
        Texts(["a", "b"], ["x"])


def test_labeled_subset_keeps_ids_names_and_counts():
    d = labeled([0, 1, 1, 2, 2, 2], pairs=True)
    sub = d.subset([5, 0])
    assert sub.ids == ["id5", "id0"] and sub.labels.tolist() == [2, 0]
    assert sub.pairs == ["pair text 5", "pair text 0"] and sub.label_names == ["a", "b", "c"]
    assert d.class_counts().tolist() == [1, 2, 3]
    # A class absent from a subset still has a count (0): metrics cover every label.
    assert labeled([0, 0, 1]).class_counts().tolist() == [2, 1, 0]


@pytest.mark.parametrize("counts,n", [([50, 30, 20], 10), ([97, 2, 1], 10), ([5, 5], 7), ([1000, 1], 3)])
def test_allocate_totals_and_proportions(counts, n):
    take = _allocate(np.array(counts), n, at_least_one=True, keep_one=False)
    assert take.sum() == n
    assert (take >= 1).all()  # every class present when n allows
    quota = np.array(counts) / sum(counts) * n
    # Largest remainder: within one of the quota, except that the examples given to rare
    # classes (lifted to one) come out of the larger classes.
    lifted = int((quota < 1).sum())
    assert (np.abs(take - quota)[quota >= 1] < 1 + lifted).all()


def test_allocate_keep_one_never_takes_a_class_last_example():
    take = _allocate(np.array([10, 1, 2]), 5, at_least_one=True, keep_one=True)
    assert take.tolist()[1] == 0 and take[2] <= 1 and take.sum() == 5


def test_stratified_indices_is_seeded_sorted_and_not_the_first_rows():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, size=1000)
    a = stratified_indices(labels, 100, seed=1)
    b = stratified_indices(labels, 100, seed=1)
    c = stratified_indices(labels, 100, seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len(a) == 100 and len(set(a)) == 100 and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, np.arange(100))
    full = np.bincount(labels) / len(labels)
    sub = np.bincount(labels[a], minlength=3) / 100
    assert np.abs(full - sub).max() <= 0.011  # proportions kept to within one example
    assert np.array_equal(stratified_indices(labels, 5000, seed=1), np.arange(1000))


def test_stratified_split_disjoint_stratified_and_keeps_rare_classes():
    labels = [0] * 80 + [1] * 19 + [2]  # class 2 has a single example
    rest, held = stratified_split(labeled(labels), 0.2, seed=3)
    assert len(rest) + len(held) == 100 and len(held) == 20
    assert not set(rest.ids) & set(held.ids)
    assert held.class_counts().tolist() == [16, 4, 0]
    assert rest.class_counts().tolist() == [64, 15, 1]  # train keeps its only class-2 example


def test_check_labeled_errors_name_where_and_row():
    with pytest.raises(ClfbenchError, match="train.csv: no examples"):
        check_labeled(labeled([]), "train.csv")
    d = labeled([0, 1])
    d.texts[1] = "   "
    with pytest.raises(ClfbenchError, match=r"train.csv: row 2 \(id1\): empty text"):
        check_labeled(d, "train.csv")
    with pytest.raises(ClfbenchError, match=r"only one class \('b'\)"):
        check_labeled(labeled([1, 1]), "train.csv", need_two_classes=True)
