"""TF-IDF word 1-2-grams + logistic regression: the classic strong, cheap baseline."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from clfbench.data import LabeledTexts, Texts
from clfbench.methods.base import Classifier


class TfidfLogReg(Classifier):
    """TF-IDF (sublinear tf, 1-2-grams) then L2 logistic regression.

    `C` is chosen on the validation split from `c_grid` when a validation split is given;
    the reported split is never seen.
    """

    name = "tfidf-lr"

    def __init__(
        self,
        ngram_max: int = 2,
        min_df: int = 1,
        max_features: int | None = 200_000,
        C: float | None = None,
        c_grid: tuple[float, ...] = (0.25, 1.0, 4.0, 16.0, 64.0),
        class_weight: str | None = None,
        seed: int = 99,
        model: str | None = None,
    ) -> None:
        self.ngram_max = ngram_max
        self.min_df = min_df
        self.max_features = max_features
        self.C = C
        self.c_grid = tuple(c_grid)
        self.class_weight = class_weight
        self.seed = seed
        self.model = model  # unused: kept so that every method accepts --model uniformly

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
        from sklearn.metrics import f1_score

        self.labels = list(train.label_names)
        x_train = train.joined(" [SEP] ")
        grid = [self.C] if self.C is not None else list(self.c_grid)
        scores = {}
        if len(grid) > 1 and validation is not None and len(validation):
            for c in grid:
                pipe = self._pipeline(c).fit(x_train, train.labels)
                pred = self._decode(pipe, pipe.predict_proba(validation.joined(" [SEP] "))).argmax(1)
                scores[c] = f1_score(validation.labels, pred, average="macro")
            best_c = max(grid, key=lambda c: scores[c])
        else:
            best_c = grid[0] if self.C is not None else 1.0
        self.pipeline_ = self._pipeline(best_c).fit(x_train, train.labels)
        self.fit_info_ = {"C": best_c, "validation_macro_f1_by_C": {str(k): v for k, v in scores.items()}}
        return self

    def _decode(self, pipe, proba: np.ndarray) -> np.ndarray:
        """Map the columns of sklearn's proba (classes seen in train) onto all labels."""
        out = np.zeros((proba.shape[0], len(self.labels)))
        out[:, pipe.classes_] = proba
        return out

    def predict_proba(self, X: Texts) -> np.ndarray:
        return self._decode(self.pipeline_, self.pipeline_.predict_proba(X.joined(" [SEP] ")))

    def n_parameters(self) -> tuple[int, int]:
        lr = self.pipeline_[-1]
        n = int(lr.coef_.size + lr.intercept_.size)
        return n, n

    def _save_state(self, path: Path) -> None:
        joblib.dump(self.pipeline_, path / "pipeline.joblib")

    def _load_state(self, path: Path) -> None:
        self.pipeline_ = joblib.load(path / "pipeline.joblib")
