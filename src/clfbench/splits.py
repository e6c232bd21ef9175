"""From the labeled splits a dataset has to the three every run uses: train, validation, test.

The rule is the same for every task and for a user's own files, and is recorded per run:
- train + validation + test: used as they are;
- train + test: validation is carved (stratified, seeded) out of train;
- train + validation (GLUE style, the official test is unlabeled): the official validation
  split is the reported `test`, and a validation split is carved out of train;
- a single labeled split: stratified, seeded test split, then validation carved from the rest.
Model selection only ever sees `validation`; metrics are reported on `test`.
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
) -> TaskSplits:
    """Apply the rule above to the labeled splits in `available` (keys: train/validation/test)."""
    unknown = set(available) - {"train", "validation", "test"}
    if unknown:
        raise ValueError(f"unknown split names {sorted(unknown)}")
    if not available:
        raise ClfbenchError("no labeled split to use")
    notes: dict[str, Any] = {"data_seed": data_seed}
    train, val, test = (available.get(k) for k in ("train", "validation", "test"))
    if train is None:
        # One labeled pool (e.g. BoolQ val only): carve the reported split out of it.
        pool = test if test is not None else val
        if (test is not None) and (val is not None):
            train, test, val = val, test, None
            notes["train_source"] = "validation file (no training split available)"
        else:
            train, test = stratified_split(pool, test_fraction, data_seed)
            notes["test_source"] = f"carved: {test_fraction:.0%} of the only labeled split"
            notes["train_source"] = "carved: the rest of the only labeled split"
    if test is None:
        test, val = val, None
        notes["test_source"] = notes.get("test_source", "official validation split")
    notes.setdefault("test_source", "official test split")
    notes.setdefault("train_source", "official train split")
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
    notes["sizes"] = {"train": len(train), "validation": len(val), "test": len(test)}
    return TaskSplits(train, val, test, notes)
