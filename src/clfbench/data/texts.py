"""Texts and labels as they flow between tasks, methods and metrics; seeded splits.

`Texts` is what a classifier reads (the X of scikit-learn); `LabeledTexts` adds gold
labels. Label *names* are the identity of classes; ids index `label_names`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from clfbench.errors import ClfbenchError

INVALID = -1  # a prediction that matched no label (generation that could not be parsed)


@dataclass
class Texts:
    """Inputs to classify: single texts, or text pairs when `pairs` is set."""

    texts: list[str]
    pairs: list[str] | None = None

    def __post_init__(self) -> None:
        self.texts = list(self.texts)
        if self.pairs is not None:
            self.pairs = list(self.pairs)
            if len(self.pairs) != len(self.texts):
                raise ValueError("texts and pairs must have the same length")

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def is_pair(self) -> bool:
        return self.pairs is not None

    def subset(self, idx: Sequence[int] | np.ndarray) -> Texts:
        idx = [int(i) for i in idx]
        return Texts(
            [self.texts[i] for i in idx],
            None if self.pairs is None else [self.pairs[i] for i in idx],
        )

    def joined(self, sep: str = "\n") -> list[str]:
        """One string per example (pairs joined by `sep`), for methods that take one text."""
        if self.pairs is None:
            return list(self.texts)
        return [f"{a}{sep}{b}" for a, b in zip(self.texts, self.pairs)]


@dataclass
class LabeledTexts(Texts):
    """Texts with gold label ids (indices into `label_names`) and stable example ids."""

    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    label_names: list[str] = field(default_factory=list)
    ids: list[str] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.labels) != len(self.texts):
            raise ValueError("texts and labels must have the same length")
        if self.ids is None:
            self.ids = [str(i) for i in range(len(self.texts))]
        self.ids = [str(i) for i in self.ids]

    @property
    def n_labels(self) -> int:
        return len(self.label_names)

    def subset(self, idx: Sequence[int] | np.ndarray) -> LabeledTexts:
        idx = [int(i) for i in idx]
        x = Texts.subset(self, idx)
        return LabeledTexts(
            x.texts, x.pairs, self.labels[idx], list(self.label_names), [self.ids[i] for i in idx]
        )

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.labels[self.labels >= 0], minlength=self.n_labels)


def _allocate(
    counts: np.ndarray, n: int, *, at_least_one: bool, keep_one: bool
) -> np.ndarray:
    """How many examples to take from each class so that `n` in total follow `counts`.

    Largest-remainder apportionment of `n` over the classes. `at_least_one`: every class
    that can give an example gets one (when `n` allows). `keep_one`: never take a class's
    last example (used when carving a held-out split, so that train keeps every class).
    """
    counts = np.asarray(counts, dtype=int)
    cap = np.maximum(counts - 1, 0) if keep_one else counts.copy()
    n = min(n, int(cap.sum()))
    quota = counts / counts.sum() * n
    take = np.minimum(np.floor(quota).astype(int), cap)
    floor = np.zeros_like(take)
    if at_least_one and n >= int((cap > 0).sum()):
        floor = np.minimum(1, cap)
        take = np.maximum(take, floor)
    while take.sum() > n:  # the minimum of one overshot: trim the classes most above quota
        excess = np.where(take > floor, take - quota, -np.inf)
        take[int(np.argmax(excess))] -= 1
    while take.sum() < n:  # hand out the rest by largest remainder, within each class's cap
        gap = np.where(take < cap, quota - take, -np.inf)
        take[int(np.argmax(gap))] += 1
    return take


def stratified_indices(
    labels: np.ndarray, n: int, seed: int, *, keep_one: bool = False
) -> np.ndarray:
    """Pick `n` indices, seeded, keeping class proportions (every class gets >= 1 if n allows).

    Used for --max-train/--max-eval and for carving splits: never the first N rows.
    Returned indices are sorted, so the subset keeps the file's order.
    """
    labels = np.asarray(labels)
    if n >= len(labels) and not keep_one:
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    take = _allocate(counts, n, at_least_one=True, keep_one=keep_one)
    chosen = [
        rng.choice(np.flatnonzero(labels == c), size=int(k), replace=False)
        for c, k in zip(classes, take)
    ]
    return np.sort(np.concatenate(chosen)).astype(np.int64)


def stratified_split(
    data: LabeledTexts, fraction: float, seed: int
) -> tuple[LabeledTexts, LabeledTexts]:
    """Split into (rest, held_out) with `fraction` of each class held out, seeded.

    The held-out part never takes the last example of a class, so `rest` keeps every class.
    """
    n_held = max(1, int(round(len(data) * fraction)))
    held = stratified_indices(data.labels, n_held, seed, keep_one=True)
    mask = np.ones(len(data), dtype=bool)
    mask[held] = False
    return data.subset(np.flatnonzero(mask)), data.subset(held)


def check_labeled(data: LabeledTexts, where: str, *, need_two_classes: bool = False) -> None:
    """Reject data a fair comparison cannot use, naming the file or split."""
    if len(data) == 0:
        raise ClfbenchError(f"{where}: no examples")
    for i, t in enumerate(data.texts):
        if not isinstance(t, str) or not t.strip():
            raise ClfbenchError(f"{where}: row {i + 1} ({data.ids[i]}): empty text")
    if data.pairs is not None:
        for i, t in enumerate(data.pairs):
            if not isinstance(t, str) or not t.strip():
                raise ClfbenchError(f"{where}: row {i + 1} ({data.ids[i]}): empty text pair")
    if need_two_classes and len(np.unique(data.labels)) < 2:
        only = data.label_names[int(data.labels[0])] if len(data.labels) else "?"
        raise ClfbenchError(
            f"{where}: only one class ({only!r}) present; a classifier needs at least two"
        )
