"""The batching engine every encoder-style method uses to turn texts into logits.

Texts are sorted by token length so that each batch pads only to its own longest text
(dynamic padding), run under `torch.inference_mode`, and returned in the input order.
"""

from __future__ import annotations

import numpy as np
import torch

from clfbench.data import Texts


def tokenize(tokenizer, X: Texts, max_length: int, **kw):
    """Tokenize single texts or pairs with the run's truncation policy (longest-first)."""
    return tokenizer(
        X.texts, X.pairs, truncation=True, max_length=max_length, **kw
    ) if X.pairs is not None else tokenizer(X.texts, truncation=True, max_length=max_length, **kw)


@torch.inference_mode()
def predict_logits(
    model, tokenizer, X: Texts, batch_size: int = 64, max_length: int = 128, device: str | torch.device = "cpu"
) -> np.ndarray:
    """Logits (n, n_labels) for `X`, batched by length with dynamic padding."""
    enc = tokenize(tokenizer, X, max_length)
    keys = [k for k in enc.keys() if k in ("input_ids", "attention_mask", "token_type_ids")]
    if not getattr(model.config, "type_vocab_size", 0) or model.config.model_type in (
        "distilbert", "modernbert", "roberta"
    ):
        keys = [k for k in keys if k != "token_type_ids"]
    lengths = np.array([len(ids) for ids in enc["input_ids"]])
    order = np.argsort(-lengths, kind="stable")
    out = [None] * len(X)
    model.eval()
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        feats = [{k: enc[k][i] for k in keys} for i in idx]
        batch = tokenizer.pad(feats, return_tensors="pt").to(device)
        logits = model(**batch).logits.float().cpu().numpy()
        for j, i in enumerate(idx):
            out[i] = logits[j]
    return np.stack(out) if out else np.zeros((0, model.config.num_labels))
