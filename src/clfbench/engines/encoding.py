"""Texts to model inputs: one fast-tokenizer call over all texts, then batches cut by token
length and padded only to their own longest row; the same for the torch and ONNX engines."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from clfbench.data.texts import Texts
from clfbench.errors import ClfbenchError

#: A forward pass: padded int64 arrays by input name -> float32 logits (batch, n_labels).
Forward = Callable[[dict[str, np.ndarray]], np.ndarray]


def tokenize(tokenizer, X: Texts, max_length: int, **kw):
    """Tokenize single texts or pairs with the run's truncation policy (longest-first)."""
    return tokenizer(
        X.texts, X.pairs, truncation=True, max_length=max_length, **kw
    ) if X.pairs is not None else tokenizer(X.texts, truncation=True, max_length=max_length, **kw)


def model_input_names(model) -> list[str]:
    """The tokenizer outputs this model's forward takes (token_type_ids only where used)."""
    params = inspect.signature(model.forward).parameters
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in params]
    if not getattr(model.config, "type_vocab_size", 0) or model.config.model_type in (
        "distilbert", "modernbert", "roberta"
    ):
        names = [k for k in names if k != "token_type_ids"]
    return names


# --- tokenization once, batching by length -------------------------------------------------
@dataclass
class Encoded:
    """Token ids of every text, unpadded, plus what padding needs."""

    features: dict[str, list[list[int]]]
    lengths: np.ndarray
    pad_id: int
    padding_side: str
    with_mask: bool = True

    def __len__(self) -> int:
        return len(self.lengths)

    def subset(self, idx: np.ndarray) -> Encoded:
        return Encoded(
            {k: [v[i] for i in idx] for k, v in self.features.items()},
            self.lengths[idx], self.pad_id, self.padding_side, self.with_mask,
        )

    def batch(self, idx: np.ndarray) -> dict[str, np.ndarray]:
        """Rows `idx` padded to their longest row, as int64 arrays (attention mask built here)."""
        lengths = self.lengths[idx]
        width = int(lengths.max())
        out = {}
        for name, rows in self.features.items():
            arr = np.full((len(idx), width), self.pad_id if name == "input_ids" else 0, np.int64)
            for j, i in enumerate(idx):
                n = lengths[j]
                if self.padding_side == "left":
                    arr[j, width - n:] = rows[i]
                else:
                    arr[j, :n] = rows[i]
            out[name] = arr
        if not self.with_mask:
            return out
        mask = np.arange(width)[None, :] < lengths[:, None]
        out["attention_mask"] = (mask[:, ::-1] if self.padding_side == "left" else mask).astype(
            np.int64
        )
        return out


def encode(tokenizer, X: Texts, max_length: int, names: list[str]) -> Encoded:
    """Tokenize all of `X` in one fast-tokenizer call; keep the inputs in `names`.

    token_type_ids the model takes but the tokenizer does not return become zeros (what the
    model assumes when they are not passed), so the ONNX graph gets every input it declares.
    """
    enc = tokenize(tokenizer, X, max_length)
    if "input_ids" not in enc:
        raise ClfbenchError("tokenizer returned no input_ids")
    features = {k: list(enc[k]) for k in names if k != "attention_mask" and k in enc}
    lengths = np.array([len(r) for r in features["input_ids"]], dtype=np.int64)
    if len(lengths) and lengths.min() == 0:
        row = int(np.argmin(lengths))
        raise ClfbenchError(f"input row {row + 1}: text tokenizes to zero tokens")
    if "token_type_ids" in names and "token_type_ids" not in features:
        features["token_type_ids"] = [[0] * int(n) for n in lengths]
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    side = getattr(tokenizer, "padding_side", "right")
    return Encoded(features, lengths, int(pad_id), side, "attention_mask" in names)


def run_batched(forward: Forward, enc: Encoded, batch_size: int) -> np.ndarray:
    """Logits for every row of `enc`, longest texts first, returned in the input order."""
    order = np.argsort(-enc.lengths, kind="stable")
    out: np.ndarray | None = None
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        logits = np.asarray(forward(enc.batch(idx)), dtype=np.float32)
        if out is None:
            out = np.empty((len(enc), logits.shape[1]), dtype=np.float32)
        out[idx] = logits
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)
