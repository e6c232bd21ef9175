"""From the labeled splits a dataset has to the three every run uses: train, validation, test.

The rule is the same for every task and for a user's own files, and is recorded per run:
- train + validation + test: used as they are;
- train + test: validation is carved (stratified, seeded) out of train;
- train + validation (GLUE style, the official test is unlabeled): the official validation
  split is the reported `test`, and a validation split is carved out of train;
- validation + test but no train (ANLI R1 here): validation is the training pool, test is
  reported, and a validation split is carved out of the pool;
- a single labeled split: stratified, seeded test split, then validation carved from the rest.
Model selection only ever sees `validation`; metrics are reported on `test`, which no method
sees before evaluation. Carved held-out parts never take a class's last example, so train
keeps every class. Where the splits came from is written to the run's notes.
`--max-train` / `--max-eval` subsample stratified with the data seed, never the first N rows.
Learning curves (`--train-sizes`) cut train further with `train_subset`: nested, seeded,
stratified subsets of the (possibly `--max-train`-capped) training pool.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clfbench.data.texts import LabeledTexts, stratified_indices, stratified_split
from clfbench.errors import ClfbenchError


@dataclass
class TaskSplits:
    train: LabeledTexts
    validation: LabeledTexts
    test: LabeledTexts
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def label_names(self) -> list[str]:
        return self.train.label_names


#: A validation split smaller than this gets a warning (epoch selection, tuning and the
#: degenerate-run check all read it).
MIN_VALIDATION = 10


def resolve_splits(
    available: dict[str, LabeledTexts],
    data_seed: int,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.3,
    max_train: int | None = None,
    max_eval: int | None = None,
    source: str = "data",
) -> TaskSplits:
    """Apply the rule above to the labeled splits in `available` (keys: train/validation/test).

    Every carve and subsample draws from `data_seed` (offset per step), so all methods and
    training seeds of a comparison see exactly the same examples. A split that comes out
    empty is a ClfbenchError naming `source` (the file or task), before any method runs.
    """
    unknown = set(available) - {"train", "validation", "test"}
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}")
    if not available:
        raise ClfbenchError("no labeled split to use")
    train, val, test = (available.get(k) for k in ("train", "validation", "test"))
    notes: dict[str, Any] = {"data_seed": data_seed}
    carved_test = f"carved: {test_fraction:.0%} of the only labeled split, stratified"

    if train is None and val is not None and test is not None:
        # Validation + test only (ANLI here): validation becomes the training pool.
        train, val = val, None
        notes["train_source"] = "official validation split (no training split available)"
        notes["test_source"] = "official test split"
    elif train is None:
        # One labeled split (BoolQ val, AG News test here): carve the reported split out of it.
        pool = val if val is not None else test
        train, test = stratified_split(pool, test_fraction, data_seed)
        val = None
        notes["train_source"] = "carved: the rest of the only labeled split"
        notes["test_source"] = carved_test
    elif val is None and test is None:
        train, test = stratified_split(train, test_fraction, data_seed)
        notes["train_source"] = "carved: the rest of the only labeled split"
        notes["test_source"] = carved_test
    elif test is None:
        # GLUE style: the official test labels are hidden, the official validation is reported.
        test, val = val, None
        notes["train_source"] = "official train split"
        notes["test_source"] = "official validation split (official test labels are not public)"
    else:
        notes["train_source"] = "official train split"
        notes["test_source"] = "official test split"

    if val is None:
        train, val = stratified_split(train, validation_fraction, data_seed + 1)
        notes["validation_source"] = f"carved: {validation_fraction:.0%} of train, stratified"
    else:
        notes["validation_source"] = "official validation split"

    if max_train is not None and max_train < len(train):
        k = len(np.unique(train.labels))
        if max_train < 2 * k:  # the same floor as a training file's (io.check_class_count)
            raise ClfbenchError(
                f"{source}: --max-train {max_train} (max_train) is fewer than two training examples "
                f"per class: the training split has {k} classes, so use at least {2 * k}")
        train = train.subset(stratified_indices(train.labels, max_train, data_seed + 2))
        notes["max_train"] = max_train
    if max_eval is not None:
        if max_eval < len(test):
            test = test.subset(stratified_indices(test.labels, max_eval, data_seed + 3))
            notes["max_eval"] = max_eval
        if max_eval < len(val):
            val = val.subset(stratified_indices(val.labels, max_eval, data_seed + 4))
            notes["max_eval"] = max_eval
    notes["sizes"] = {"train": len(train), "validation": len(val), "test": len(test)}
    for name in ("test", "validation", "train"):
        if not notes["sizes"][name]:
            raise ClfbenchError(
                f"{source}: the {name} split is empty: {len(train)} training examples in "
                f"{len(set(train.labels.tolist()))} classes, and a held-out split never takes a "
                f"class's last example; give a {name} file or more examples per class")
    if len(val) < MIN_VALIDATION:  # printed by the runner once every check has passed
        notes["warnings"] = [
            f"{source}: the validation split has only {len(val)} example(s) "
            f"({notes['validation_source']}): too few to select epochs, tune or tell a run from "
            "chance; give a validation file or more data"]
    return TaskSplits(train, val, test, notes)


# --- learning curves ---------------------------------------------------------------------------
#: Sizes realising fewer training examples than this get several draws (small samples vary most).
SMALL_SIZE = 100
#: Draws (different seeded subsets) at a small size; larger sizes and `all` get one.
SMALL_SIZE_DRAWS = 5


def size_counts(labels: np.ndarray, size: str) -> np.ndarray:
    """Examples per class (classes in id order) that a learning-curve size takes from a pool.

    "N/class": min(N, available) of each class. "N": N examples allocated to classes in
    proportion to their counts, at least one each, by Sainte-Lague's divisor method applied
    one example at a time, so the count of every class never falls as N grows (nested sizes
    stay nested; largest-remainder rounding can lose one). "all": the whole pool.
    """
    labels = np.asarray(labels)
    k = int(labels.max()) + 1 if len(labels) else 0
    avail = np.bincount(labels, minlength=k)
    if size == "all":
        return avail
    if size.endswith("/class"):
        return np.minimum(avail, int(size.split("/")[0]))
    n = int(size)
    present = avail > 0
    if n >= avail.sum():
        return avail
    if n < present.sum():
        raise ClfbenchError(f"train_size {size}: fewer examples than the {int(present.sum())} classes "
                            "of the training split; use at least one per class")
    take = present.astype(np.int64)
    heap = [(-(avail[c] / (2 * take[c] + 1)), c) for c in range(k) if present[c] and take[c] < avail[c]]
    heapq.heapify(heap)
    for _ in range(n - int(take.sum())):
        _, c = heapq.heappop(heap)
        take[c] += 1
        if take[c] < avail[c]:
            heapq.heappush(heap, (-(avail[c] / (2 * take[c] + 1)), c))
    return take


def train_subset(splits: TaskSplits, size: str | None, draw: int = 0) -> TaskSplits:
    """The splits with train cut to a learning-curve `size` (None: unchanged).

    Nested and seeded: each class of the pool is shuffled once per (data seed, draw), and a
    size takes the first `size_counts` examples of each class's shuffle, so within one draw a
    smaller size is contained in a larger one wherever it takes no more of any class (always
    between N/class sizes, and between N sizes). Stratified by construction. Validation and
    test are untouched: every size selects on the same validation split and is scored on the
    same test examples. The size, draw and realised count are added to the notes.
    """
    if size is None:
        return splits
    train = splits.train
    seed = int(splits.notes.get("data_seed", 0))
    rng = np.random.default_rng([seed, 5, draw])  # 5: after the splits' own offsets 0-4
    counts = size_counts(train.labels, size)
    chosen = [rng.permutation(np.flatnonzero(train.labels == c))[:counts[c]] for c in range(len(counts))]
    idx = np.sort(np.concatenate(chosen)).astype(np.int64) if chosen else np.arange(0)
    n = len(idx)
    notes = {**splits.notes, "sizes": {**splits.notes.get("sizes", {}), "train": n},
             "train_size": {"size": size, "draw": draw, "n": n, "pool": len(train),
                            "rule": f"nested stratified subset of the training pool; several draws "
                                    f"(default {SMALL_SIZE_DRAWS}) below {SMALL_SIZE} examples"}}
    return TaskSplits(train.subset(idx), splits.validation, splits.test, notes)


def size_draws_needed(n: int, pool: int) -> bool:
    """Several draws for a size: fewer than SMALL_SIZE examples, and not the whole pool."""
    return n < SMALL_SIZE and n < pool
