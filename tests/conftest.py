"""Shared test set-up: offline hub, the tiny-model builders importable as `tiny_models`."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Runs execute in the test process (a fresh worker per run costs seconds); the isolation tests
# (tests/test_worker.py, tests/test_runner.py) ask for worker processes explicitly.
os.environ.setdefault("CLFBENCH_ISOLATE", "0")
sys.path.insert(0, str(Path(__file__).parent))

# The original dataset files: CLFBENCH_DATASETS, else the development layout's folder beside
# the checkout (a fresh clone has neither, and the tests that need them skip).
DATASETS = Path(os.environ.get("CLFBENCH_DATASETS")
                or Path(__file__).resolve().parents[1].parent / "shared" / "datasets")


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """The original dataset files (see DATASETS); tests that need them skip if absent."""
    if not DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {DATASETS}")
    return DATASETS


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """Tiny models run fastest on one thread; with `-n 2` each worker gets one core."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def zoo(tmp_path_factory):
    """Tiny encoders and decoders, built once per test session (see neural_helpers.Zoo)."""
    from neural_helpers import Zoo

    return Zoo(tmp_path_factory.mktemp("zoo"))
