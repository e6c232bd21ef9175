"""`clfbench recommend`: pick, runner-up, ties and what would change the decision, on a results
folder written in the test through the store, as the runner writes one."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from clfbench.cli import main
from clfbench.evaluation.metrics import quality_metrics
from clfbench.report import cost as costs
from clfbench.report.recommend import Constraints, parse_volume, recommend
from clfbench.results.store import Store
from clfbench.run.config import RunSpec
from clfbench.run.evaluate import RunResult

N = 300
LABELS = ["neg", "pos"]
GOLD = np.arange(N) % 2


def save_run(root, method: str, wrong: range, *, p50: float, train_seconds: float = 0.0,
             n_train: int | None = None, degenerate: bool = False, model: str | None = None,
             extra: dict | None = None) -> None:
    """One run with exact predictions (wrong on `wrong`), saved with Store.save like the runner does;
    `extra`: more metrics.json fields (fit_info, machine_load, ...)."""
    pred = GOLD.copy()
    pred[list(wrong)] = 1 - pred[list(wrong)]
    size = None if n_train is None else str(n_train)
    spec = RunSpec(method=method, name="t", model=model, train_size=size)
    metrics = {**quality_metrics(GOLD, pred, LABELS), "latency_ms_p50": p50, "latency_ms_p95": 2 * p50,
               "latency_ms_p99": 3 * p50, "throughput_sps": 1000.0 / p50, "train_seconds": train_seconds,
               "degenerate": degenerate, "degenerate_reasons": ["collapsed"] if degenerate else [],
               "task": "t", "method": method, "model": model, "seed": 99, "fit_info": {}, "inference_info": {},
               **({"train_size": size, "n_train": n_train} if size else {}), **(extra or {})}
    rows = [{"id": f"ex{i}", "text": f"text {i}", "gold": LABELS[GOLD[i]], "pred": LABELS[pred[i]]} for i in range(N)]
    Store(root).save(RunResult(spec, metrics, rows, {"spec": spec.identity()}))


@pytest.fixture
def results(tmp_path):
    """encoder-ft and tfidf-lr tied (90% vs 89%, wrong on different examples); embed-probe
    significantly worse; llm-prompt best but slow (p95 900 ms); a degenerate run that scores best."""
    root = tmp_path / "runs"
    save_run(root, "encoder-ft", range(0, 30), p50=25.0, train_seconds=600.0, n_train=200, model="minilm")
    save_run(root, "tfidf-lr", range(150, 183), p50=0.5, train_seconds=2.0, n_train=5000)
    save_run(root, "embed-probe", range(0, 75), p50=5.0, train_seconds=10.0, n_train=50, model="minilm")
    save_run(root, "llm-prompt", range(0, 9), p50=450.0, model="tiny")
    save_run(root, "decoder-head", range(0, 3), p50=1.0, train_seconds=5.0, n_train=100, degenerate=True)
    return root


def test_pick_runner_up_tie_and_what_would_change(results):
    c = Constraints(parse_volume("1e6/day"), p95_ms=200, price_per_label=0.1)
    (rec,) = recommend(results, c, n_boot=2000)
    d = rec.decision
    # encoder-ft leads; tfidf-lr is tied with it; the cheaper of the two is picked.
    assert {o.label for o in d.tied} == {"encoder-ft/minilm [train 200]", "tfidf-lr [train 5000]"}
    assert d.pick.label == "encoder-ft/minilm [train 200]" and d.runner_up.label == "tfidf-lr [train 5000]"
    assert "embed-probe/minilm [train 50]" in d.p_vs_leader  # significantly behind: named with its p
    assert d.excluded["llm-prompt/tiny"] == "p95 900 ms > 200 ms"
    assert d.excluded["decoder-head [train 100]"] == "degenerate"
    # monthly cost = serving at 3e7 requests + (training + labels x $0.10) / 12, on the default profile
    per_s = costs.get_profile(None).usd_per_second
    serve = {"enc": 25e-3 * per_s * 1e6 * 30, "tfidf": 0.5e-3 * per_s * 1e6 * 30}
    once = {"enc": 600 * per_s + 200 * 0.1, "tfidf": 2 * per_s + 5000 * 0.1}
    assert d.pick.monthly(c) == pytest.approx(serve["enc"] + once["enc"] / 12)
    assert d.runner_up.monthly(c) == pytest.approx(serve["tfidf"] + once["tfidf"] / 12)
    # At volume multiplier m the costs cross: tfidf-lr (cheaper to serve) becomes the pick.
    m = (once["tfidf"] - once["enc"]) / 12 / (serve["enc"] - serve["tfidf"])
    text = rec.text()
    assert f"at {m:.3g}x the volume ({1e6 * m:,.0f}/day) tfidf-lr [train 5000] would be recommended" in text
    assert "with a p95 limit under 50 ms tfidf-lr [train 5000] would be recommended" in text
    assert "with a p95 limit of 900 ms or more llm-prompt/tiny would be recommended" in text
    assert "tied on quality with tfidf-lr [train 5000]" in text and "(in-process)" in text


def test_labels_and_budget_filter(results):
    c = Constraints(1e6, p95_ms=200, labels_available=100, price_per_label=0.1)
    (rec,) = recommend(results, c, n_boot=1000)
    assert rec.decision.pick.label == "embed-probe/minilm [train 50]"
    assert rec.decision.excluded["encoder-ft/minilm [train 200]"] == "needs 200 labels > 100"
    assert "with 200 labels available encoder-ft/minilm [train 200] would be recommended" in rec.text()
    (none,) = recommend(results, Constraints(1e6, p95_ms=200, budget_usd_month=0.5), n_boot=1000)
    assert none.decision.pick is None and "no configuration meets the constraints" in none.text()


def test_cli_prints_the_recommendation_and_writes_html(results, tmp_path, capsys):
    out = tmp_path / "rec.html"
    rc = main(["recommend", str(results), "--volume", "1e6/day", "--p95-ms", "200", "--price-per-label", "0.1",
               "--html", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0 and "recommend: encoder-ft/minilm [train 200]" in printed
    assert "runner-up (tied): tfidf-lr [train 5000]" in printed
    assert "recommend: encoder-ft/minilm [train 200]" in out.read_text()


@pytest.mark.parametrize("argv, message", [
    (["--volume", "1e6/week?"], "--volume: '1e6/week?' is not a request volume"),
    (["--volume", "1e6/day", "--p95-ms", "-5"], "--p95-ms: expected a non-negative number"),
    (["--volume", "1e6/day", "--peak-factor", "0.5"], "--peak-factor: expected a number >= 1"),
])
def test_bad_input_is_one_line_exit_2(results, capsys, argv, message):
    assert main(["recommend", str(results), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_no_results_is_one_line_exit_2(tmp_path, capsys):
    assert main(["recommend", str(tmp_path / "none"), "--volume", "1e6/day"]) == 2
    assert "no clfbench results here" in capsys.readouterr().err


def test_parse_volume_units():
    assert parse_volume("1e6/day") == 1e6 and parse_volume("50/s") == 50 * 86400
    assert parse_volume("2000/hour") == 48000 and parse_volume("3e7/month") == pytest.approx(1e6)
    assert parse_volume("1000") == 1000


def test_report_with_constraints_shows_the_recommendation(results, tmp_path, capsys):
    """`clfbench report --volume ...`: recommend's answer, line for line, at the top of
    report.html and in recommendation.md; without constraints, a hint and no section."""
    pytest.importorskip("matplotlib")
    from markupsafe import escape

    rc = main(["report", str(results), "--out", str(tmp_path / "rep"), "--bootstrap", "200",
               "--volume", "1e6/day", "--p95-ms", "200", "--price-per-label", "0.1"])
    printed = capsys.readouterr().out
    assert rc == 0 and "recommend: encoder-ft/minilm [train 200]" in printed
    (rec,) = recommend(results, Constraints(1e6, p95_ms=200, price_per_label=0.1), n_boot=200)
    page = (tmp_path / "rep" / "report.html").read_text(encoding="utf-8")
    assert 'id="recommendation"' in page
    assert all(str(escape(line.strip())) in page for line in rec.lines())
    md = (tmp_path / "rep" / "recommendation.md").read_text(encoding="utf-8")
    assert "- recommend: encoder-ft/minilm [train 200]" in md and "- runner-up (tied): tfidf-lr" in md

    assert main(["report", str(results), "--out", str(tmp_path / "plain"), "--bootstrap", "200"]) == 0
    plain = (tmp_path / "plain" / "report.html").read_text(encoding="utf-8")
    assert 'id="recommendation"' not in plain and "--volume 1e6/day" in plain
    assert not (tmp_path / "plain" / "recommendation.md").exists()


def test_report_with_a_bad_constraint_fails_before_any_work(results, tmp_path, capsys):
    assert main(["report", str(results), "--out", str(tmp_path / "rep"), "--volume", "1e6/day",
                 "--p95-ms", "-5"]) == 2
    assert "--p95-ms: expected a non-negative number" in capsys.readouterr().err
    assert not (tmp_path / "rep").exists()


# --- issue 21 part 7: served load level, contention, under-training, utility vs the pick ----------
def _folder(root, method: str):
    """The run folder of `method` in a results folder."""
    return Path(next(r["path"] for r in Store(root).runs() if r["method"] == method))


def _attach(root, method: str, levels: list[dict], best_texts_per_s: float) -> None:
    """What `clfbench loadtest --attach` leaves: served.json in the run folder."""
    (_folder(root, method) / "served.json").write_text(json.dumps({"levels": levels, "best_texts_per_s": best_texts_per_s}))


SERVED = [{"mode": "closed", "concurrency": 1, "mean_ms": 40.0, "p50_ms": 38.0, "p95_ms": 48.0},
          {"mode": "closed", "concurrency": 8, "mean_ms": 70.0, "p50_ms": 66.0, "p95_ms": 82.0}]


def test_served_p95_is_taken_at_the_concurrency_the_volume_implies_and_served_cost_replaces_in_process(results, capsys):
    """1e6/day = 11.6/s, peak 3 x = 34.7/s; at concurrency 1 (40 ms) 1.39 requests are in flight, more
    than 1, so the concurrency-8 level (82 ms p95) applies, not the concurrency-1 one (48 ms); the
    cost is the served one from the 130 texts/s measured over HTTP."""
    _attach(results, "encoder-ft", SERVED, 130.0)
    c = Constraints(1e6, p95_ms=60, price_per_label=0.1)
    (rec,) = recommend(results, c, n_boot=1000)
    enc = next(o for o in rec.options if o.label == "encoder-ft/minilm [train 200]")
    assert rec.decision.excluded[enc.label] == "p95 82 ms > 60 ms"
    assert enc.latency_source == "served at concurrency 8"
    profile = costs.get_profile(None)
    assert enc.usd_per_1m == pytest.approx(costs.usd_per_1m_batch(130.0, profile))
    assert enc.cost_source == "served throughput"
    text = rec.text()
    assert "peak 3 x mean = 34.7/s" in text
    assert "encoder-ft/minilm [train 200]: concurrency 8 (34.7/s x 70 ms = 2.43 in flight)" in text
    # A fifth of the volume: 0.28 in flight at concurrency 1, whose p95 (48 ms) meets the limit.
    (low,) = recommend(results, replace(c, volume_per_day=2e5), n_boot=1000)
    assert low.decision.pick.label == "encoder-ft/minilm [train 200]"
    assert "p95 48 ms (served at concurrency 1)" in low.text()
    # Where the volume changes the served level, what would change the decision says so.
    assert f"at {1 / (34.72222 * 0.040):.3g}x the volume" in text
    # A peak beyond the highest level measured is said, not hidden.
    (high,) = recommend(results, replace(c, volume_per_day=1e7, p95_ms=None), n_boot=1000)
    assert "more than the highest level measured: its p95 is optimistic" in high.text()
    # --peak-factor 1 (no peak): 0.46 in flight at concurrency 1, which is then used.
    assert main(["recommend", str(results), "--volume", "1e6/day", "--peak-factor", "1"]) == 0
    printed = capsys.readouterr().out
    assert "peak 1 x mean = 11.6/s" in printed and "p95 48 ms (served at concurrency 1)" in printed


def test_contended_latency_is_a_caveat_of_the_recommendation(tmp_path):
    root = tmp_path / "runs"
    load = {"machine_load": {"contended": True, "other_cpu_pct": 150.0}}
    save_run(root, "encoder-ft", range(0, 30), p50=25.0, train_seconds=600.0, n_train=200, model="minilm")
    save_run(root, "tfidf-lr", range(150, 183), p50=0.5, train_seconds=2.0, n_train=5000, extra=load)
    (rec,) = recommend(root, Constraints(1e6, p95_ms=200, price_per_label=0.1), n_boot=1000)
    assert rec.decision.runner_up.label == "tfidf-lr [train 5000]"
    (caveat,) = [ln for ln in rec.lines() if "contention" in ln]
    assert caveat.strip().startswith("caveat: in-process latency measured under contention")
    assert ("tfidf-lr [train 5000]: latency measured under contention: other processes used 150% CPU" in caveat
            and "encoder-ft" not in caveat)
    # A served measurement replaces the contended in-process figures: no caveat left.
    _attach(root, "tfidf-lr", SERVED[:1], 500.0)
    (served,) = recommend(root, Constraints(1e6, p95_ms=200, price_per_label=0.1), n_boot=1000)
    assert "contention" not in served.text()


UNDER_TRAINED = {"fit_info": {"history": [{"epoch": 1, "val_macro_f1": 0.5}, {"epoch": 2, "val_macro_f1": 0.6},
                                          {"epoch": 3, "val_macro_f1": 0.7}],
                              "best_epoch": 3, "epochs_run": 3, "optimizer": {"epochs": 3}}}


def test_under_trained_fine_tune_behind_the_pick_is_noted(tmp_path):
    root = tmp_path / "runs"
    save_run(root, "tfidf-lr", range(0, 30), p50=0.5, train_seconds=2.0)
    save_run(root, "encoder-ft", range(0, 75), p50=25.0, train_seconds=600.0, model="minilm", extra=UNDER_TRAINED)
    (rec,) = recommend(root, Constraints(1e6), n_boot=1000)
    assert rec.decision.pick.label == "tfidf-lr"
    (note,) = [ln.strip() for ln in rec.lines() if "under-trained" in ln]
    assert note.startswith("note: encoder-ft/minilm: under-trained: best epoch is the last (3 of 3); "
                           "more epochs may help (validation macro-F1 still rising over the last two epochs: "
                           "0.6000 -> 0.7000)")
    assert "it is behind tfidf-lr on macro-F1 (0.7500 vs 0.9000)" in note


def test_utility_winner_and_pick_are_explained_side_by_side(tmp_path, results):
    """The issue's case: utility crowns the cheap tfidf-lr, the recommendation picks embed-probe
    because tfidf-lr is significantly behind it on macro-F1."""
    root = tmp_path / "issue"
    save_run(root, "embed-probe", range(0, 30), p50=5.0, train_seconds=10.0, model="minilm")
    save_run(root, "tfidf-lr", range(100, 175), p50=0.5, train_seconds=2.0)
    (rec,) = recommend(root, Constraints(1e6), n_boot=1000)
    assert rec.decision.pick.label == "embed-probe/minilm"
    delta, p = rec.decision.p_vs_leader["tfidf-lr"]
    assert rec.utility_line() == (
        "utility vs recommendation: utility (macro-F1 / $ per 1M x exp(-p50 / 500 ms); no quality floor, "
        "significance test or constraint) ranks tfidf-lr first; the recommendation picks embed-probe/minilm "
        "because tfidf-lr is significantly behind embed-probe/minilm on macro-F1 (0.7500 vs 0.9000, "
        f"-{delta:.3f}, paired bootstrap, Holm p={p:.2g})")
    assert rec.utility_line() in [ln.strip() for ln in rec.lines()]
    # Tied on quality but dearer per month once 5,000 labels are paid for.
    (tied,) = recommend(results, Constraints(1e6, p95_ms=200, price_per_label=0.1), n_boot=1000)
    line = tied.utility_line()
    assert "ranks tfidf-lr [train 5000] first; the recommendation picks encoder-ft/minilm [train 200] because " \
           "tfidf-lr [train 5000] is tied with it on macro-F1 but costs more per month" in line


def test_report_puts_the_utility_explanation_next_to_the_utility_table(tmp_path):
    pytest.importorskip("matplotlib")
    root = tmp_path / "runs"
    save_run(root, "embed-probe", range(0, 30), p50=5.0, train_seconds=10.0, model="minilm")
    save_run(root, "tfidf-lr", range(100, 175), p50=0.5, train_seconds=2.0)
    assert main(["report", str(root), "--out", str(tmp_path / "rep"), "--bootstrap", "500",
                 "--volume", "1e6/day"]) == 0
    decision = (tmp_path / "rep" / "decision_table.md").read_text(encoding="utf-8")
    md = (tmp_path / "rep" / "recommendation.md").read_text(encoding="utf-8")
    said = "ranks tfidf-lr first; the recommendation picks embed-probe/minilm because tfidf-lr is significantly behind"
    assert said in decision and said in md
