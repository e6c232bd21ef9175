"""What qualifies a report's numbers (issue 21): latencies timed under contention are marked,
and a fine-tune stopped while its validation score was still rising is called under-trained."""

from __future__ import annotations

import numpy as np
import pytest
from report_fixtures import write_run

LABELS = ["a", "b"]
GOLD = [0, 1] * 30


def _history(*scores: float) -> list[dict]:
    return [{"epoch": i + 1, "train_loss": 1.0 / (i + 1), "val_macro_f1": s} for i, s in enumerate(scores)]


def _row(md: str, label: str) -> dict[str, str]:
    lines = [ln.strip().strip("|").split("|") for ln in md.splitlines() if ln.startswith("| ")]
    head = [c.strip() for c in lines[0]]
    row = next(cells for cells in lines[1:] if cells[0].strip().strip("*") == label)
    return dict(zip(head, [c.strip() for c in row]))


@pytest.mark.parametrize("fit, expected", [
    # best epoch 3 of 3, validation still rising: under-trained
    ({"history": _history(0.5, 0.6, 0.7), "best_epoch": 3, "optimizer": {"epochs": 3}},
     {"epochs": 3, "last": 0.7, "previous": 0.6}),
    # llm-sft's key names
    ({"history": [{"epoch": 1, "validation_macro_f1": 0.4}, {"epoch": 2, "validation_macro_f1": 0.5}],
      "best_epoch": 2, "optimizer": {"epochs": 2}}, {"epochs": 2, "last": 0.5, "previous": 0.4}),
    # validation fell at the end, the kept epoch is an earlier one
    ({"history": _history(0.5, 0.7, 0.6), "best_epoch": 2, "optimizer": {"epochs": 3}}, None),
    # selection "last" keeps epoch 3 although validation fell: not rising, not flagged
    ({"history": _history(0.5, 0.7, 0.6), "best_epoch": 3, "optimizer": {"epochs": 3}}, None),
    # early stopping: 3 of 5 epochs run
    ({"history": _history(0.5, 0.6, 0.7), "best_epoch": 3, "optimizer": {"epochs": 5}}, None),
    # one epoch: no trend to see
    ({"history": _history(0.5), "best_epoch": 1, "optimizer": {"epochs": 1}}, None),
    # no fine-tuning record at all (tfidf-lr)
    ({"C": 1.0}, None),
    # only the tuning record of methods/tuning.py (epoch keys are strings after JSON)
    ({"tuning": {"enabled": True, "max_epochs": 2, "best_trial": 1, "trials": [
        {"number": 0, "val_by_epoch": {"1": 0.6, "2": 0.5}},
        {"number": 1, "val_by_epoch": {"1": 0.55, "2": 0.65}}]}},
     {"epochs": 2, "last": 0.65, "previous": 0.55}),
])
def test_under_trained_reads_the_kept_epoch_and_the_validation_trend(fit, expected):
    from clfbench.report.runs import under_trained

    assert under_trained({"fit_info": fit}) == expected


def test_report_notes_an_under_trained_fine_tune_per_configuration(tmp_path):
    pytest.importorskip("matplotlib")
    from markupsafe import escape

    from clfbench.report import build_report

    root = tmp_path / "res"
    root.mkdir()
    fit = {"history": _history(0.5, 0.6, 0.7), "best_epoch": 3, "epochs_run": 3, "optimizer": {"epochs": 3}}
    worse = [1 - g if i < 15 else g for i, g in enumerate(GOLD)]
    write_run(root, "ft", task="t", method="encoder-ft", model="tiny", labels=LABELS, gold=GOLD, pred=worse,
              seed=1, extra_metrics={"fit_info": fit})
    write_run(root, "lr", task="t", method="tfidf-lr", labels=LABELS, gold=GOLD, pred=GOLD, seed=2)
    out = build_report(root, tmp_path / "rep", n_boot=200)
    note = ("encoder-ft/tiny: under-trained: best epoch is the last (3 of 3); more epochs may help "
            "(validation macro-F1 still rising over the last two epochs: 0.6000 -> 0.7000)")
    assert note in (out.out_dir / "performance_table.md").read_text()
    assert str(escape(note)) in out.html.read_text(encoding="utf-8")
    assert "tfidf-lr: under-trained" not in out.html.read_text(encoding="utf-8")


def test_latencies_measured_under_contention_are_marked_in_the_latency_tables(tmp_path):
    pytest.importorskip("matplotlib")
    from clfbench.report import build_report

    root = tmp_path / "res"
    root.mkdir()
    load = {"machine_load": {"contended": True, "other_cpu_pct": 180.0, "threshold_pct": 25.0}}
    write_run(root, "busy", task="t", method="tfidf-lr", labels=LABELS, gold=GOLD, pred=GOLD, seed=1,
              params={"C": 1.0}, p50=12.0, extra_metrics=load)
    write_run(root, "idle", task="t", method="tfidf-lr", labels=LABELS, gold=GOLD, pred=GOLD, seed=2,
              params={"C": 2.0}, p50=3.0, proba=np.eye(2)[GOLD],
              extra_metrics={"machine_load": {"contended": False, "other_cpu_pct": 3.0}})
    out = build_report(root, tmp_path / "rep", n_boot=200)
    eff = (out.out_dir / "efficiency_table.md").read_text()
    dec = (out.out_dir / "decision_table.md").read_text()
    busy, idle = _row(eff, "tfidf-lr C=1"), _row(eff, "tfidf-lr C=2")
    assert busy["p50 ms"] == "12.00 †" and busy["p95 ms"] == "24.00 †" and busy["samples/s"] == "100.0 †"
    assert idle["p50 ms"] == "3.00" and idle["p95 ms"] == "6.00"
    assert _row(dec, "tfidf-lr C=1")["p50 ms"] == "12.00 †" and _row(dec, "tfidf-lr C=2")["p50 ms"] == "3.00"
    footnote = ("† measured under contention (metrics.json machine_load.contended): tfidf-lr C=1: latency "
                "measured under contention: other processes used 180% CPU (100% = one core) during timing.")
    assert footnote in eff and footnote in dec and "tfidf-lr C=2: latency" not in eff
    # Without constraints the utility table still says what utility leaves out.
    assert "Utility has no quality floor, no significance test and no constraints" in dec
