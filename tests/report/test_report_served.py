"""Served figures (`clfbench loadtest --attach` writes served.json) in the efficiency table."""

from __future__ import annotations

import json

import numpy as np
import pytest
from report_fixtures import write_run


def test_report_shows_served_latency_and_prices_the_run_from_served_throughput(tmp_path):
    from clfbench.report import build_report

    labels = ["a", "b"]
    gold = [0, 1] * 20
    for name, served in (("fast", 400.0), ("slow", None)):
        folder = write_run(tmp_path, name, task="t", method="tfidf-lr", labels=labels, gold=gold, pred=gold,
                           proba=np.eye(2)[gold], seed=1 if name == "fast" else 2, throughput=1000.0,
                           params={"C": 1.0 if name == "fast" else 2.0})
        if served:
            (folder / "served.json").write_text(json.dumps({"best_texts_per_s": served, "levels": [
                {"concurrency": 1, "p50_ms": 3.0, "p95_ms": 5.0}, {"concurrency": 8, "p50_ms": 9.0, "p95_ms": 12.0}]}))
    out = build_report(tmp_path, tmp_path / "report", n_boot=100)
    table = (out.out_dir / "efficiency_table.md").read_text()
    lines = [line.strip().strip("|").split("|") for line in table.splitlines() if line.startswith("| ")]
    rows = {cells[0].strip(): dict(zip([c.strip() for c in lines[0]], [c.strip() for c in cells])) for cells in lines[1:]}
    fast, slow = rows["tfidf-lr C=1"], rows["tfidf-lr C=2"]
    assert float(fast["served p50 ms"]) == 3 and float(fast["served p95 ms"]) == 5
    assert float(fast["served samples/s"]) == 400
    # priced from the 400/s served, not the 1000/s measured in process
    assert float(fast["$/1M served"]) == pytest.approx(float(fast["$/1M batched"]) * 1000.0 / 400.0, rel=0.02)
    assert slow["served p50 ms"] == slow["$/1M served"] == "-"
