"""Frozen-encoder embeddings + logistic regression (the MTEB classification protocol).

Each text (or text pair, encoded as a tokenizer pair) is embedded as the mean of the
encoder's last hidden states over the attention mask, L2-normalised by default (what
sentence-transformers models such as all-MiniLM-L6-v2 do), then a scikit-learn
LogisticRegression is trained on the training embeddings with `C` chosen on validation.
Embedding runs through the shared batching engine (`inference.predict_logits`) by wrapping
the encoder so that its "logits" are the pooled embeddings.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from clfbench.data.texts import LabeledTexts, Texts
from clfbench.engines.device import autocast, pick_device, precision_name
from clfbench.engines.inference import predict_logits
from clfbench.engines.models import ModelRef, hub_revision, load, load_tokenizer, resolve_model
from clfbench.engines.sklearn_io import load_estimator, save_estimator
from clfbench.methods.base import Classifier
from clfbench.methods.c_choice import C_GRID, C_PARAM, MAX_ITER, all_label_proba, check_c, choose_c
from clfbench.methods.params import BATCH_SIZE, CLASS_WEIGHT, DEVICE, MAX_LENGTH, MODEL, SEED, Param
from clfbench.progress import progress


class _Output:
    def __init__(self, logits: torch.Tensor) -> None:
        self.logits = logits


class MeanPooled(torch.nn.Module):
    """An encoder whose forward returns mean-pooled last hidden states as `.logits`."""

    def __init__(self, encoder: Any, normalize: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.normalize = normalize

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> _Output:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              **extra).last_hidden_state.float()
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return _Output(pooled)


DEFAULT_C_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0)


class EmbeddingProbe(Classifier):
    """Frozen encoder, mean-pooled embeddings, logistic regression with C tuned on validation.

    `C` fixes the regularisation; otherwise it is chosen from `c_grid` on validation (a
    one-value grid is that value); giving both is an error (see `c_choice`).
    """

    name = "embed-probe"
    model_params = ("model",)
    verbose: ClassVar[bool] = True

    model: str | None = MODEL
    C: float | None = C_PARAM
    c_grid: tuple[float, ...] = C_GRID.but(DEFAULT_C_GRID)
    max_iter: int = MAX_ITER
    normalize: bool = Param(True, "L2-normalise the embeddings before the probe")
    class_weight: str | None = CLASS_WEIGHT
    max_length: int = MAX_LENGTH
    batch_size: int = BATCH_SIZE.but(64)
    device: str | None = DEVICE
    seed: int = SEED

    def _check_params(self) -> None:
        self.c_grid = check_c(self.name, self.C, self.c_grid, DEFAULT_C_GRID)  # a bare number: a grid

    # --- encoder ------------------------------------------------------------------------------
    def _load_encoder(self, ref: ModelRef, revision: str | None = None) -> None:
        from transformers import AutoModel

        kw = {"revision": revision} if revision else {}
        self.tokenizer_ = load_tokenizer(ref, **kw)
        encoder = load(AutoModel.from_pretrained, ref, **kw)
        self.device_ = pick_device(self.device)
        self.encoder_ = MeanPooled(encoder, self.normalize).to(self.device_).eval()
        self.ref_ = ref
        self.revision_ = revision or (hub_revision(encoder) if ref.kind == "hub" else None)

    def embed(self, X: Texts) -> np.ndarray:
        """(n, hidden) pooled embeddings."""
        with autocast(self.device_):
            out = predict_logits(self.encoder_, self.tokenizer_, X, self.batch_size,
                                 self.max_length, self.device_)
        return out.astype(np.float64)

    def _embed_shown(self, X: Texts, split: str) -> np.ndarray:
        """`embed(X)` in chunks under a progress bar when `verbose` (fit only: the timed
        predictions go through `embed` directly)."""
        chunk = 16 * self.batch_size
        if not self.verbose or len(X) <= chunk:
            return self.embed(X)
        starts = range(0, len(X), chunk)
        return np.concatenate([self.embed(X.subset(range(i, min(i + chunk, len(X)))))
                               for i in progress(starts, f"{self.name}: embedding {split}")])

    # --- fit / predict ------------------------------------------------------------------------------
    def _lr(self, C: float):
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=C, max_iter=self.max_iter, class_weight=self.class_weight,
                                  random_state=self.seed)

    def fit(self, train: LabeledTexts, validation: LabeledTexts | None = None) -> EmbeddingProbe:
        self.labels = list(train.label_names)
        self._load_encoder(resolve_model(self.model, self.name))
        x_train = self._embed_shown(train, "train")
        x_val = functools.cache(lambda: self._embed_shown(validation, "validation"))  # only when C is chosen
        self.C_, self.lr_, by_c = choose_c(
            self.name, self.C, self.c_grid,
            fit=lambda c: self._lr(c).fit(x_train, train.labels),
            predict=lambda lr: all_label_proba(lr, len(self.labels), lr.predict_proba(x_val())).argmax(1),
            validation=validation, n_labels=len(self.labels), verbose=self.verbose,
        )
        self.fit_info_ = {
            "C": self.C_, "validation_macro_f1_by_C": by_c,
            "embedding_dim": int(x_train.shape[1]), "pooling": "mean over attention mask",
            "normalize": self.normalize,
            "model": {"name": self.ref_.name, "kind": self.ref_.kind, "revision": self.revision_},
            "max_length": self.max_length, "device": str(self.device_),
            "precision": precision_name(self.device_),
        }
        return self

    def predict_proba(self, X: Texts) -> np.ndarray:
        return all_label_proba(self.lr_, len(self.labels), self.lr_.predict_proba(self.embed(X)))

    def n_parameters(self) -> tuple[int, int]:
        head = int(self.lr_.coef_.size + self.lr_.intercept_.size)
        return sum(p.numel() for p in self.encoder_.parameters()) + head, head

    def inference_info(self) -> dict[str, Any]:
        return {"device": str(self.device_), "precision": precision_name(self.device_),
                "batch_size": self.batch_size, "max_length": self.max_length}

    # --- persistence --------------------------------------------------------------------------------
    # The encoder is frozen, so a hub id (with the commit it was loaded from) or the `minilm`
    # alias reloads it exactly and only the regression is saved. A local folder is copied
    # (save_pretrained), since the folder may change or vanish after the run.
    def _save_state(self, path: Path) -> None:
        save_estimator(self.lr_, path, "logreg")  # skops: loading runs no code
        state = {"C": self.C_, "encoder": {"name": self.ref_.name, "kind": self.ref_.kind,
                                           "revision": self.revision_},
                 "fit_info": self.fit_info_}
        if not self.ref_.portable:
            self.encoder_.encoder.save_pretrained(path / "encoder")
            self.tokenizer_.save_pretrained(path / "encoder")
            state["encoder"]["saved"] = "encoder"
        (path / "state.json").write_text(json.dumps(state, indent=2, default=str))

    def _load_state(self, path: Path) -> None:
        state = json.loads((path / "state.json").read_text())
        enc = state["encoder"]
        if enc.get("saved"):
            ref = ModelRef(enc["name"], str(path / enc["saved"]), "folder")
        else:
            ref = resolve_model(enc["name"], self.name)
        self._load_encoder(ref, enc.get("revision") if ref.kind == "hub" else None)
        self.ref_ = ModelRef(enc["name"], ref.source, enc["kind"])
        self.lr_ = load_estimator(path, "logreg")
        self.C_ = state["C"]
        self.fit_info_ = state.get("fit_info", {})
