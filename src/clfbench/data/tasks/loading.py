"""Load a task's labeled splits from local files (`--data-dir`), the hub, or a user's files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from clfbench.data.files import check_class_count, frame_to_labeled, read_table
from clfbench.data.splits import TaskSplits, resolve_splits
from clfbench.data.tasks import Task
from clfbench.data.tasks import readers as _readers
from clfbench.data.texts import LabeledTexts, check_labeled
from clfbench.errors import ClfbenchError

SPLITS = ("train", "validation", "test")


def load_task(
    task: Task,
    data_dir: str | Path | None = None,
    data_seed: int = 99,
    max_train: int | None = None,
    max_eval: int | None = None,
) -> TaskSplits:
    """Labeled splits for `task`: local files when `data_dir` is given, else the hub.

    `data_dir` may be the task's own folder (`DATASETS/sst2`) or a folder of
    dataset folders (`DATASETS`).
    """
    if data_dir is not None:
        available = load_local(task, Path(data_dir))
        origin = f"local files in {resolve_local_dir(task, Path(data_dir))}"
    else:
        available = load_hub(task)
        origin = f"hub dataset {task.hub.get('path')}" + (
            f" ({task.hub['name']})" if task.hub.get("name") else ""
        )
    for split_name, data in available.items():
        check_labeled(data, f"task {task.name}, {split_name} split")
    splits = resolve_splits(available, data_seed, max_train=max_train, max_eval=max_eval,
                            source=f"task {task.name}")
    check_labeled(splits.train, f"task {task.name}, train split", need_two_classes=True)
    splits.notes["origin"] = origin
    return splits


def resolve_local_dir(task: Task, data_dir: Path) -> Path:
    sub = data_dir / task.local.get("dir", task.name)
    if sub.is_dir():
        return sub
    if data_dir.is_dir():
        return data_dir
    raise ClfbenchError(f"--data-dir {data_dir}: folder not found")


def load_local(task: Task, data_dir: Path) -> dict[str, LabeledTexts]:
    """Read the task's original files from `data_dir` as its `local:` block describes."""
    if not task.local:
        raise ClfbenchError(f"task {task.name}: no local file layout is defined; drop --data-dir")
    folder = resolve_local_dir(task, data_dir)
    out = {}
    for split_name, spec in task.local["splits"].items():
        spec = {**_defaults(task.local), **spec}
        path = folder / spec["file"]
        if spec.get("optional") and not path.exists():
            continue  # e.g. a training file that is not staged here; used when present
        if not path.exists():
            raise ClfbenchError(
                f"task {task.name}: {path} not found (expected the {split_name} split "
                f"of {task.local.get('dir', task.name)})"
            )
        out[split_name] = read_split(task, path, spec)
    return out


def _defaults(local: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in local.items() if k not in ("splits", "dir")}


def read_split(task: Task, path: Path, spec: dict[str, Any]) -> LabeledTexts:
    """One local file -> LabeledTexts with the task's labels; ids are `<file>:<row or id>`."""
    if spec.get("reader"):
        df = _reader(spec["reader"])(path, spec)
    else:
        options = {k: spec[k] for k in ("header", "quoting", "names") if k in spec}
        df = read_table(path, spec.get("format"), **options)
    return _to_labeled(task, df, spec, str(path), id_prefix=f"{path.name}:")


def _to_labeled(
    task: Task, df: pd.DataFrame, spec: dict[str, Any], source: str, id_prefix: str
) -> LabeledTexts:
    if spec.get("transform"):
        try:
            df = _reader(spec["transform"])(df)
        except ClfbenchError as e:
            raise ClfbenchError(f"{source}: {e}") from None
        except KeyError as e:
            raise ClfbenchError(f"{source}: no column {e.args[0]!r} (columns: "
                                f"{', '.join(map(str, df.columns))})") from None
    return frame_to_labeled(
        df,
        source,
        text_col=spec.get("text", "text"),
        pair_col=spec.get("pair"),
        label_col=spec.get("label", "label"),
        label_names=task.labels,
        label_map=spec.get("label_map"),
        id_col=spec.get("id"),
        id_prefix=id_prefix,
        known_labels=f"the labels of task {task.name}",
    )


def _reader(name: str):
    func = getattr(_readers, name, None)
    if func is None:
        raise ClfbenchError(f"tasks/readers.py has no reader or transform {name!r}")
    return func


def load_hub(task: Task) -> dict[str, LabeledTexts]:
    """Download the task's labeled splits with `datasets.load_dataset` (network needed).

    Integer ClassLabel columns are turned into their names first, so that `label_map` and
    the task's labels are written in names, whatever the hub's integer order is.
    """
    hub = task.hub
    if not hub:
        raise ClfbenchError(f"task {task.name}: no hub dataset is defined; use --data-dir")
    import datasets

    out = {}
    for split_name, hub_split in hub["splits"].items():
        kwargs = {"split": hub_split}
        if hub.get("revision"):
            kwargs["revision"] = hub["revision"]
        try:
            ds = datasets.load_dataset(hub["path"], hub.get("name"), **kwargs)
        except Exception as e:  # noqa: BLE001 - the hub raises many types; all mean "cannot load"
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ClfbenchError(
                f"task {task.name}: cannot load {hub['path']} split {hub_split!r} from the hub "
                f"({msg}); without network use --data-dir with local files"
            ) from None
        df = _class_label_names(ds, ds.to_pandas())
        out[split_name] = _to_labeled(task, df, hub, f"{hub['path']}:{hub_split}",
                                      id_prefix=f"{hub_split}:")
    return out


def _class_label_names(ds: Any, df: pd.DataFrame) -> pd.DataFrame:
    """Replace integer ClassLabel values by their names (-1, "no label", becomes None)."""
    import datasets

    for col, feature in (getattr(ds, "features", None) or {}).items():
        if isinstance(feature, datasets.ClassLabel) and col in df.columns:
            names = feature.names
            df[col] = [None if v is None or pd.isna(v) or int(v) < 0 else names[int(v)]
                       for v in df[col]]
    return df


def load_user_files(
    train: str | Path | None,
    validation: str | Path | None = None,
    test: str | Path | None = None,
    text_col: str = "text",
    label_col: str = "label",
    pair_col: str | None = None,
    data_seed: int = 99,
    max_train: int | None = None,
    max_eval: int | None = None,
) -> TaskSplits:
    """A user's own CSV/TSV/JSONL/JSON/Parquet files. Label names come from the train file.

    Labels may be strings or integers; a validation/test label never seen in train is an
    error (a classifier cannot predict it). Ids are `<file name>:<row>`.
    """
    if train is None:
        raise ClfbenchError("--train FILE is required for your own data")
    frames = {"train": train, "validation": validation, "test": test}
    available: dict[str, LabeledTexts] = {}
    names = None
    for split_name, path in frames.items():
        if path is None:
            continue
        df = read_table(path)
        data = frame_to_labeled(
            df, str(path), text_col, label_col, pair_col=pair_col, label_names=names,
            id_prefix=f"{Path(path).name}:", known_labels=f"the labels in {train}",
        )
        check_labeled(data, str(path), need_two_classes=split_name == "train")
        if split_name == "train":
            check_class_count(data, str(path), label_col)
        names = names or data.label_names
        available[split_name] = data
    splits = resolve_splits(available, data_seed, max_train=max_train, max_eval=max_eval,
                            source=str(train))
    check_labeled(splits.train, f"{train}: train split", need_two_classes=True)
    splits.notes["origin"] = "user files: " + ", ".join(
        f"{k}={v}" for k, v in frames.items() if v is not None
    )
    return splits
