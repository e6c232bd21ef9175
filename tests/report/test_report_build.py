"""`clfbench report` end to end: files, agreement with metrics.json, verdicts, costs, errors."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clfbench.cli import main
from clfbench.report import build_report
from clfbench.report.error_analysis import jaccard, rescued_classes
from clfbench.report.runs import load_runs


def _metrics(root: Path, run_id: str) -> dict:
    return json.loads((root / run_id / "metrics.json").read_text())


def test_report_files_and_csv_agree_with_metrics(synthetic_dir, tmp_path):
    root, _ = synthetic_dir
    out = build_report(root, tmp_path / "rep", n_boot=300)
    for name in ("all_results.csv", "performance_table.md", "efficiency_table.md", "decision_table.md",
                 "significance_tests.md", "error_analysis.md", "report.html"):
        assert (out.out_dir / name).is_file(), name
    for p in out.plots:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    names = {p.name for p in out.plots}
    assert {"quality_per_task.png", "toy_quality_vs_latency.png", "toy_quality_vs_cost.png",
            "toy_confusion.png", "toy_reliability.png"} <= names
    df = pd.read_csv(out.csv)
    assert len(df) == 3
    for _, row in df.iterrows():
        m = _metrics(root, row["run_id"])
        for key in ("accuracy", "macro_f1", "mcc", "latency_ms_p50", "throughput_sps", "ece"):
            if m[key] is None:
                assert pd.isna(row[key])
            else:
                assert row[key] == pytest.approx(m[key])
        assert row["accuracy_ci_low"] <= m["accuracy"] <= row["accuracy_ci_high"]


def test_performance_table_matches_metrics_and_declares_best(synthetic_dir, tmp_path):
    root, _ = synthetic_dir
    out = build_report(root, tmp_path / "rep", n_boot=500)
    md = (out.out_dir / "performance_table.md").read_text()
    for run_id, label in (("t-encoder-ft-s1", "encoder-ft/tiny"), ("t-tfidf-lr-s1", "tfidf-lr"),
                          ("t-llm-api-s1", "llm-api/gpt-4o")):
        m = _metrics(root, run_id)
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {label} |") or ln.startswith(f"| **{label}** |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2].startswith(f"{m['accuracy']:.4f} [")
        assert cells[3].startswith(f"{m['macro_f1']:.4f} [")
        assert cells[4].startswith(f"{m['mcc']:.4f} [")
        assert cells[5] == f"{m['invalid_rate']:.3f}"
    # 90% vs 75% right on 120 examples: the encoder wins significantly on both metrics.
    assert "Macro-F1: best: encoder-ft/tiny, significantly ahead of llm-api/gpt-4o" in md
    assert "| **encoder-ft/tiny** |" in md


def test_tie_when_the_difference_is_not_significant(tmp_path, make_run):
    root = tmp_path / "res"
    root.mkdir()
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, 200)
    a = np.where(rng.random(200) < 0.8, gold, 1 - gold)
    b = a.copy()
    wrong = np.flatnonzero(a != gold)
    b[wrong[:3]] = gold[wrong[:3]]  # B: three more right out of 200
    for rid, pred in (("a", a), ("b", b)):
        make_run(root, rid, task="bin", method="tfidf-lr", labels=["n", "p"], gold=gold.tolist(),
                 pred=pred.tolist(), params={"C": 1.0 if rid == "a" else 2.0})
    out = build_report(root, tmp_path / "rep", n_boot=500)
    md = (out.out_dir / "performance_table.md").read_text()
    assert "Macro-F1: tie: tfidf-lr C=2, tfidf-lr C=1" in md
    assert "Accuracy: tie:" in md
    sig = (out.out_dir / "significance_tests.md").read_text()
    assert "| +0.0150 [" in sig and "| 1 vs 1 |" in sig  # B (the leader): three more right of 200


def test_seeds_become_mean_and_std(tmp_path, make_run):
    root = tmp_path / "res"
    root.mkdir()
    rng = np.random.default_rng(1)
    gold = rng.integers(0, 2, 100)
    accs = []
    for seed in (1, 2, 3):
        pred = np.where(rng.random(100) < 0.7 + 0.05 * seed, gold, 1 - gold)
        make_run(root, f"r{seed}", task="bin", method="encoder-ft", model="m", labels=["n", "p"],
                 gold=gold.tolist(), pred=pred.tolist(), seed=seed, params={"epochs": 1, "shot_seed": seed})
        accs.append(float((pred == gold).mean()))
    out = build_report(root, tmp_path / "rep", n_boot=200)
    md = (out.out_dir / "performance_table.md").read_text()
    line = next(ln for ln in md.splitlines() if ln.startswith("| encoder-ft/m epochs=1"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "3"
    assert cells[2].startswith(f"{np.mean(accs):.4f} ± {statistics.stdev(accs):.4f} [")


def test_efficiency_and_decision_tables(synthetic_dir, tmp_path):
    root, _ = synthetic_dir
    out = build_report(root, tmp_path / "rep", n_boot=200, tau=300)
    eff = (out.out_dir / "efficiency_table.md").read_text()
    # llm-api with gpt-4o: 100 input + 2 output tokens at $2.50 / $10 per 1M tokens = $270 per 1M.
    llm = next(ln for ln in eff.splitlines() if ln.startswith("| llm-api/gpt-4o |"))
    assert "| 270.0 |" in llm
    # encoder: p50 20 ms on 2 vCPU + 2 GiB serverless -> 0.02 * 53e-6 * 1e6 = $1.06 per 1M.
    enc = next(ln for ln in eff.splitlines() if ln.startswith("| encoder-ft/tiny |"))
    assert "| 1.06 |" in enc
    # what the timings were measured with, and the int8 path's agreement with fp32
    assert "| onnx int8 + fp32 re-check, batch 16 | 99.89% |" in enc
    assert "| native | - |" in next(ln for ln in eff.splitlines() if ln.startswith("| tfidf-lr |"))
    dec = (out.out_dir / "decision_table.md").read_text()
    assert "100U τ=300ms" in dec and "Ranked by tau = 300 ms" in dec
    df = pd.read_csv(out.csv).set_index("configuration")
    assert df.loc["encoder-ft/tiny", "agreement_with_fp32"] == 0.9989
    assert df.loc["encoder-ft/tiny", "inference_batch_size"] == 16
    f1 = _metrics(root, "t-tfidf-lr-s1")["macro_f1"]
    u = 100 * f1 / (0.001 * 53e-6 * 1e6) * np.exp(-1.0 / 500)
    assert df.loc["tfidf-lr", "utility_x100_tau500"] == pytest.approx(u)
    # tfidf (fastest, cheapest) and the encoder (best) are on the front; the llm is dominated.
    assert bool(df.loc["tfidf-lr", "config_on_pareto_front"]) and bool(df.loc["encoder-ft/tiny", "config_on_pareto_front"])
    assert not bool(df.loc["llm-api/gpt-4o", "config_on_pareto_front"])


def test_error_analysis(synthetic_dir, tmp_path):
    root, d = synthetic_dir
    out = build_report(root, tmp_path / "rep", n_boot=100)
    e = out.analyses[0].errors
    gold = d["gold"]
    wrong = {"encoder-ft/tiny": d["strong"] != gold, "tfidf-lr": d["weak"] != gold, "llm-api/gpt-4o": d["llm"] != gold}
    i, j = e.labels.index("encoder-ft/tiny"), e.labels.index("tfidf-lr")
    a, b = wrong["encoder-ft/tiny"], wrong["tfidf-lr"]
    assert e.jaccard[i][j] == pytest.approx((a & b).sum() / (a | b).sum())
    assert jaccard(np.zeros(3, bool), np.zeros(3, bool)) is None
    n_wrong = sum(w.astype(int) for w in wrong.values())
    assert [h["id"] for h in e.hardest] == [f"ex{k}" for k in sorted(np.flatnonzero(n_wrong >= 2),
                                                                     key=lambda k: (-n_wrong[k], k))][:20]
    assert e.hardest[0]["id"] == "ex0" and e.hardest[0]["n_wrong"] == 3
    assert set(e.hardest[0]["predictions"]) == set(wrong)
    # One LLM and one encoder: they disagree exactly where their predictions differ.
    assert e.n_disagreements == int((d["llm"] != d["strong"]).sum())
    assert e.per_class[0]["class"] == "alpha" and e.per_class[0]["train_count"] == 50


def test_rescued_classes(tmp_path, make_run):
    root = tmp_path / "res"
    root.mkdir()
    gold = [0, 0, 1, 1, 2, 2]
    make_run(root, "good", task="t", method="tfidf-lr", labels=["a", "b", "c"], gold=gold,
             pred=[0, 0, 1, 1, 2, 0], params={"C": 1}, train_counts=[10, 5, 1])
    make_run(root, "bad", task="t", method="tfidf-lr", labels=["a", "b", "c"], gold=gold,
             pred=[0, 0, 1, 0, 0, 0], params={"C": 2}, train_counts=[10, 5, 1])
    runs = {r.run_id: r for r in load_runs(root)}
    assert rescued_classes(runs["good"], runs["bad"]) == ["c"]
    assert rescued_classes(runs["bad"], runs["good"]) == []
    out = build_report(root, tmp_path / "rep", n_boot=100)
    text = (out.out_dir / "error_analysis.md").read_text()
    assert "tfidf-lr C=1 gets right at least once (F1 > 0) what tfidf-lr C=2 never does: c." in text


def test_html_escapes_dataset_text(synthetic_dir, tmp_path):
    root, _ = synthetic_dir
    out = build_report(root, tmp_path / "rep", n_boot=100)
    html = out.html.read_text()
    assert "<script>window.__pwned" not in html
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in html  # in the hardest-examples table
    data = re.search(r'<script id="quiz-data" type="application/json">(.*?)</script>', html, re.S).group(1)
    assert "<" not in data and "\\u003cscript\\u003e" in data
    quiz = json.loads(data)
    assert quiz[0]["text"].startswith("<script>window.__pwned")
    assert "data:image/png;base64," in html
    assert 'src="http' not in html and "href=\"http" not in html  # self-contained


def _toy_csv(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = {"sport": ["goal", "match", "team", "score"], "tech": ["chip", "code", "robot", "cloud"],
             "food": ["pasta", "spice", "bread", "soup"]}
    filler = ["the", "a", "today", "new", "big", "news", "about"]
    rows = []
    for _ in range(n):
        label = rng.choice(list(words))
        toks = list(rng.choice(filler, 4)) + list(rng.choice(words[label], 2))
        if rng.random() < 0.3:  # label noise-ish: a word from another class
            toks.append(rng.choice(words[rng.choice(list(words))]))
        rng.shuffle(toks)
        rows.append({"text": " ".join(toks), "label": label})
    pd.DataFrame(rows).to_csv(path, index=False)


def test_cli_report_on_real_tfidf_runs(tmp_path, capsys):
    from clfbench.run.config import RunSpec
    from clfbench.run.runner import run_grid

    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    _toy_csv(train, 300, 0)
    _toy_csv(test, 120, 1)
    res = tmp_path / "res"
    specs = [RunSpec(method="tfidf-lr", train_file=str(train), test_file=str(test), params={"C": c},
                     latency_examples=10) for c in (0.05, 10.0)]
    run_grid(specs, res, quiet=True)
    rc = main(["report", str(res), "--out", str(tmp_path / "rep"), "--bootstrap", "200", "--hardware", "aws-c7i-xlarge"])
    assert rc == 0
    assert "report written to" in capsys.readouterr().out
    df = pd.read_csv(tmp_path / "rep" / "all_results.csv")
    assert len(df) == 2
    for _, row in df.iterrows():
        m = _metrics(res, row["run_id"])
        assert row["macro_f1"] == pytest.approx(m["macro_f1"])
        # $/1M batched on an hourly machine = 1e6 / throughput / 3600 * usd_per_hour
        assert row["usd_per_1m_batch"] == pytest.approx(1e6 / m["throughput_sps"] / 3600 * 0.1785)
    md = (tmp_path / "rep" / "performance_table.md").read_text()
    for _, row in df.iterrows():
        assert f"{row['accuracy']:.4f} [" in md


def test_cli_report_errors(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nothing")]) == 2
    assert "index.sqlite missing" in capsys.readouterr().err
    (tmp_path / "x").mkdir()
    assert main(["report", str(tmp_path), "--hardware", "nope"]) == 2
    assert "known:" in capsys.readouterr().err


def test_break_even_table(tmp_path, make_run):
    root = tmp_path / "res"
    root.mkdir()
    gold = [0, 1] * 20
    # A: trained for an hour, 1 ms per request; B: no training, 100 ms, slightly better.
    make_run(root, "a", task="t", method="encoder-ft", model="small", labels=["n", "p"], gold=gold,
             pred=[0] * 40, p50=1.0, train_seconds=3600.0)
    make_run(root, "b", task="t", method="llm-prompt", model="big", labels=["n", "p"], gold=gold,
             pred=gold, p50=100.0, train_seconds=0.0)
    out = build_report(root, tmp_path / "rep", n_boot=100)
    be = out.analyses[0].break_even
    assert len(be) == 1
    per_s = 2 * 24e-6 + 2 * 2.5e-6
    expect = 3600 * per_s / ((0.1 - 0.001) * per_s)  # training $ / difference in $ per request
    assert be[0]["requests"] == pytest.approx(expect)
    assert (be[0]["cheaper_below"], be[0]["cheaper_above"]) == ("llm-prompt/big", "encoder-ft/small")
    assert f"{expect:,.0f}" in (out.out_dir / "decision_table.md").read_text()


def test_taus():
    from clfbench.errors import ClfbenchError
    from clfbench.report.build import taus_for

    assert taus_for(None) == ([250.0, 500.0, 1000.0], 500.0)
    assert taus_for(100) == ([100.0, 250.0, 500.0, 1000.0], 100.0)
    assert taus_for(500) == ([250.0, 500.0, 1000.0], 500.0)
    with pytest.raises(ClfbenchError, match="--tau"):
        taus_for(-5)


def test_metrics_json_that_disagrees_with_predictions_is_flagged(synthetic_dir, tmp_path):
    root, _ = synthetic_dir
    path = root / "t-tfidf-lr-s1" / "metrics.json"
    m = json.loads(path.read_text())
    m["accuracy"] = 0.99
    path.write_text(json.dumps(m))
    out = build_report(root, tmp_path / "rep", n_boot=100)
    sig = (out.out_dir / "significance_tests.md").read_text()
    assert "t-tfidf-lr-s1: accuracy in metrics.json (0.9900) differs from its predictions.jsonl" in sig
    assert "macro_f1 in metrics.json" not in sig
