"""Checkpoints that let an interrupted training resume where it stopped (`checkpoint_dir=DIR`).

Why: fine-tuning a grid takes hours; a lost Ray worker, a pre-empted machine or a Ctrl-C
should cost at most the epoch in progress, and the resumed training must end with exactly the
weights, history and kept epoch of an uninterrupted one (otherwise a resumed run would be
compared as if it were the same configuration when it is not).

Layout: `DIR/<method>-<fingerprint>/checkpoint-<step>/`, one folder per configuration. The
fingerprint covers the method's parameters (except `checkpoint_dir`), the learning rate of the
trial, the number of data-parallel processes, the device type, the versions of clfbench,
transformers and torch, and the training and validation data (texts, pairs, labels, label
names). So one `DIR` serves a whole grid and every learning-rate trial,
and a rerun resumes exactly the configurations that were interrupted; a changed configuration
gets a folder of its own instead of someone else's weights.

A checkpoint is saved after every epoch: the Trainer's own files (weights or adapter,
optimizer, scheduler, RNG states, `trainer_state.json`) plus clfbench's training state:
`clfbench_tensors.pt` (the kept epoch's weights; the data-order sampler's generator, since the
Trainer does not replay skipped epochs through the sampler) and `clfbench_state.json` (the
per-epoch history and selection scores, the kept epoch, the schedule, the training seconds so
far). The JSON file is written last and atomically: a checkpoint without it was cut short and
is ignored. Only the newest complete checkpoint is kept; once a training has ended (a
learning-rate trial waiting for the others) its optimizer state is dropped; and a fit that
completes deletes its folders.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clfbench.data.texts import LabeledTexts
from clfbench.errors import ClfbenchError
from clfbench.methods.base import load_file

STATE_FILE = "clfbench_state.json"  # history, scores, seconds...: written last, marks complete
TENSORS_FILE = "clfbench_tensors.pt"  # the kept epoch's weights, the sampler's generator
_TENSOR_KEYS = ("best", "sampler")
#: The Trainer's files needed only to train on (transformers' OPTIMIZER_NAME, SCHEDULER_NAME, SCALER_NAME).
_TRAINING_ONLY = ("optimizer.pt", "scheduler.pt", "scaler.pt")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_START_OVER = "delete {} to train this configuration from the start"
#: Parameters that say where a training saves its checkpoints: they change nothing it computes,
#: so neither a run's fingerprint nor a checkpoint's includes them.
NOT_FINGERPRINTED = frozenset({"checkpoint_dir", "checkpoint_steps"})


def check_checkpoint_dir(name: str, checkpoint_dir: str | None, checkpoint_steps: int | None) -> None:
    """What the parameter schema (types, `checkpoint_steps` >= 1) cannot see: the two together,
    and the folder on disk; when the method is built, not after training."""
    if checkpoint_steps is not None and checkpoint_dir is None:
        raise ClfbenchError(f"{name}: parameter checkpoint_steps={checkpoint_steps} needs checkpoint_dir "
                            "(where the checkpoints go)")
    if checkpoint_dir is None:
        return
    if not str(checkpoint_dir).strip():
        raise ClfbenchError(f"{name}: parameter checkpoint_dir={checkpoint_dir!r} (expected a folder path)")
    if Path(checkpoint_dir).exists() and not Path(checkpoint_dir).is_dir():
        raise ClfbenchError(f"{name}: parameter checkpoint_dir={checkpoint_dir}: exists and is not a folder")


def data_digest(data: LabeledTexts | None) -> str | None:
    """sha256 of the texts, pairs, labels and label names, in order."""
    if data is None:
        return None
    h = hashlib.sha256()
    for part in (data.texts, data.pairs or [], data.label_names):
        h.update(json.dumps(list(part), ensure_ascii=False).encode())
    h.update(np.asarray(data.labels, dtype=np.int64).tobytes())
    return h.hexdigest()


def configuration_folder(root: str | os.PathLike, method: str, params: dict[str, Any], lr: float,
                         train: LabeledTexts, validation: LabeledTexts | None,
                         world_size: int, device: str) -> Path:
    """`root/<method>-<16 hex digits>`: the folder of this configuration's checkpoints.

    Also fingerprinted: the device type (a training begun on a GPU is not finished on the
    CPU) and the versions of clfbench, transformers and torch (nor across an upgrade)."""
    import transformers

    from clfbench.version import __version__

    identity = {
        "method": method,
        "params": {k: v for k, v in sorted(params.items()) if k not in NOT_FINGERPRINTED},
        "lr": float(lr),
        "world_size": world_size,
        "device": torch.device(device).type,
        "versions": [__version__, transformers.__version__, torch.__version__],
        "train": data_digest(train),
        "validation": data_digest(validation),
    }
    blob = json.dumps(identity, sort_keys=True, default=str)
    return Path(root) / f"{method}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _CHECKPOINT.match(p.name)) and p.is_dir()]
    return sorted(found)


def latest(folder: Path) -> Path | None:
    """The newest complete checkpoint in `folder` (one with `clfbench_state.json`), or None."""
    complete = [p for _, p in _checkpoints(folder) if (p / STATE_FILE).is_file()]
    return complete[-1] if complete else None


def save_state(checkpoint: Path, state: dict[str, Any]) -> None:
    """Write clfbench's state into `checkpoint`, the JSON part last and atomically (it marks
    the checkpoint complete), then delete every other checkpoint of the configuration."""
    torch.save({k: state[k] for k in _TENSOR_KEYS}, checkpoint / TENSORS_FILE)
    _write_json(checkpoint, {**{k: v for k, v in state.items() if k not in _TENSOR_KEYS},
                             "configuration": checkpoint.parent.name})
    for _, other in _checkpoints(checkpoint.parent):
        if other != checkpoint:
            shutil.rmtree(other, ignore_errors=True)


def mark_ended(folder: Path) -> None:
    """The configuration's training has ended: its newest checkpoint is only ever reloaded
    (weights, kept epoch) from now on, so the optimizer state (twice the weights, for AdamW)
    goes, and the state says so. Keeps the disk use of a learning-rate search near one
    optimizer state, not one per trial."""
    checkpoint = latest(folder)
    if checkpoint is None:
        return
    state = _json_state(checkpoint)
    _write_json(checkpoint, {**state, "ended": True})
    for name in _TRAINING_ONLY:
        (checkpoint / name).unlink(missing_ok=True)


def _write_json(checkpoint: Path, state: dict[str, Any]) -> None:
    tmp = checkpoint / (STATE_FILE + ".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, checkpoint / STATE_FILE)


def load_state(checkpoint: Path) -> dict[str, Any]:
    """clfbench's state saved in `checkpoint`; a corrupted file is one clear error."""
    tensors = _read(checkpoint / TENSORS_FILE,
                    lambda p: torch.load(p, map_location="cpu", weights_only=True))
    return {**_json_state(checkpoint), **{k: tensors[k] for k in _TENSOR_KEYS}}


def seconds_spent(folder: Path) -> float:
    """Training seconds recorded in the configuration's newest complete checkpoint (0: none)."""
    checkpoint = latest(folder)
    return float(_json_state(checkpoint)["seconds"]) if checkpoint is not None else 0.0


def _json_state(checkpoint: Path) -> dict[str, Any]:
    state = _read(checkpoint / STATE_FILE, lambda p: json.loads(p.read_text(encoding="utf-8")))
    if not isinstance(state, dict) or not {"history", "scores", "seconds"} <= set(state):
        raise _corrupted(checkpoint / STATE_FILE, "not a clfbench training state")
    saved_for = state.get("configuration")
    if saved_for != checkpoint.parent.name:  # a folder copied or renamed from another configuration
        raise _corrupted(checkpoint / STATE_FILE,
                         f"saved by configuration {saved_for or 'unknown'}, not by "
                         f"{checkpoint.parent.name} (a checkpoint copied from another configuration "
                         "would resume someone else's weights)")
    return state


def check_trainer_files(checkpoint: Path) -> None:
    """The Trainer's `trainer_state.json`, read as the Trainer will read it, before resuming:
    a damaged one is one clear error, not a traceback from inside `Trainer.train`."""
    from transformers.trainer_callback import TrainerState

    _read(checkpoint / "trainer_state.json", lambda p: TrainerState.load_from_json(str(p)))


def damaged(checkpoint: Path, what: str, e: BaseException) -> ClfbenchError:
    """The one-line error for a Trainer file of `checkpoint` that failed to load."""
    detail = (str(e).strip().splitlines() or [""])[0][:200]
    return _corrupted(checkpoint / what, f"cannot be loaded, truncated or corrupted ({type(e).__name__}"
                      + (f": {detail})" if detail else ")"))


def _read(path: Path, loader: Any) -> Any:
    try:
        return load_file(path, loader)
    except ClfbenchError as e:
        raise ClfbenchError(f"{e}; {_START_OVER.format(path.parent.parent)}") from None


def _corrupted(path: Path, why: str) -> ClfbenchError:
    return ClfbenchError(f"{path}: {why}; {_START_OVER.format(path.parent.parent)}")


def remove(folders: list[Path]) -> None:
    """Delete the folders of configurations whose fit completed."""
    for folder in folders:
        shutil.rmtree(folder, ignore_errors=True)


# --- the data order -------------------------------------------------------------------------
def sampler_state(sampler: Any) -> Any:
    """The state of the sampler's random generator (torch or numpy), to restore on resume."""
    if isinstance(getattr(sampler, "generator", None), torch.Generator):
        return {"torch": sampler.generator.get_state()}
    if isinstance(getattr(sampler, "rng", None), np.random.Generator):
        return {"numpy": sampler.rng.bit_generator.state}
    raise TypeError(f"{type(sampler).__name__}: no seeded generator to save for resuming")


def set_sampler_state(sampler: Any, state: dict[str, Any]) -> None:
    if "torch" in state:
        sampler.generator.set_state(state["torch"])
    else:
        sampler.rng.bit_generator.state = state["numpy"]


__all__ = ["STATE_FILE", "TENSORS_FILE", "check_checkpoint_dir", "configuration_folder",
           "data_digest", "latest", "load_state", "mark_ended", "remove", "sampler_state",
           "save_state", "seconds_spent", "set_sampler_state"]
