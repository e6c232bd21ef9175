"""API token prices (USD per 1M tokens) and the cost of a request.

The shipped table is `clfbench/pricing/api_prices.yaml`; a user's file with the same layout
(`models: {name: {input: X, output: Y}}`, or the `models` mapping alone) replaces it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from clfbench.data.files import read_yaml
from clfbench.errors import ClfbenchError

DEFAULT_PRICES = Path(__file__).resolve().parents[1] / "pricing" / "api_prices.yaml"
_META_KEYS = {"as_of", "default", "note", "currency", "unit"}


def load_prices(path: str | Path | None = None) -> dict[str, dict[str, float]]:
    """`{model: {"input": usd_per_1m, "output": usd_per_1m}}` from a price YAML (shipped if None)."""
    path = Path(path) if path is not None else DEFAULT_PRICES
    raw = read_yaml(path, "price file")
    if not isinstance(raw, dict):
        raise ClfbenchError(f"{path}: expected a mapping of model -> {{input, output}}")
    models = raw.get("models", {k: v for k, v in raw.items() if k not in _META_KEYS})
    if not isinstance(models, dict):
        raise ClfbenchError(f"{path}: 'models' must be a mapping of model -> {{input, output}}")
    out: dict[str, dict[str, float]] = {}
    for name, entry in models.items():
        if not isinstance(entry, dict):
            raise ClfbenchError(f"{path}: models.{name}: expected {{input: X, output: Y}}")
        row = {}
        for side in ("input", "output"):
            value = entry.get(side)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ClfbenchError(
                    f"{path}: models.{name}.{side}: expected a non-negative USD price per 1M "
                    f"tokens, got {value!r}"
                )
            row[side] = float(value)
        out[str(name)] = row
    return out


def price_for(model: str, prices: dict[str, dict[str, Any]]) -> dict[str, float] | None:
    """The price entry of `model`: exact name, else the longest listed name it extends by `-...`
    (dated snapshots such as gpt-4o-2024-08-06); None if unlisted."""
    if model in prices:
        return prices[model]
    bases = [k for k in prices if model.startswith(k + "-")]
    return prices[max(bases, key=len)] if bases else None


def request_cost(
    model: str, in_tokens: float, out_tokens: float, prices: dict[str, dict[str, Any]]
) -> float:
    """USD for one request (or for token totals): tokens x price per 1M tokens."""
    entry = price_for(model, prices)
    if entry is None:
        raise ClfbenchError(
            f"model {model!r}: no price in the price table (known: {', '.join(sorted(prices))}); "
            "give one with --param prices=FILE"
        )
    return (in_tokens * entry["input"] + out_tokens * entry["output"]) / 1e6
