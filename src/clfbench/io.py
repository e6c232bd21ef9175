"""Reading labeled tables from files (CSV, TSV, JSONL, JSON, Parquet) with clear errors.

Every problem is a ClfbenchError naming the file and, where it applies, the row or column.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clfbench.data import LabeledTexts
from clfbench.errors import ClfbenchError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}


def detect_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ClfbenchError(
            f"{path}: unknown file type {path.suffix!r}; use one of {', '.join(FORMATS)}"
        )
    return fmt


def read_table(path: str | Path, fmt: str | None = None, **options: Any) -> pd.DataFrame:
    """Read a file into a DataFrame of strings/ints. `options`: header, quoting, names."""
    path = Path(path)
    if not path.exists():
        raise ClfbenchError(f"{path}: file not found")
    if path.is_dir():
        raise ClfbenchError(f"{path}: is a folder, expected a file")
    if path.stat().st_size == 0:
        raise ClfbenchError(f"{path}: file is empty")
    fmt = fmt or detect_format(path)
    try:
        if fmt in ("csv", "tsv"):
            quoting = csv.QUOTE_NONE if options.get("quoting") == "none" else csv.QUOTE_MINIMAL
            df = pd.read_csv(
                path,
                sep="\t" if fmt == "tsv" else ",",
                quoting=quoting,
                header=options.get("header", "infer"),
                names=options.get("names"),
                dtype=str,
                keep_default_na=False,
                encoding="utf-8",
                escapechar=options.get("escapechar"),
            )
        elif fmt == "jsonl":
            df = pd.read_json(path, lines=True, dtype=False, encoding="utf-8")
        elif fmt == "json":
            df = pd.read_json(path, dtype=False, encoding="utf-8")
        elif fmt == "parquet":
            df = pd.read_parquet(path)
        else:
            raise ClfbenchError(f"{path}: unknown format {fmt!r}")
    except UnicodeDecodeError as e:
        line = _line_of_byte(path, e.start)
        raise ClfbenchError(f"{path}: line {line}: not valid UTF-8 ({e.reason})") from None
    except ClfbenchError:
        raise
    except (ValueError, pd.errors.ParserError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ClfbenchError(f"{path}: cannot parse as {fmt}: {first}") from None
    if len(df) == 0:
        raise ClfbenchError(f"{path}: no rows")
    return df


def _line_of_byte(path: Path, offset: int) -> int:
    with open(path, "rb") as f:
        return f.read(offset).count(b"\n") + 1


def _row_label(source: str, row: int) -> str:
    return f"{source}: row {row + 1}"


def frame_to_labeled(
    df: pd.DataFrame,
    source: str,
    text_col: str,
    label_col: str | None,
    pair_col: str | None = None,
    label_names: list[str] | None = None,
    label_map: dict[Any, str] | None = None,
    id_col: str | None = None,
) -> LabeledTexts:
    """Turn a table into LabeledTexts, validating columns, texts and labels.

    `label_names`: the task's labels in order. Raw label values are mapped through
    `label_map` when given; otherwise an int is an index into `label_names` and a string
    must be one of them. With `label_names=None` (a user's own file) the names are the
    sorted distinct values. Without `label_col` labels are -1 (unlabeled, for predict).
    """
    for col, what in ((text_col, "text"), (pair_col, "text pair"), (label_col, "label"), (id_col, "id")):
        if col is not None and col not in df.columns:
            cols = ", ".join(map(str, df.columns))
            raise ClfbenchError(f"{source}: no {what} column {col!r} (columns: {cols})")
    texts = _text_column(df, text_col, source)
    pairs = _text_column(df, pair_col, source) if pair_col else None
    ids = [str(x) for x in df[id_col]] if id_col else [str(i) for i in range(len(df))]
    if label_col is None:
        return LabeledTexts(texts, pairs, np.full(len(df), -1), list(label_names or []), ids)
    raw = list(df[label_col])
    if label_names is None:
        label_names = infer_label_names(raw)
    index = {name: i for i, name in enumerate(label_names)}
    labels = np.empty(len(raw), dtype=np.int64)
    for row, value in enumerate(raw):
        labels[row] = _label_id(value, index, label_names, label_map, source, row, label_col)
    return LabeledTexts(texts, pairs, labels, list(label_names), ids)


def infer_label_names(values: list[Any]) -> list[str]:
    """Distinct label values as strings, sorted numerically when all are integers."""
    distinct = {_norm(v) for v in values if not _is_missing(v)}
    if all(_is_int(v) for v in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def _label_id(value, index, label_names, label_map, source, row, col) -> int:
    if _is_missing(value):
        raise ClfbenchError(f"{_row_label(source, row)}: missing label in column {col!r}")
    if label_map is not None:
        key = value if value in label_map else _norm(value)
        if key not in label_map:
            raise ClfbenchError(
                f"{_row_label(source, row)}: unknown label {value!r} in column {col!r}; "
                f"known: {', '.join(map(str, label_map))}"
            )
        return index[label_map[key]]
    name = _norm(value)
    if name in index:
        return index[name]
    if _is_int(name) and name not in index and 0 <= int(name) < len(label_names) and not any(
        _is_int(n) for n in label_names
    ):
        return int(name)
    raise ClfbenchError(
        f"{_row_label(source, row)}: unknown label {value!r} in column {col!r}; "
        f"known: {', '.join(label_names)}"
    )


def _text_column(df: pd.DataFrame, col: str, source: str) -> list[str]:
    out = []
    for row, v in enumerate(df[col]):
        if _is_missing(v) or not str(v).strip():
            raise ClfbenchError(f"{_row_label(source, row)}: empty text in column {col!r}")
        out.append(str(v))
    return out


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or (isinstance(v, str) and v == "")


def _norm(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v).strip()


def _is_int(s: str) -> bool:
    try:
        int(s)
        return True
    except ValueError:
        return False
