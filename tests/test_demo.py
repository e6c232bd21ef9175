"""`clfbench demo` ends with a verdict: the report is built and who is best is printed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from clfbench.demo import demo_specs, run_demo

pytest.importorskip("matplotlib")


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
    assert "Verdict on support-tickets (163 test examples, 2 configurations):" in printed
    assert "  Best: tfidf-lr (macro-F1 0.848), significantly ahead of every other configuration " \
        "on 163 test examples." in printed
    verdict = next(line for line in printed.splitlines() if line.startswith("  macro-F1: "))
    # C=0.01 all but erases the weights: the default C is significantly better.
    assert verdict.startswith("  macro-F1: best: tfidf-lr"), verdict
    assert "significantly ahead of tfidf-lr C=0.01" in verdict
    assert f"Report: {html}" in printed
