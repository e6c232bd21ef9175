"""The task registry: one YAML file per task in this folder, read into `Task` objects.

A task says what its text field(s) and labels are and where its data lives: on the
Hugging Face hub (for users with network access) and as original files in a local folder
(`--data-dir`). Odd file formats name a reader function in `tasks/readers.py`.

Keys of a task YAML:
  name, description, labels (in order; names are the classes' identity), text and, for
  pair tasks, text_pair (the fields' names), sizes (official labeled split sizes),
  prompt: {instruction, verbalizers: label -> answer word, text_name, pair_name};
  label_descriptions: label -> one-line description (optional; rendered into LLM prompts,
        `--param descriptions=off` leaves them out);
  hub: {path, name, revision, splits: {train|validation|test: hub split}, text, pair,
        label, label_map, id, transform}  -> `datasets.load_dataset(path, name, split=...)`;
  local: {dir, format, quoting, header, names, reader, transform, text, pair, label,
          label_map, id, splits: {train|validation|test: {file, optional, ...overrides}}}.
`label_map` maps raw values (file ids, hub ClassLabel names) to the task's labels;
without it a value must be a label name or an integer index into `labels`. How the
available splits become train/validation/test is `clfbench.data.splits.resolve_splits`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from clfbench.data.files import yaml_load
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
    label_descriptions: dict[str, str] = field(default_factory=dict)  # label -> one line
    source: Path | None = None

    def prompt_block(self) -> dict[str, Any]:
        """The `prompt` every LLM method receives for this task: field names, instruction,
        verbalizers and label descriptions (`engines.prompts.PromptBuilder` renders it)."""
        return {"text_name": self.text, "pair_name": self.text_pair, **self.prompt}

    def __post_init__(self) -> None:
        """Catch YAML slips (unquoted true/false become booleans, 1 a number; yes/no stay
        strings, `io.yaml_load`) where the task is defined."""
        where = f"task {self.name}" + (f" ({self.source})" if self.source else "")
        if not self.labels or not all(isinstance(x, str) and x for x in self.labels):
            raise ClfbenchError(f"{where}: labels must be non-empty strings (quote true, false and numbers)")
        if len(set(self.labels)) != len(self.labels):
            raise ClfbenchError(f"{where}: repeated label names")
        verbalizers = self.prompt.get("verbalizers", {})
        unknown = [k for k in verbalizers if k not in self.labels]
        if unknown:
            raise ClfbenchError(f"{where}: prompt verbalizer for unknown label {unknown[0]!r}")
        words = [str(v) for v in verbalizers.values()]
        if len(set(words)) != len(words):
            raise ClfbenchError(f"{where}: two labels share a prompt verbalizer")
        if self.label_descriptions:
            check_label_descriptions(self.label_descriptions, self.labels, f"{where}: label_descriptions")
            # The prompt block is what every LLM method receives: the descriptions travel in it.
            self.prompt = {"label_descriptions": dict(self.label_descriptions), **self.prompt}

    @property
    def is_pair(self) -> bool:
        return self.text_pair is not None


@cache
def all_tasks() -> dict[str, Task]:
    tasks = {}
    for path in sorted(TASK_DIR.glob("*.yaml")):
        raw = yaml_load(path.read_text())
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
        spec = yaml_load(path.read_text())
        return Task(**spec, source=path)
    except (OSError, yaml.YAMLError, TypeError) as e:
        raise ClfbenchError(f"{path}: not a valid task file: {str(e).splitlines()[0]}") from None


def check_label_descriptions(data: Any, labels: list[str] | None, where: str) -> dict[str, str]:
    """`data` as {label: one-line description}; unknown labels (when `labels` is given),
    non-string or multi-line values are one ClfbenchError naming `where`."""
    if not isinstance(data, dict):
        raise ClfbenchError(f"{where}: label descriptions must be a mapping label -> one-line description")
    out: dict[str, str] = {}
    for label, text in data.items():
        if not isinstance(text, str) or not text.strip() or "\n" in text.strip():
            raise ClfbenchError(f"{where}: the description of label {label!r} must be one non-empty line of text")
        out[str(label)] = text.strip()
    if labels is not None:
        unknown = sorted(set(out) - set(labels))
        if unknown:
            shown = ", ".join(labels[:10]) + (", ..." if len(labels) > 10 else "")
            raise ClfbenchError(f"{where}: unknown label(s) {', '.join(unknown)}; labels: {shown}")
    return out
