"""A user's files: runs are named after their folder; the example grid finds its files from anywhere
(grid paths are relative to the grid file: tests/test_config.py)."""

from __future__ import annotations

from pathlib import Path

from clfbench.run.config import RunSpec, load_grid

ROOT = Path(__file__).resolve().parents[1]


def test_own_files_are_named_after_their_folder_or_name():
    spec = RunSpec(method="tfidf-lr", train_file="data/tickets/train.csv", test_file="data/tickets/test.csv")
    assert spec.task_label == "tickets"
    assert spec.run_id().startswith("tickets-tfidf-lr-s99-")
    assert RunSpec(method="tfidf-lr", name="support", train_file="data/tickets/train.csv").task_label == "support"
    assert RunSpec(method="tfidf-lr", task="sst2").task_label == "sst2"


def test_own_file_in_the_working_folder_is_named_after_that_folder(tmp_path, monkeypatch):
    folder = tmp_path / "emails"
    folder.mkdir()
    monkeypatch.chdir(folder)
    assert RunSpec(method="tfidf-lr", train_file="train.csv").task_label == "emails"


def test_the_example_grid_finds_its_files_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    specs, _ = load_grid(ROOT / "examples" / "tickets-grid.yaml")
    assert specs and {s.task_label for s in specs} == {"tickets"}
    for s in specs:
        for f in (s.train_file, s.validation_file, s.test_file):
            assert Path(f).is_file(), f
