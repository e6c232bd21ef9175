"""Fixtures for report tests: hand-written run folders with exact predictions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from report_fixtures import synthetic_results, write_run  # noqa: E402


@pytest.fixture
def make_run():
    return write_run


@pytest.fixture
def synthetic_dir(tmp_path: Path) -> tuple[Path, dict]:
    root = tmp_path / "results"
    root.mkdir()
    return root, synthetic_results(root)
