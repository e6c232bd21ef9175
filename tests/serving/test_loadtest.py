"""`clfbench loadtest`: bounded, loopback only, percentiles and throughput; --attach feeds the report."""

from __future__ import annotations

import json

import pytest
from serving_helpers import serving

from clfbench.errors import ClfbenchError
from clfbench.serving.app import ServeSettings, create_app
from clfbench.serving.export import load_export
from clfbench.serving.loadtest import check_target, run_loadtest, summarize


@pytest.mark.parametrize("url", ["http://10.0.0.1:8000", "http://example.com", "https://8.8.8.8/v1/classify"])
def test_remote_hosts_are_refused_unless_allowed(url):
    with pytest.raises(ClfbenchError, match="not a loopback address"):
        check_target(url)
    assert check_target(url, allow_remote=True).endswith("/v1/classify")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://localhost:1/", "http://[::1]:8000/v1/classify"])
def test_loopback_hosts_are_accepted(url):
    assert check_target(url).endswith(":8000/v1/classify") or check_target(url).endswith(":1/v1/classify")


def test_summary_percentiles_and_throughput():
    s = summarize([0.001 * i for i in range(1, 101)], errors=2, elapsed_s=2.0, texts_per_request=4)
    assert s["p50_ms"] == pytest.approx(50.5) and s["p99_ms"] == pytest.approx(99.01)
    assert s["requests"] == 102 and s["requests_per_s"] == 50 and s["texts_per_s"] == 200


def test_loadtest_against_a_live_server_and_attach_to_the_run(tfidf_export, make_run, capsys):
    from clfbench.cli import main

    model = load_export(tfidf_export)
    with serving(create_app(model, ServeSettings(max_batch_size=16, max_wait_ms=2))) as url:
        result = run_loadtest(url, concurrency=(1, 4), rate=200, requests=30, duration_s=20)
        down = run_loadtest(url + "/nope", concurrency=(2,), requests=5, duration_s=5)
        run = make_run("tfidf-lr", C=1.0)
        assert main(["loadtest", url, "--concurrency", "2", "--requests", "10", "--attach", str(run)]) == 0
    for row in [*result["levels"], result["open_loop"]]:
        assert row["ok"] == 30 and row["errors"] == 0
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] and row["requests_per_s"] > 0
    assert [r["concurrency"] for r in result["levels"]] == [1, 4] and result["open_loop"]["rate"] == 200
    assert down["levels"][0]["errors"] == 5 and "HTTP 404" in down["levels"][0]["error_examples"][0]
    served = json.loads((run / "served.json").read_text())
    assert served["levels"][0]["ok"] == 10 and served["best_texts_per_s"] > 0
    assert "concurrency 2" in capsys.readouterr().out


def test_attach_refuses_a_run_the_server_does_not_serve(tmp_path, make_run):
    from clfbench.serving.loadtest import attach

    run = make_run("tfidf-lr", C=1.0)
    with pytest.raises(ClfbenchError, match="serves run other"):
        attach({"levels": []}, run, "other")
    with pytest.raises(ClfbenchError, match="not a run folder"):
        attach({"levels": []}, tmp_path)
