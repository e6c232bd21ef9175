"""Shared pieces of the neural-method tests: a toy labeled dataset and the tiny-model zoo.

Import as `import neural_helpers` (tests/ is on sys.path). Fixtures built from these are
declared in each test module.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import tiny_models

from clfbench.data.texts import LabeledTexts

POSITIVE = "great good wonderful fun".split()
NEGATIVE = "terrible bad awful boring".split()
FILLER = "the movie film was plot actor story".split()
LABELS = ["positive", "negative", "neutral"]


def toy_data(n: int, seed: int, pair: bool = False, long_every: int = 0,
             proportions: tuple[float, ...] = (1, 1, 1)) -> LabeledTexts:
    """3-class sentiment-like texts: class 0 holds a positive word, 1 a negative one, 2 none.

    `pair`: the second text is the first reversed word by word; `long_every`: every k-th text
    is padded to ~60 words; `proportions`: class frequencies (for imbalance tests).
    """
    rng = random.Random(seed)
    weights = np.asarray(proportions, dtype=float) / sum(proportions)
    counts = np.floor(weights * n).astype(int)
    counts[0] += n - counts.sum()
    labels = [y for y, c in enumerate(counts) for _ in range(c)]
    rng.shuffle(labels)
    texts = []
    for i, y in enumerate(labels):
        words = [rng.choice(FILLER) for _ in range(rng.randint(2, 10))]
        if long_every and i % long_every == 0:
            words += [rng.choice(FILLER) for _ in range(60)]
        if y == 0:
            words.insert(rng.randrange(len(words) + 1), rng.choice(POSITIVE))
        elif y == 1:
            words.insert(rng.randrange(len(words) + 1), rng.choice(NEGATIVE))
        texts.append(" ".join(words))
    pairs = [" ".join(reversed(t.split())) for t in texts] if pair else None
    return LabeledTexts(texts, pairs, labels, list(LABELS))


class Zoo:
    """Tiny saved models, each built on first use into `root` (seconds for all of them)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._built: dict[str, Path] = {}

    def __call__(self, arch: str) -> str:
        if arch not in self._built:
            path = self.root / arch
            if arch in tiny_models.DECODERS:
                tiny_models.build_decoder(path, arch)
            else:
                tiny_models.build_encoder(path, arch)
            self._built[arch] = path
        return str(self._built[arch])


def step_grad_norm(optimizer) -> float:
    """The total L2 norm of the gradients an optimizer is about to step with (after clipping)."""
    import torch

    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) if grads else 0.0
