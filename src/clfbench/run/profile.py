"""What the planner measures before it plans: the data, the machine, and a short probe of a family.

`DataProfile` and `MachineProfile` are plain dataclasses (tests build them directly); the
`profile_*` functions fill them from a `LabeledTexts` split and from this machine. A `Probe` is
the time one family took per training and per predicted example on a small slice, measured by
`measure_probe` around a callable, so the timing logic is tested with fake timings and the real
runner (a method fitted on a slice) is plugged in by the command.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from clfbench.data.texts import LabeledTexts, check_labeled

#: Texts whose length is measured: a seeded sample is enough for a median and a p95.
LENGTH_SAMPLE = 2000


@dataclass
class DataProfile:
    """The facts about a data set the cost model reads. Lengths are in tokens of the planned
    model's tokenizer, or whitespace words (`length_unit`) when no tokenizer was given."""

    train_rows: int
    n_classes: int
    validation_rows: int = 0
    test_rows: int = 0
    imbalance: float = 1.0  # largest class count / smallest (present) class count in train
    median_length: float = 20.0
    p95_length: float = 40.0
    length_unit: str = "words"
    pairs: bool = False

    @property
    def eval_rows(self) -> int:
        """Rows predicted for the report: the test split, else the validation split."""
        return self.test_rows or self.validation_rows


def text_lengths(data: LabeledTexts, count: Callable[[str], int] | None = None,
                 sample: int = LENGTH_SAMPLE, seed: int = 0) -> np.ndarray:
    """Length of each text (a pair counts both sides) in tokens via `count`, else in words."""
    count = count or (lambda s: len(s.split()))
    idx = np.arange(len(data))
    if len(idx) > sample:
        idx = np.sort(np.random.default_rng(seed).choice(idx, sample, replace=False))
    pairs = data.pairs
    return np.array([count(data.texts[i]) + (count(pairs[i]) if pairs is not None else 0)
                     for i in idx], dtype=float)


def profile_data(train: LabeledTexts, validation: LabeledTexts | None = None,
                 test: LabeledTexts | None = None, *,
                 count_tokens: Callable[[str], int] | None = None,
                 where: str = "train") -> DataProfile:
    """Profile the training split (and count the others' rows). One class only, an empty text
    or no rows is a one-line ClfbenchError naming `where`, before any work is planned."""
    check_labeled(train, where, need_two_classes=True)
    counts = train.class_counts()
    present = counts[counts > 0]
    lengths = text_lengths(train, count_tokens)
    return DataProfile(
        train_rows=len(train),
        n_classes=int((counts > 0).sum()),
        validation_rows=len(validation) if validation is not None else 0,
        test_rows=len(test) if test is not None else 0,
        imbalance=float(present.max() / present.min()),
        median_length=float(np.median(lengths)),
        p95_length=float(np.percentile(lengths, 95)),
        length_unit="tokens" if count_tokens else "words",
        pairs=train.is_pair,
    )


@dataclass
class MachineProfile:
    """Where the runs compute: CPU cores, memory and the GPU (None: no CUDA device)."""

    cpu_cores: int
    memory_gb: float
    gpu_name: str | None = None
    gpu_memory_gb: float = 0.0

    @property
    def has_gpu(self) -> bool:
        return self.gpu_name is not None


def profile_machine() -> MachineProfile:
    """This machine: the cores this process may use, physical memory, the first CUDA GPU."""
    import psutil

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    gpu, gpu_gb = None, 0.0
    try:
        import torch

        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            gpu, gpu_gb = props.name, props.total_memory / 2**30
    except ImportError:  # torch is a dependency; a broken install still profiles the CPU
        pass
    return MachineProfile(cores, psutil.virtual_memory().total / 2**30, gpu, gpu_gb)


@dataclass
class Probe:
    """Measured costs of one family on this data and machine: one-off start-up (model load),
    seconds per training text per epoch (one trial; setfit: the text with its pairs) and per
    predicted example, at the max_length the plan will use and on `device`."""

    family: str
    startup_s: float
    train_s_per_example: float
    predict_s_per_example: float
    device: str = "cpu"


#: A probe run: train on the first n examples of a slice and predict n, return (fit s, predict s).
ProbeRun = Callable[[int], tuple[float, float]]


def measure_probe(family: str, run: ProbeRun, sizes: tuple[int, int] = (32, 128),
                  device: str = "cpu") -> Probe:
    """Time `run` at two slice sizes and split each time into start-up + per-example cost
    (a straight line through the two points). Two sizes, not one, because a model's load time
    would otherwise count per example. When noise makes the larger slice no slower than the
    smaller one, the larger slice's whole time counts per example: an estimate too high, never
    a cost of zero that would let the planner schedule work it cannot finish."""
    small, large = sizes
    if not 0 < small < large:
        raise ValueError("measure_probe: sizes must be 0 < small < large")
    fit_a, pred_a = run(small)
    fit_b, pred_b = run(large)
    per_train, per_pred = (_slope(a, b, small, large) for a, b in ((fit_a, fit_b), (pred_a, pred_b)))
    startup = max(0.0, fit_a - per_train * small) + max(0.0, pred_a - per_pred * small)
    return Probe(family, startup, per_train, per_pred, device)


def _slope(t_small: float, t_large: float, small: int, large: int) -> float:
    """Seconds per example between two timings; the conservative bound when noise hides it."""
    if t_large > t_small:
        return (t_large - t_small) / (large - small)
    return max(0.0, t_large) / large
