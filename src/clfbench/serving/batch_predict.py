"""Batch inference over files larger than memory: read a batch, classify it, write it, repeat.

`clfbench predict --run RUN --file BIG.parquet|csv|tsv|jsonl|txt --out PRED.parquet
[--batch-size N] [--executor ray]`. Locally the input is streamed (Parquet record batches,
pandas CSV chunks, JSONL/text lines) and the output written with one `ParquetWriter`, so
memory holds the model and one batch whatever the file's size. With `--executor ray` the
file is read by Ray Data and classified by `map_batches` with `BatchPredictor` actors (each
loads the model once); the driver writes the results in the input's order as they stream in.

Output columns: `row` (0-based position in the input), `text` (and `text_pair`), `label`,
`score` (the label's probability) and `probabilities` (one per label, in the order of the
file's `clfbench.labels` metadata).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from clfbench.errors import ClfbenchError

DEFAULT_BATCH_SIZE = 1024
LABELS_KEY = b"clfbench.labels"
READABLE = (".parquet", ".csv", ".tsv", ".jsonl", ".txt")


class BatchPredictor:
    """A saved model, loaded once, classifying pyarrow tables of texts (Ray Data's callable class)."""

    def __init__(self, model_dir: str | Path, text_col: str = "text", pair_col: str | None = None,
                 endpoint: dict | None = None) -> None:
        from clfbench.methods.base import Classifier, confirm_endpoint

        self.model = Classifier.load(model_dir)
        confirm_endpoint(self.model, endpoint)
        self.labels = list(self.model.labels)
        self.text_col, self.pair_col = text_col, pair_col

    def __call__(self, batch: pa.Table, first_row: int | None = None) -> pa.Table:
        from clfbench.data.texts import Texts

        texts = _texts(batch, self.text_col, first_row)
        pairs = _texts(batch, self.pair_col, first_row) if self.pair_col else None
        pred, proba = self.model.classify(Texts(texts, pairs))
        columns: dict[str, Any] = {"text": pa.array(texts, pa.string())}
        if pairs is not None:
            columns["text_pair"] = pa.array(pairs, pa.string())
        columns["label"] = pa.array([self.labels[p] if p >= 0 else None for p in pred], pa.string())
        if proba is not None:
            columns["score"] = pa.array([float(row[p]) if p >= 0 else None for row, p in zip(proba, pred)],
                                        pa.float32())
            columns["probabilities"] = pa.array(proba.astype("float32").tolist(), pa.list_(pa.float32()))
        return pa.table(columns)


def _texts(batch: pa.Table, col: str, first_row: int | None) -> list[str]:
    values = batch.column(col).to_pylist()
    for i, v in enumerate(values):
        if v is None or not str(v).strip():
            where = f"row {first_row + i + 1}" if first_row is not None else "a row"
            raise ClfbenchError(f"{where}: empty text in column {col!r}")
    return [str(v) for v in values]


def read_batches(path: Path, columns: list[str], batch_size: int) -> Iterator[pa.Table]:
    """The input in tables of at most `batch_size` rows with just `columns`, never all of it."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        _check_columns(path, columns, pf.schema_arrow.names)
        # One row group at a time (Parquet's unit of reading): `iter_batches` was seen to grow
        # RSS steadily over a file (pyarrow 25), reading row groups keeps it flat.
        for i in range(pf.num_row_groups):
            group = pf.read_row_group(i, columns=columns, use_threads=False)
            for start in range(0, group.num_rows, batch_size):
                yield group.slice(start, batch_size)
    elif suffix in (".csv", ".tsv"):
        import pandas as pd

        sep = "\t" if suffix == ".tsv" else ","
        header = pd.read_csv(path, sep=sep, nrows=0, encoding="utf-8-sig").columns
        _check_columns(path, columns, list(header))
        for chunk in pd.read_csv(path, sep=sep, usecols=columns, dtype=str, keep_default_na=False,
                                 chunksize=batch_size, encoding="utf-8-sig"):
            yield pa.Table.from_pandas(chunk[columns], preserve_index=False)
    elif suffix == ".jsonl":
        from clfbench.data.files import iter_jsonl

        rows: list[dict] = []
        for lineno, obj in iter_jsonl(path):
            missing = [c for c in columns if c not in obj]
            if missing:
                raise ClfbenchError(f"{path}: line {lineno}: no {missing[0]!r} field")
            rows.append({c: obj[c] for c in columns})
            if len(rows) == batch_size:
                yield pa.Table.from_pylist(rows)
                rows = []
        if rows:
            yield pa.Table.from_pylist(rows)
    elif suffix == ".txt":
        with open(path, encoding="utf-8") as f:
            lines = (ln.rstrip("\n") for ln in f if ln.strip())
            while batch := [ln for _, ln in zip(range(batch_size), lines)]:
                yield pa.table({columns[0]: batch})
    else:
        raise ClfbenchError(f"{path}: unknown file type {path.suffix!r}; use one of {', '.join(READABLE)}")


def check_input(path: Path, columns: list[str], batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Read the whole input once, as `read_batches` will, before any model loads or any output
    is written: an empty, non-UTF-8, unparseable (an unclosed quote, garbage) or header-only
    file, a missing column or an empty text is one ClfbenchError naming the file (and row) -
    the checks `read_table` makes for `run`. The number of rows."""
    from clfbench.data.files import check_utf8

    if not path.is_file():
        raise ClfbenchError(f"{path}: file not found")
    if path.suffix.lower() not in READABLE:
        raise ClfbenchError(f"{path}: unknown file type {path.suffix!r}; use one of {', '.join(READABLE)}")
    if path.stat().st_size == 0:
        raise ClfbenchError(f"{path}: file is empty")
    fmt = path.suffix.lower().lstrip(".")
    if fmt != "parquet":
        check_utf8(path)
    rows = 0
    try:
        for table in read_batches(path, columns, batch_size):
            for col in columns:
                _texts(table, col, rows)
            rows += table.num_rows
    except ClfbenchError:
        raise
    except Exception as e:  # noqa: BLE001 - pandas' and pyarrow's parsers raise many kinds
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        first = first.removeprefix("Error tokenizing data. C error: ")
        raise ClfbenchError(f"{path}: cannot parse as {fmt}: {first}") from None
    if rows == 0:
        if fmt in ("csv", "tsv"):
            raise ClfbenchError(f"{path}: has a header ({', '.join(columns)}) but no data rows")
        raise ClfbenchError(f"{path}: no rows")
    return rows


def _check_columns(path: Path, wanted: list[str], have: list[str]) -> None:
    for col in wanted:
        if col not in have:
            raise ClfbenchError(f"{path}: no column {col!r} (columns: {', '.join(map(str, have))})")


def predict_file(run: str | Path, path: str | Path, out: str | Path, text_col: str = "text",
                 pair_col: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 executor: str = "local", address: str | None = None,
                 endpoint: dict | None = None) -> dict[str, Any]:
    """Classify every row of `path` with the model of `run`, streaming into the Parquet file
    `out`; returns rows, seconds and throughput (rows per second, model loading included)."""
    path, out, model_dir = Path(path), Path(out), Path(run) / "model"
    if not model_dir.is_dir():
        raise ClfbenchError(f"{run}: no saved model (run with --save-model)")
    if not path.is_file():
        raise ClfbenchError(f"{path}: file not found")
    if batch_size < 1:
        raise ClfbenchError(f"--batch-size={batch_size} (expected a value >= 1)")
    if executor not in ("local", "ray"):
        raise ClfbenchError(f"--executor={executor!r} (expected local or ray)")
    columns = [text_col] if path.suffix.lower() == ".txt" else [text_col, *([pair_col] if pair_col else [])]
    check_input(path, columns, batch_size)  # bad input is one line before the model loads
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    t0 = time.perf_counter()
    if executor == "ray":
        labels, batches = _ray_batches(model_dir, path, columns, text_col, pair_col, batch_size, address,
                                       endpoint)
    else:
        predictor = BatchPredictor(model_dir, text_col, pair_col, endpoint)
        labels, batches = predictor.labels, _local_batches(predictor, path, columns, batch_size)
    rows = n_batches = 0
    writer = None
    try:
        for table in batches:
            table = table.add_column(0, "row", pa.array(range(rows, rows + table.num_rows), pa.int64()))
            if writer is None:
                import pyarrow.parquet as pq

                schema = table.schema.with_metadata({LABELS_KEY: json.dumps(labels).encode()})
                writer = pq.ParquetWriter(partial, schema)
            writer.write_table(table.cast(writer.schema))
            rows += table.num_rows
            n_batches += 1
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise ClfbenchError(f"{path}: no rows")
    partial.replace(out)  # a file at `out` is always a complete one
    seconds = time.perf_counter() - t0
    return {"rows": rows, "batches": n_batches, "seconds": seconds,
            "throughput_sps": rows / seconds if seconds else None, "executor": executor,
            "batch_size": batch_size, "out": str(out)}


def _local_batches(predictor: BatchPredictor, path: Path, columns: list[str],
                   batch_size: int) -> Iterator[pa.Table]:
    first = 0
    for table in read_batches(path, columns, batch_size):
        yield predictor(table, first_row=first)
        first += table.num_rows


def _ray_batches(model_dir: Path, path: Path, columns: list[str], text_col: str, pair_col: str | None,
                 batch_size: int, address: str | None,
                 endpoint: dict | None = None) -> tuple[list[str], Iterator[pa.Table]]:
    """Ray Data: read, `map_batches` over BatchPredictor actors, results in the input's order."""
    from clfbench.extras import import_optional

    ray = import_optional("ray", "--executor ray")
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False)
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        ds = ray.data.read_parquet(str(path), columns=columns)
    elif suffix in (".csv", ".tsv"):
        from pyarrow import csv

        types = {c: pa.string() for c in columns}  # digits are texts too, not numbers
        ds = ray.data.read_csv(str(path), parse_options=csv.ParseOptions(delimiter="\t" if suffix == ".tsv" else ","),
                               convert_options=csv.ConvertOptions(column_types=types, include_columns=columns,
                                                                  strings_can_be_null=False))
    elif suffix == ".jsonl":
        ds = ray.data.read_json(str(path), lines=True).select_columns(columns)
    else:
        raise ClfbenchError(f"{path}: --executor ray reads .parquet, .csv, .tsv or .jsonl")
    labels = json.loads((model_dir / "method.json").read_text(encoding="utf-8"))["labels"]
    # One model actor per CPU but one: reading needs a CPU too (actors on every CPU deadlock).
    cpus = ray.cluster_resources().get("CPU", 1)
    ds = ds.map_batches(BatchPredictor, fn_constructor_args=(str(model_dir), text_col, pair_col, endpoint),
                        batch_size=batch_size, batch_format="pyarrow",
                        compute=ray.data.ActorPoolStrategy(size=max(1, int(cpus) - 1)),
                        num_cpus=1 if cpus >= 2 else cpus / 2)

    def stream() -> Iterator[pa.Table]:
        try:
            yield from ds.iter_batches(batch_size=None, batch_format="pyarrow")
        except Exception as e:  # a ClfbenchError in an actor comes back as Ray Data's own error
            found = re.findall(r"ClfbenchError: (.+)", str(e))
            if not found:
                raise
            raise ClfbenchError(found[-1].strip()) from None
        finally:
            if started:
                ray.shutdown()

    return labels, stream()


__all__ = ["BatchPredictor", "DEFAULT_BATCH_SIZE", "predict_file", "read_batches"]
