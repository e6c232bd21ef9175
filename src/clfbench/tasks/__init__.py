"""The task registry: one YAML file per task in this folder, read into `Task` objects.

A task says what its text field(s) and labels are and where its data lives: on the
Hugging Face hub (for users with network access) and as original files in a local folder
(`--data-dir`). Odd file formats name a reader function in `tasks/readers.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from clfbench.errors import ClfbenchError

TASK_DIR = Path(__file__).parent


@dataclass
class Task:
    name: str
    description: str
    labels: list[str]
    text: str = "text"  # the field name used in prompts for the first text
    text_pair: str | None = None  # set for pair tasks (NLI, QA)
    hub: dict[str, Any] = field(default_factory=dict)
    local: dict[str, Any] = field(default_factory=dict)
    prompt: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # official labeled split sizes
    source: Path | None = None

    @property
    def is_pair(self) -> bool:
        return self.text_pair is not None


@cache
def all_tasks() -> dict[str, Task]:
    tasks = {}
    for path in sorted(TASK_DIR.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        for spec in raw if isinstance(raw, list) else [raw]:
            task = Task(**spec, source=path)
            tasks[task.name] = task
    return tasks


def get_task(name: str) -> Task:
    tasks = all_tasks()
    if name not in tasks:
        raise ClfbenchError(f"unknown task {name!r}; known tasks: {', '.join(sorted(tasks))}")
    return tasks[name]


def task_from_yaml(path: str | Path) -> Task:
    """A user's own task described in a YAML file of the same form as the built-in ones."""
    path = Path(path)
    try:
        spec = yaml.safe_load(path.read_text())
        return Task(**spec, source=path)
    except (OSError, yaml.YAMLError, TypeError) as e:
        raise ClfbenchError(f"{path}: not a valid task file: {str(e).splitlines()[0]}") from None
