"""`clfbench decide` from the command line: the whole call on the shipped tickets, and bad input
refused in one line, exit 2, before anything is written."""

from __future__ import annotations

from importlib import resources

import pytest

from clfbench.cli import main
from clfbench.serving.export import load_export

DEMO = resources.files("clfbench") / "demo_data"
FILES = ["--train", str(DEMO / "train.csv"), "--validation", str(DEMO / "validation.csv"),
         "--test", str(DEMO / "test.csv")]


def test_decide_runs_reports_recommends_and_exports(tmp_path, capsys):
    out = tmp_path / "decide"
    rc = main(["decide", *FILES, "--time-budget", "5m", "--families", "tfidf-lr", "--volume", "1e6/day",
               "--p95-ms", "100", "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "plan for a budget of 5 min 00 s" in printed and "recommend: tfidf-lr" in printed
    assert (out / "plan.json").is_file() and (out / "report" / "report.html").is_file()
    model = load_export(out / "export")
    ids, proba = model.classify(["my card was charged twice"])
    assert ids.shape == (1,) and proba.shape == (1, len(model.labels))


@pytest.mark.parametrize(("flags", "says"), [
    (["--time-budget", "soon"], "--time-budget: expected a duration such as 90s, 15m, 1h or 1h30m, got 'soon'"),
    (["--time-budget=-5m"], "--time-budget: expected a duration"),
    (["--time-budget", "1s"], "budget"),  # under the smallest plan
    (["--time-budget", "5m", "--llm", "gpt@ftp://host"], "--llm: expected MODEL"),
    (["--time-budget", "5m", "--volume", "lots"], "volume"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_work(tmp_path, capsys, flags, says):
    out = tmp_path / "decide"
    assert main(["decide", *FILES, *flags, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("clfbench: error:") and says in err, err
    assert not out.exists()


def test_decide_quiets_the_weight_loading_bars_of_its_probes(tmp_path, capsys):
    """Probing embed-probe or encoder-ft loads MiniLM in this process: transformers' "Loading
    weights" bars then filled the plan's output, one per probe (seen on trec, 8 of them)."""
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    try:
        main(["decide", *FILES, "--time-budget", "soon", "--out", str(tmp_path / "d")])
        assert not hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.disable_progress_bar()
