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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clfbench.data import LabeledTexts, stratified_indices, stratified_split
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
    return TaskSplits(train, val, test, notes)
