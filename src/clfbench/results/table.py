"""The comparison table of a results folder, as a rich table, CSV, JSON or Markdown."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from clfbench.results.store import Store, read_json

COLUMNS = {
    "task": "task", "method": "method", "model": "model", "seed": "seed", "n_train": "n train",
    "accuracy": "accuracy", "macro_f1": "macro-F1", "mcc": "MCC",
    "latency_ms_p50": "p50 ms", "latency_ms_p95": "p95 ms", "latency_ms_p99": "p99 ms",
    "throughput_sps": "samples/s", "peak_memory_mb": "peak MB", "train_seconds": "train s",
}


#: The mark a degenerate run (collapsed, or no better than the majority class) carries.
DEGENERATE_MARK = "⚠ degenerate"


#: Learning-curve column, shown when a run of the folder has a training size (`--train-sizes`):
#: the size asked for (`n train`, the labelled examples it realised, is always shown).
SIZE_COLUMNS = {"train_size": "train size"}


def columns(df: pd.DataFrame) -> dict[str, str]:
    """The table's columns: COLUMNS, plus the training size one after `seed` when present."""
    if "train_size" not in df.columns:
        return COLUMNS
    keys = list(COLUMNS)
    at = keys.index("seed") + 1
    return {k: {**COLUMNS, **SIZE_COLUMNS}[k] for k in [*keys[:at], *SIZE_COLUMNS, *keys[at:]]}


def _config(run: dict[str, Any]) -> dict[str, Any]:
    """The run's config.json (resolved method parameters, spec); empty where it is missing."""
    path = Path(run["path"]) / "config.json"
    config = read_json(path) if path.is_file() else {}
    return config if isinstance(config, dict) else {}


def model_used(run: dict[str, Any], config: dict[str, Any]) -> str | None:
    """The model a run used: the one asked for, else the method's default (its resolved
    `model` parameter, e.g. minilm for embed-probe); None for a method without a model."""
    model = run.get("model") or (config.get("method_params") or {}).get("model")
    return str(model) if model else None


def n_train(run: dict[str, Any], config: dict[str, Any]) -> int | None:
    """Labelled training examples a run used: its learning-curve size as realised, the
    training split (after `--max-train`) for a method that trains, a prompt's shots (0
    zero-shot) for one that does not."""
    from clfbench.methods.base import method_trains

    if run.get("n_train") is not None:
        return int(run["n_train"])
    if not method_trains(str(run.get("method"))):
        shots = (run.get("fit_info") or {}).get("shots")
        if shots is None:
            shots = ((config.get("spec") or {}).get("params") or {}).get("shots", 0)
        return int(shots) if isinstance(shots, (int, float)) else None
    train = ((run.get("splits") or {}).get("sizes") or {}).get("train")
    return int(train) if isinstance(train, (int, float)) else None


def results_frame(root: str | Path) -> pd.DataFrame:
    """One row per completed run of a results folder: COLUMNS (SIZE_COLUMNS too when a run has
    a training size), `run_id` and `degenerate`."""
    runs = Store(root).runs()
    sized = any(r.get("train_size") for r in runs)
    keys = ["run_id", *COLUMNS, *(SIZE_COLUMNS if sized else [])]
    rows = []
    for r in runs:
        config = _config(r)
        rows.append({**{k: r.get(k) for k in keys}, "model": model_used(r, config),
                     "n_train": n_train(r, config), "degenerate": bool(r.get("degenerate"))})
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=["run_id", *COLUMNS, "degenerate"])
    df["model"] = df["model"].fillna("-")
    df["n_train"] = df["n_train"].astype("Int64")
    if sized:
        return df.sort_values(["task", "method", "n_train", "macro_f1"], ascending=[True, True, True, False],
                              na_position="first").reset_index(drop=True)
    return df.sort_values(["task", "macro_f1"], ascending=[True, False]).reset_index(drop=True)


def markdown_cell(s: object) -> str:
    """A table cell's text as Markdown shows it literally: `|` escaped, one line, and HTML
    escaped (`markdown_text`), so that a user's name or label is never rendered as markup."""
    return markdown_text(s).replace("|", "\\|").replace("\n", " ")


def markdown_text(s: object) -> str:
    """Text with every `<` escaped (`&lt;`): no tag, comment or autolink can open, so Markdown
    shows a user's HTML as text, never renders it (`>` and `&` alone cannot start markup, and
    stay as written: "0.6 -> 0.7" reads as before)."""
    return str(s).replace("<", "&lt;")


def _fmt(key: str, v) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and pd.isna(v)):
        return "-"
    if key in ("accuracy", "macro_f1", "mcc"):
        return f"{v:.4f}"
    if isinstance(v, float):
        return f"{v:.2f}" if v < 100 else f"{v:.0f}"
    return str(v)


def format_table(df: pd.DataFrame, fmt: str = "table") -> str:
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":  # a missing value (pd.NA) is null
        return json.dumps(df.astype(object).where(df.notna(), None).to_dict(orient="records"),
                          indent=2, default=str)
    cols = columns(df)
    cells = [[_fmt(k, row[k]) + (f" {DEGENERATE_MARK}" if k == "method" and row.get("degenerate") else "")
              for k in cols] for _, row in df.iterrows()]
    if fmt == "markdown":
        head = "| " + " | ".join(cols.values()) + " |"
        sep = "|" + "|".join("---" for _ in cols) + "|"
        rows = ["| " + " | ".join(markdown_cell(c) for c in r) + " |" for r in cells]
        return "\n".join([head, sep] + rows) + "\n"
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(show_lines=False)
    for key, title in cols.items():
        table.add_column(title, justify="left" if key in ("task", "method", "model") else "right")
    for r in cells:
        table.add_row(*(Text(c) for c in r))  # names as written, never read as rich markup
    buf = io.StringIO()
    Console(file=buf, width=200, force_terminal=False).print(table)
    return buf.getvalue()
