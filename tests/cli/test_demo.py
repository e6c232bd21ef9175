"""`clfbench demo` ends with a verdict: the report is built and who is best is printed."""

from __future__ import annotations

import csv
import importlib.util
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from clfbench.cli.demo import demo_specs, run_demo

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "src" / "clfbench" / "demo_data"


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_the_shipped_data_is_what_the_generator_makes(tmp_path, monkeypatch):
    """scripts/make_demo_data.py, run again, writes the shipped files byte for byte."""
    spec = importlib.util.spec_from_file_location("make_demo_data", ROOT / "scripts" / "make_demo_data.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    monkeypatch.setattr(gen, "OUT", tmp_path)
    gen.main()
    for name in ("train", "validation", "test"):
        assert (tmp_path / f"{name}.csv").read_bytes() == (DATA / f"{name}.csv").read_bytes(), name


def test_the_test_split_is_large_and_balanced():
    """1000 test tickets, 5 intents of about 200 each (3% of labels flipped at random), and no
    ticket shared between splits: enough for a gap of a few points to be significant."""
    splits = {name: rows(DATA / f"{name}.csv") for name in ("train", "validation", "test")}
    assert {k: len(v) for k, v in splits.items()} == {"train": 500, "validation": 150, "test": 1000}
    for name, part in splits.items():
        counts = Counter(r["label"] for r in part)
        assert sorted(counts) == ["account", "billing", "delivery", "returns", "technical"], name
        expected = len(part) / 5
        assert all(abs(c - expected) <= 0.1 * expected for c in counts.values()), (name, counts)
    texts = [{r["text"] for r in part} for part in splits.values()]
    assert not (texts[0] & texts[2]) and not (texts[1] & texts[2])


def test_the_demo_fine_tunes_briefly_with_a_fixed_learning_rate():
    """encoder-ft fixes lr (no 4-trial search) and trains 2 epochs: the demo stays about 2 minutes
    on 2 CPU cores, which is what README.md says."""
    methods = {s.method: s for s in demo_specs()}
    assert methods["tfidf-lr"].test_file.endswith("test.csv")
    if "encoder-ft" in methods:
        assert methods["encoder-ft"].params == {"epochs": 2, "lr": 1e-4, "batch_size": 16}
    [line] = [x for x in (ROOT / "README.md").read_text().splitlines() if x.startswith("clfbench demo ")]
    assert "# slow: trains MiniLM, 2 min" in line, line  # measured with this recipe: remeasure on a change


pytest_matplotlib = pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None,
                                       reason="matplotlib is not installed (pip install -e '.[demo]')")


@pytest_matplotlib
def test_demo_builds_the_report_and_prints_the_verdict(tmp_path, capsys):
    """Two TF-IDF configurations on the demo data (the full demo trains MiniLM: minutes)."""
    tfidf = demo_specs()[0]
    assert tfidf.method == "tfidf-lr"
    specs = [replace(tfidf, latency_examples=5),
             replace(tfidf, latency_examples=5, params={"C": 0.01})]
    out = tmp_path / "demo"
    assert run_demo(str(out), quiet=True, specs=specs) == 0
    printed = capsys.readouterr().out
    html = out / "report" / "report.html"
    assert html.is_file() and (out / "report" / "significance_tests.md").is_file()
    assert "Verdict on support-tickets (1000 test examples, 2 configurations):" in printed
    assert "  Best: tfidf-lr (macro-F1 0.839), significantly ahead of every other configuration " \
        "on 1000 test examples." in printed
    verdict = next(line for line in printed.splitlines() if line.startswith("  macro-F1: "))
    # C=0.01 all but erases the weights: the default C is significantly better.
    assert verdict.startswith("  macro-F1: best: tfidf-lr"), verdict
    assert "significantly ahead of tfidf-lr C=0.01" in verdict
    assert f"Report: {html}" in printed
