"""The comparison table of a results folder, as a rich table, CSV, JSON or Markdown."""

from __future__ import annotations

import io
import json

import pandas as pd

from clfbench.store import Store

COLUMNS = {
    "task": "task", "method": "method", "model": "model", "seed": "seed",
    "accuracy": "accuracy", "macro_f1": "macro-F1", "mcc": "MCC",
    "latency_ms_p50": "p50 ms", "latency_ms_p95": "p95 ms", "latency_ms_p99": "p99 ms",
    "throughput_sps": "samples/s", "peak_memory_mb": "peak MB", "train_seconds": "train s",
}


#: The mark a degenerate run (collapsed, or no better than the majority class) carries.
DEGENERATE_MARK = "⚠ degenerate"


#: Learning-curve columns, shown when a run of the folder has a training size (`--train-sizes`):
#: the size asked for and the labelled training examples it realised.
SIZE_COLUMNS = {"train_size": "train size", "n_train": "n train"}


def columns(df: pd.DataFrame) -> dict[str, str]:
    """The table's columns: COLUMNS, plus the training size ones after `seed` when present."""
    if "train_size" not in df.columns:
        return COLUMNS
    keys = list(COLUMNS)
    at = keys.index("seed") + 1
    return {k: {**COLUMNS, **SIZE_COLUMNS}[k] for k in [*keys[:at], *SIZE_COLUMNS, *keys[at:]]}


def results_frame(root) -> pd.DataFrame:
    runs = Store(root).runs()
    sized = any(r.get("train_size") for r in runs)
    keys = ["run_id", *COLUMNS, *(SIZE_COLUMNS if sized else [])]
    df = pd.DataFrame([{**{k: r.get(k) for k in keys},
                        "degenerate": bool(r.get("degenerate"))} for r in runs])
    if df.empty:
        return pd.DataFrame(columns=["run_id", *COLUMNS, "degenerate"])
    df["model"] = df["model"].fillna("-")
    if sized:
        df["n_train"] = df["n_train"].astype("Int64")
        return df.sort_values(["task", "method", "n_train", "macro_f1"], ascending=[True, True, True, False],
                              na_position="first").reset_index(drop=True)
    return df.sort_values(["task", "macro_f1"], ascending=[True, False]).reset_index(drop=True)


def _fmt(key: str, v) -> str:
    if v is None or v is pd.NA or (isinstance(v, float) and pd.isna(v)):
        return "-"
    if key in ("accuracy", "macro_f1", "mcc"):
        return f"{v:.4f}"
    if isinstance(v, float):
        return f"{v:.2f}" if v < 100 else f"{v:.0f}"
    return str(v)


def render(df: pd.DataFrame, fmt: str = "table") -> str:
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return json.dumps(df.to_dict(orient="records"), indent=2, default=str)
    cols = columns(df)
    cells = [[_fmt(k, row[k]) + (f" {DEGENERATE_MARK}" if k == "method" and row.get("degenerate") else "")
              for k in cols] for _, row in df.iterrows()]
    if fmt == "markdown":
        head = "| " + " | ".join(cols.values()) + " |"
        sep = "|" + "|".join("---" for _ in cols) + "|"
        rows = ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in cells]
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
