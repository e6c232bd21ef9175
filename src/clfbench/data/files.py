"""Reading labeled tables from files (CSV, TSV, JSONL, JSON, Parquet) with clear errors.

Every problem is a ClfbenchError whose one-line message names the file and, where it
applies, the line, row or column. "row N" counts data rows from 1 (a CSV header is not a
row); "line N" is a line of the file itself.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from clfbench.data.texts import LabeledTexts
from clfbench.errors import ClfbenchError

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet"}
TEXT_FORMATS = {"csv", "tsv", "jsonl", "json"}


def yaml_load(text: str) -> Any:
    """Parse YAML with YAML 1.2's booleans and floats: only true/false are booleans, so
    `tune: off`, `--param descriptions=on` and label names yes/no stay strings, and `1e-4` is
    a number (PyYAML follows YAML 1.1: yes/no/on/off are booleans, 1e-4 a string)."""
    import yaml

    return yaml.load(text, Loader=_yaml12_loader())  # noqa: S506 - a SafeLoader subclass


@cache
def _yaml12_loader() -> type:
    import re

    import yaml

    bool_tag = "tag:yaml.org,2002:bool"

    class Yaml12Loader(yaml.SafeLoader):
        pass

    Yaml12Loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != bool_tag]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Yaml12Loader.add_implicit_resolver(bool_tag, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                       list("tTfF"))
    # YAML 1.2 floats may have an exponent without a dot: lr: 1e-4 is a number, not a string
    Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$"),
                                       list("-+0123456789"))
    return Yaml12Loader


def read_yaml(path: str | Path, what: str) -> Any:
    """Parse a YAML file; a missing file or bad YAML is one ClfbenchError naming file and line.

    `what` names the file's role in the message ("grid file", "price file", ...).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ClfbenchError(f"{path}: {what} not found")
    try:
        return yaml_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ClfbenchError(f"{path}: not valid UTF-8 ({e.reason})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}:" if mark else ""
        raise ClfbenchError(f"{path}:{line} invalid YAML ({getattr(e, 'problem', e)})") from None


def detect_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ClfbenchError(
            f"{path}: unknown file type {path.suffix!r}; use one of {', '.join(FORMATS)}"
        )
    return fmt


def read_table(path: str | Path, fmt: str | None = None, **options: Any) -> pd.DataFrame:
    """Read a file into a DataFrame. `options` (CSV/TSV): header, quoting ("none"), names.

    CSV/TSV cells are read as strings, exactly as written (no NA guessing).
    """
    path = Path(path)
    if not path.exists():
        raise ClfbenchError(f"{path}: file not found")
    if path.is_dir():
        raise ClfbenchError(f"{path}: is a folder, expected a file")
    if path.stat().st_size == 0:
        raise ClfbenchError(f"{path}: file is empty")
    fmt = fmt or detect_format(path)
    if fmt in TEXT_FORMATS:
        check_utf8(path)
    try:
        if fmt in ("csv", "tsv"):
            df = _read_delimited(path, fmt, options)
        elif fmt == "jsonl":
            df = _read_jsonl(path)
        elif fmt == "json":
            df = _read_json(path)
        elif fmt == "parquet":
            df = pd.read_parquet(path)
        else:
            raise ClfbenchError(f"{path}: unknown format {fmt!r}")
    except ClfbenchError:
        raise
    except pd.errors.EmptyDataError:
        raise ClfbenchError(f"{path}: file has no data") from None
    except (ValueError, pd.errors.ParserError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        first = first.removeprefix("Error tokenizing data. C error: ")
        raise ClfbenchError(f"{path}: cannot parse as {fmt}: {first}") from None
    if len(df) == 0:
        if fmt in ("csv", "tsv") and options.get("header", "infer") is not None:
            cols = ", ".join(map(str, df.columns))
            raise ClfbenchError(f"{path}: has a header ({cols}) but no data rows")
        raise ClfbenchError(f"{path}: no rows")
    return df


def check_utf8(path: Path) -> None:
    """Fail on the first line that is not valid UTF-8, naming the line and byte column."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ClfbenchError(
                    f"{path}: line {lineno}: not valid UTF-8 (byte {line[e.start]:#04x} at "
                    f"column {e.start + 1}); save the file as UTF-8"
                ) from None


def _read_delimited(path: Path, fmt: str, options: dict[str, Any]) -> pd.DataFrame:
    quoting = csv.QUOTE_NONE if options.get("quoting") == "none" else csv.QUOTE_MINIMAL
    sep = "\t" if fmt == "tsv" else ","
    if options.get("header", "infer") is not None and options.get("names") is None:
        _check_header(path, sep, quoting)
    return pd.read_csv(
        path,
        sep=sep,
        quoting=quoting,
        header=options.get("header", "infer"),
        names=options.get("names"),
        dtype=str,
        keep_default_na=False,
        encoding="utf-8-sig",  # a byte-order mark would otherwise stick to the first column name
    )


def _check_header(path: Path, sep: str, quoting: int) -> None:
    """A column named twice in the header is an error (pandas would rename one 'text.1')."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader(f, delimiter=sep, quoting=quoting), [])
    seen = set()
    for name in header:
        if name in seen:
            raise ClfbenchError(f"{path}: line 1: column {name!r} appears twice in the header")
        seen.add(name)


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a bad line is a ClfbenchError naming it."""
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ClfbenchError(f"{path}: line {lineno}: not valid JSON ({e.msg})") from None
            if not isinstance(row, dict):
                raise ClfbenchError(
                    f"{path}: line {lineno}: expected a JSON object, got {type(row).__name__}"
                )
            yield lineno, row


def _read_jsonl(path: Path) -> pd.DataFrame:
    return pd.DataFrame.from_records([row for _, row in iter_jsonl(path)])


def _read_json(path: Path) -> pd.DataFrame:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except json.JSONDecodeError as e:
        raise ClfbenchError(f"{path}: line {e.lineno}: not valid JSON ({e.msg})") from None
    if isinstance(data, list):
        for i, row in enumerate(data):
            if not isinstance(row, dict):
                raise ClfbenchError(
                    f"{path}: item {i + 1}: expected a JSON object, got {type(row).__name__}"
                )
        return pd.DataFrame.from_records(data)
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        return pd.DataFrame(data)  # column-oriented: {"text": [...], "label": [...]}
    raise ClfbenchError(f"{path}: expected a JSON array of objects (one per example)")


def _row(source: str, row: int) -> str:
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
    id_prefix: str = "",
    known_labels: str = "the task's labels",
) -> LabeledTexts:
    """Turn a table into LabeledTexts, validating columns, texts, ids and labels.

    `label_names`: the labels in order. Raw label values are mapped through `label_map`
    when given; otherwise a value must be one of `label_names`, or (when no label name is
    itself an integer) an integer index into them. With `label_names=None` (a user's
    training file) the names are the distinct values, sorted. Without `label_col` labels
    are -1 (unlabeled, for predict). Ids are `id_prefix` + the id column's value, or
    + the row number; `known_labels` says where the allowed labels come from, for errors.
    """
    for col, what in (
        (text_col, "text"), (pair_col, "text pair"), (label_col, "label"), (id_col, "id")
    ):
        if col is not None and col not in df.columns:
            cols = ", ".join(map(str, df.columns))
            raise ClfbenchError(f"{source}: no {what} column {col!r} (columns: {cols})")
    texts = _text_column(df, text_col, source)
    pairs = _text_column(df, pair_col, source) if pair_col else None
    ids = _ids(df, id_col, source, id_prefix)
    if label_col is None:
        return LabeledTexts(texts, pairs, np.full(len(df), -1), list(label_names or []), ids)
    raw = list(df[label_col])
    for row, value in enumerate(raw):
        if _is_missing(value):
            raise ClfbenchError(f"{_row(source, row)}: missing label in column {label_col!r}")
    if label_names is None:
        label_names = infer_label_names(raw)
        check_inferred_labels(label_names, [_norm(v) for v in raw], source, label_col)
    lookup = _label_lookup(label_names, label_map, source)
    labels = np.empty(len(raw), dtype=np.int64)
    for row, value in enumerate(raw):
        name = lookup.get(_norm(value))
        if name is None:
            allowed = label_map if label_map is not None else label_names
            shown = ", ".join(map(str, list(allowed)[:20])) + (" ..." if len(allowed) > 20 else "")
            raise ClfbenchError(
                f"{_row(source, row)}: label {value!r} in column {label_col!r} is not one of "
                f"{known_labels} ({shown})"
            )
        labels[row] = name
    return LabeledTexts(texts, pairs, labels, list(label_names), ids)


def _label_lookup(
    label_names: list[str], label_map: dict[Any, str] | None, source: str
) -> dict[str, int]:
    """Normalised raw value -> label id."""
    index = {name: i for i, name in enumerate(label_names)}
    if label_map is not None:
        bad = [v for v in label_map.values() if v not in index]
        if bad:
            raise ClfbenchError(
                f"{source}: label_map maps to {bad[0]!r}, which is not a label of the task"
            )
        return {_norm(k): index[v] for k, v in label_map.items()}
    lookup = dict(index)
    if not any(_is_int(n) for n in label_names):
        lookup.update({str(i): i for i in range(len(label_names))})
    return lookup


def _ids(df: pd.DataFrame, id_col: str | None, source: str, prefix: str) -> list[str]:
    if id_col is None:
        return [f"{prefix}{i + 1}" for i in range(len(df))]
    ids = [f"{prefix}{_norm(v)}" for v in df[id_col]]
    seen: dict[str, int] = {}
    for row, i in enumerate(ids):
        if i in seen:
            raise ClfbenchError(
                f"{_row(source, row)}: id {i!r} in column {id_col!r} repeats row {seen[i] + 1}"
            )
        seen[i] = row
    return ids


#: More classes than this is taken for a wrong label column (memory grows with the classes).
MAX_CLASSES = 10_000
#: Label values that usually mean "missing" when written out as text.
NA_SPELLINGS = {"nan", "na", "n/a", "<na>", "nat", "null", "none"}


def check_class_count(data: LabeledTexts, source: str, column: str) -> None:
    """A training file's classes against its size: more than MAX_CLASSES classes, or fewer than
    two examples per class on average, is an error (an id or text column given as the label)."""
    k, n = data.n_labels, len(data)
    if k > MAX_CLASSES or 2 * k > n:
        raise ClfbenchError(
            f"{source}: column {column!r}: {k:,} distinct labels in {n:,} rows (at most "
            f"{MAX_CLASSES:,}, and two examples per class on average); is it the label column? "
            "(--label-col)")


def check_inferred_labels(names: list[str], values: list[str], source: str, column: str) -> None:
    """The classes found in a user's file: two labels that differ only in case or spell one
    boolean two ways (true and 1) are an error; a label spelled like a missing value ("NaN")
    is a warning."""
    where = f"{source}: column {column!r}"
    seen: dict[str, str] = {}
    for name in names:
        key = {"1": "true", "0": "false"}.get(name, name.lower())
        if key in seen:
            raise ClfbenchError(f"{where}: labels {seen[key]!r} and {name!r} would be two classes; "
                                "write each class one way")
        seen[key] = name
    fractions = [n for n in names if _is_fraction(n)]
    if fractions:
        first = min(values.index(n) for n in fractions)
        count = sum(values.count(n) for n in fractions)
        whole = [n for n in names if n not in fractions]
        if whole and all(_is_int(n) for n in whole):  # 0.5 among the classes 0 and 1: a data error
            raise ClfbenchError(
                f"{_row(source, first)}: label {values[first]!r} in column {column!r} is a fraction "
                f"among the integer classes {', '.join(whole[:5])}{', ...' if len(whole) > 5 else ''} "
                f"({count} row(s)); a class is a name or an integer")
        print(f"clfbench: warning: {_row(source, first)}: label {values[first]!r} in column {column!r} "
              f"is a fractional number, and each of the {len(fractions)} such value(s) is a class of its "
              "own; if the column holds scores (a regression target), it is not a classification task",
              file=sys.stderr)
    for name in names:
        if name.lower() in NA_SPELLINGS:
            print(f"clfbench: warning: {_row(source, values.index(name))}: label {name!r} in column {column!r} "
                  f"is a class of its own ({values.count(name)} rows); if it marks a missing "
                  "label, remove those rows", file=sys.stderr)


def infer_label_names(values: list[Any]) -> list[str]:
    """Distinct label values as strings, sorted numerically when all are integers."""
    distinct = {_norm(v) for v in values if not _is_missing(v)}
    if all(_is_int(v) for v in distinct):
        return sorted(distinct, key=int)
    return sorted(distinct)


def _text_column(df: pd.DataFrame, col: str, source: str) -> list[str]:
    out = []
    for row, v in enumerate(df[col]):
        if _is_missing(v) or not (isinstance(v, str) or np.isscalar(v)) or not str(v).strip():
            raise ClfbenchError(f"{_row(source, row)}: empty text in column {col!r}")
        out.append(str(v))
    return out


def _is_missing(v: Any) -> bool:
    if v is None or (isinstance(v, str) and not v.strip()):
        return True
    try:
        return bool(pd.isna(v)) if np.isscalar(v) else False
    except (TypeError, ValueError):
        return False


def _norm(v: Any) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v)).lower()
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v).strip()


def _is_fraction(s: str) -> bool:
    """A finite number that is not whole ("0.5", "2.75"): how a score, not a class, is written."""
    try:
        v = float(s)
    except ValueError:
        return False
    return math.isfinite(v) and not v.is_integer()


def _is_int(s: str) -> bool:
    try:
        int(s)
        return True
    except ValueError:
        return False
