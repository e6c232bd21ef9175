"""TF-IDF word 1-2-grams + logistic regression: the classic strong, cheap baseline."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from annotated_types import Ge
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from clfbench.data.texts import LabeledTexts, Texts
from clfbench.engines.sklearn_io import load_estimator, save_estimator
from clfbench.errors import ClfbenchError
from clfbench.methods.base import Classifier
from clfbench.methods.c_choice import C_GRID, C_PARAM, all_label_proba, check_c, choose_c
from clfbench.methods.params import CLASS_WEIGHT, SEED, Param

DEFAULT_C_GRID = (0.25, 1.0, 4.0, 16.0, 64.0)


class TfidfLogReg(Classifier):
    """TF-IDF (sublinear tf, 1-2-grams) then L2 logistic regression.

    `C` is chosen on the validation split from `c_grid` (a one-value grid is that value), or
    fixed by giving `C`; giving both is an error (see `c_choice`). The reported split is never
    seen.
    """

    name = "tfidf-lr"
    takes_model = False
    verbose: ClassVar[bool] = True  # progress bar of the C search; evaluate sets it per run

    ngram_max: int = Param(2, "longest word n-gram of the TF-IDF features", Ge(1))
    min_df: int = Param(1, "drop n-grams found in fewer training texts than this", Ge(1))
    max_features: int | None = Param(200_000, "keep the N most frequent n-grams (null: all)", Ge(1))
    C: float | None = C_PARAM
    c_grid: tuple[float, ...] = C_GRID.but(DEFAULT_C_GRID)
    class_weight: str | None = CLASS_WEIGHT
    seed: int = SEED
    # Accepted so that `--model` with tfidf-lr gets a clear refusal, not "unknown parameter".
    model: str | None = Param(None, "not taken: tfidf-lr learns from the training texts alone")

    def _check_params(self) -> None:
        self.c_grid = check_c(self.name, self.C, self.c_grid, DEFAULT_C_GRID)  # a bare number: a grid
        if self.model is not None:
            raise ClfbenchError(f"{self.name}: takes no model (got {self.model!r}); it learns from the "
                                "training texts alone")

    def _pipeline(self, C: float):
        return make_pipeline(
            TfidfVectorizer(
                ngram_range=(1, self.ngram_max),
                min_df=self.min_df,
                max_features=self.max_features,
                sublinear_tf=True,
            ),
            LogisticRegression(
                C=C, max_iter=2000, class_weight=self.class_weight, random_state=self.seed
            ),
        )

    def fit(self, train: LabeledTexts, validation: LabeledTexts | None = None) -> TfidfLogReg:
        self.labels = list(train.label_names)
        x_train = train.joined(" [SEP] ")
        x_val = validation.joined(" [SEP] ") if validation is not None else []
        best_c, self.pipeline_, by_c = choose_c(
            self.name, self.C, self.c_grid,
            fit=lambda c: self._pipeline(c).fit(x_train, train.labels),
            predict=lambda pipe: all_label_proba(pipe, len(self.labels), pipe.predict_proba(x_val)).argmax(1),
            validation=validation, n_labels=len(self.labels), verbose=self.verbose,
        )
        self.fit_info_ = {"C": best_c, "validation_macro_f1_by_C": by_c}
        return self

    def predict_proba(self, X: Texts) -> np.ndarray:
        return all_label_proba(self.pipeline_, len(self.labels), self.pipeline_.predict_proba(X.joined(" [SEP] ")))

    def n_parameters(self) -> tuple[int, int]:
        lr = self.pipeline_[-1]
        n = int(lr.coef_.size + lr.intercept_.size)
        return n, n

    def _save_state(self, path: Path) -> None:
        save_estimator(self.pipeline_, path, "pipeline")  # skops: loading runs no code

    def _load_state(self, path: Path) -> None:
        self.pipeline_ = load_estimator(path, "pipeline")
