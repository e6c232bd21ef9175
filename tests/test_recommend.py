"""`clfbench recommend`: pick, runner-up, ties and what would change the decision, on a results
folder written in the test through the store, as the runner writes one."""

from __future__ import annotations

import numpy as np
import pytest

from clfbench import cost as costs
from clfbench.cli import main
from clfbench.config import RunSpec
from clfbench.evaluate import RunResult
from clfbench.metrics import quality_metrics
from clfbench.recommend import Constraints, parse_volume, recommend
from clfbench.store import Store

N = 300
LABELS = ["neg", "pos"]
GOLD = np.arange(N) % 2


def save_run(root, method: str, wrong: range, *, p50: float, train_seconds: float = 0.0,
             n_train: int | None = None, degenerate: bool = False, model: str | None = None) -> None:
    """One run with exact predictions (wrong on `wrong`), saved with Store.save like the runner does."""
    pred = GOLD.copy()
    pred[list(wrong)] = 1 - pred[list(wrong)]
    size = None if n_train is None else str(n_train)
    spec = RunSpec(method=method, name="t", model=model, train_size=size)
    metrics = {**quality_metrics(GOLD, pred, LABELS), "latency_ms_p50": p50, "latency_ms_p95": 2 * p50,
               "latency_ms_p99": 3 * p50, "throughput_sps": 1000.0 / p50, "train_seconds": train_seconds,
               "degenerate": degenerate, "degenerate_reasons": ["collapsed"] if degenerate else [],
               "task": "t", "method": method, "model": model, "seed": 99, "fit_info": {}, "inference_info": {},
               **({"train_size": size, "n_train": n_train} if size else {})}
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
