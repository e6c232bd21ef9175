"""`C` or `c_grid` of a logistic regression, checked and chosen: shared by tfidf-lr, embed-probe
and setfit.

Either `C` is given (that value is used) or `c_grid` (each value is fitted and the best by
validation macro-F1 is kept; a one-value grid is that value). Giving both is refused, since
one of them would be silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from annotated_types import Ge

from clfbench.data.texts import LabeledTexts
from clfbench.errors import ClfbenchError
from clfbench.methods.params import Param
from clfbench.methods.schema import OWN_CHECK
from clfbench.progress import progress

#: The declarations of the methods that choose C (each gives c_grid its own default grid).
C_PARAM = Param(None, "fixed inverse regularisation of the logistic regression (default: chosen from c_grid)")
#: `check_c` checks it (a bare number is a one-value grid).
C_GRID = Param((), "C values tried on validation (a one-value grid is that value)", OWN_CHECK)
MAX_ITER = Param(5000, "logistic regression solver iterations", Ge(1))


def _positive(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0


def check_c(method: str, C: Any, c_grid: Any, default: Sequence[float]) -> tuple[float, ...]:
    """`c_grid` as a tuple of floats (a bare number is a one-value grid), with `C` checked.

    `C` together with a `c_grid` other than `default` is an error: one would be ignored.
    """
    if C is not None and not _positive(C):
        raise ClfbenchError(f"{method}: C must be a positive number, got {C!r}")
    grid = (c_grid,) if _positive(c_grid) else c_grid
    if not isinstance(grid, (list, tuple)) or not grid or not all(_positive(c) for c in grid):
        raise ClfbenchError(f"{method}: c_grid must be a non-empty list of positive numbers, got {c_grid!r}")
    grid = tuple(float(c) for c in grid)
    if C is not None and grid != tuple(float(c) for c in default):
        raise ClfbenchError(f"{method}: give C (one value) or c_grid (values to choose from on "
                            f"validation), not both")
    return grid


def choose_c(
    method: str,
    C: float | None,
    c_grid: Sequence[float],
    fit: Callable[[float], Any],
    predict: Callable[[Any], np.ndarray],
    validation: LabeledTexts | None,
    n_labels: int,
    verbose: bool = False,
) -> tuple[float, Any, dict[str, float]]:
    """(C used, the model fitted with it, validation macro-F1 by C) for `C` or `c_grid`.

    Validation macro-F1 is `metrics.macro_f1` (over the classes present in validation), the
    definition of the reported number.

    `fit(c)` trains a model, `predict(model)` gives its label ids on `validation`. One candidate
    is used as is (no validation needed). Several need a validation split; without one, C = 1.0
    (scikit-learn's default) is used when the grid holds it (the default grids do), else it is
    an error, so that the C trained with is always one the user allowed. `verbose`: a
    progress bar over the grid.
    """
    from clfbench.evaluation.metrics import macro_f1

    grid = [float(C)] if C is not None else [float(c) for c in c_grid]
    if len(grid) > 1 and (validation is None or not len(validation)):
        if 1.0 not in grid:
            raise ClfbenchError(f"{method}: choosing C from c_grid {grid} needs a validation split; give C")
        grid = [1.0]
    if len(grid) == 1:
        return grid[0], fit(grid[0]), {}
    by_c: dict[str, float] = {}
    best: tuple[float, Any] | None = None
    for c in progress(grid, f"{method}: choosing C on validation", verbose):
        model = fit(c)
        by_c[str(c)] = macro_f1(np.asarray(validation.labels), predict(model))
        if best is None or by_c[str(c)] > by_c[str(best[0])]:
            best = (c, model)
    return best[0], best[1], by_c


def all_label_proba(estimator: Any, n_labels: int, proba: np.ndarray) -> np.ndarray:
    """sklearn's predict_proba columns (the classes seen in train) mapped onto all labels:
    a class missing from a small training draw gets probability 0, not a shifted column."""
    out = np.zeros((proba.shape[0], n_labels))
    out[:, estimator.classes_] = proba
    return out
