"""Readers for dataset files that are not plain tables. A task YAML names one with `reader:`.

Each reader takes (task, path, spec) and returns LabeledTexts with the task's label order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from clfbench.data import LabeledTexts
from clfbench.errors import ClfbenchError
from clfbench.io import frame_to_labeled


def trec_label_lines(task, path: Path, spec: dict[str, Any]) -> LabeledTexts:
    """UIUC TREC lines `COARSE:fine question ...`; spec `level` is coarse or fine."""
    rows = []
    raw = path.read_bytes().decode("utf-8", errors="replace")
    for lineno, line in enumerate(raw.splitlines(), start=1):
        if not line.strip():
            continue
        label, _, question = line.partition(" ")
        if ":" not in label:
            raise ClfbenchError(f"{path}: line {lineno}: expected 'COARSE:fine question'")
        coarse, fine = label.split(":", 1)
        rows.append({"text": question.strip(), "label": coarse if spec["level"] == "coarse" else f"{coarse}:{fine}"})
    df = pd.DataFrame(rows)
    return frame_to_labeled(df, str(path), "text", "label", label_names=task.labels,
                            label_map=spec.get("label_map"))
