"""The inputs of `decide`, checked before any work: the user's files loaded the way
`clfbench run` loads them (so the profile describes the splits the runs will use), the run
options allowed, the output folder usable. Every problem is one ClfbenchError line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clfbench.data.splits import TaskSplits
from clfbench.data.tasks.loading import load_user_files
from clfbench.errors import ClfbenchError
from clfbench.run.plan import ORDER

#: RunSpec fields a caller may set for every run (a shorter test split, fewer latency calls);
#: the rest (method, model, params, sizes) is the plan's.
RUN_OPTIONS = ("seed", "data_seed", "max_eval", "latency_examples", "latency_warmup", "threads")
PLAN_FILE = "plan.json"


@dataclass
class Inputs:
    """The user's files and columns, their loaded splits, and the run options."""

    train_file: Path
    validation_file: Path | None
    test_file: Path | None
    text_col: str
    label_col: str
    text_pair_col: str | None
    splits: TaskSplits
    run_options: dict[str, Any] = field(default_factory=dict)

    def files(self) -> dict[str, Path]:
        """The files given, by split."""
        found = {"train": self.train_file, "validation": self.validation_file, "test": self.test_file}
        return {k: v for k, v in found.items() if v is not None}

    def spec_fields(self) -> dict[str, Any]:
        """The RunSpec fields every run of the plan shares."""
        return {"train_file": str(self.train_file), "text_col": self.text_col, "label_col": self.label_col,
                **({"validation_file": str(self.validation_file)} if self.validation_file else {}),
                **({"test_file": str(self.test_file)} if self.test_file else {}),
                **({"text_pair_col": self.text_pair_col} if self.text_pair_col else {}),
                **self.run_options}


def load_inputs(train_file: str | Path, validation_file: str | Path | None, test_file: str | Path | None,
                text_col: str, label_col: str, text_pair_col: str | None,
                run_options: Mapping[str, Any] | None = None) -> Inputs:
    """Read and check the files (missing or unreadable file, unknown column, one class: one
    line); validation and test splits are made from train when not given, as `clfbench run` does."""
    opts = dict(run_options or {})
    unknown = sorted(set(opts) - set(RUN_OPTIONS))
    if unknown:
        raise ClfbenchError(f"decide: run options {', '.join(unknown)} are not allowed "
                            f"(allowed: {', '.join(RUN_OPTIONS)})")
    paths = [None if p is None else Path(p).resolve() for p in (train_file, validation_file, test_file)]
    splits = load_user_files(*paths, text_col=text_col, label_col=label_col, pair_col=text_pair_col,
                             data_seed=opts.get("data_seed", 99), max_eval=opts.get("max_eval"))
    return Inputs(paths[0], paths[1], paths[2], text_col, label_col, text_pair_col, splits, opts)


def check_families(families: list[str] | None) -> None:
    """Every family named is one the plan knows."""
    unknown = [f for f in families or [] if f not in ORDER]
    if unknown:
        raise ClfbenchError(f"decide: unknown famil{'ies' if len(unknown) > 1 else 'y'} "
                            f"{', '.join(unknown)} (known: {', '.join(ORDER)})")


def check_out(out: Path) -> None:
    """`out` is a new or empty folder, or one a `decide` wrote (it holds plan.json)."""
    if out.exists() and not out.is_dir():
        raise ClfbenchError(f"{out}: exists and is not a folder; pick another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / PLAN_FILE).is_file():
        raise ClfbenchError(f"{out}: not empty and holds no {PLAN_FILE} from an earlier decide; "
                            "pick another --out")
