"""Real run folders (saved models) on the shipped demo tickets, built once per session, and
the export of one of them."""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest

DEMO = resources.files("clfbench") / "demo_data"


@pytest.fixture(scope="session")
def make_run(tmp_path_factory, zoo) -> Callable[..., Path]:
    """`make_run(method, arch=None, **params)`: the folder of a small saved run (cached)."""
    from clfbench.run.config import RunSpec
    from clfbench.run.runner import run_grid

    root = tmp_path_factory.mktemp("runs")
    made: dict[tuple, Path] = {}

    def make(method: str, arch: str | None = None, pairs: bool = False, **params) -> Path:
        key = (method, arch, pairs, tuple(sorted(params.items())))
        if key not in made:
            files = {split: str(DEMO / f"{split}.csv") for split in ("train", "validation", "test")}
            if pairs:  # the second text: the first one's words reversed
                for split in files:
                    frame = pd.read_csv(files[split])
                    frame["text_pair"] = [" ".join(reversed(t.split())) for t in frame["text"]]
                    files[split] = str(root / f"pairs-{split}.csv")
                    frame.to_csv(files[split], index=False)
            spec = RunSpec(method=method, model=zoo(arch) if arch else None, name="tickets",
                           train_file=files["train"], validation_file=files["validation"],
                           test_file=files["test"], text_pair_col="text_pair" if pairs else None,
                           max_train=120, max_eval=40, latency_examples=2, save_model=True, params=params)
            made[key] = run_grid([spec], root / f"{method}-{len(made)}", quiet=True, isolate=False)[0]
        return made[key]

    return make


@pytest.fixture(scope="session")
def tfidf_export(make_run, tmp_path_factory) -> Path:
    from clfbench.serving.export import export_run

    return export_run(make_run("tfidf-lr", C=1.0), tmp_path_factory.mktemp("exports") / "tfidf")
