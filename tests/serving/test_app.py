"""The HTTP server on 127.0.0.1: classify, model card, health, Prometheus metrics, limits, auth."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from serving_helpers import free_port, serving

from clfbench.serving.app import ServeSettings, create_app
from clfbench.serving.export import load_export

TEXTS = ["where is my parcel", "i was charged twice", "the app crashes on login"]


@pytest.fixture(scope="module")
def server(tfidf_export):
    model = load_export(tfidf_export)
    settings = ServeSettings(max_batch_size=32, max_wait_ms=5, max_texts=4, max_text_chars=200,
                             max_body_bytes=5000)
    with serving(create_app(model, settings)) as url:
        yield url, model


def test_classify_one_text_a_batch_and_pairs_as_the_model_does(server):
    url, model = server
    one = httpx.post(f"{url}/v1/classify", json={"text": TEXTS[0]}).json()["results"]
    batch = httpx.post(f"{url}/v1/classify", json={"texts": TEXTS}).json()["results"]
    pred, proba = model.classify(TEXTS)
    assert [r["label"] for r in batch] == [model.labels[i] for i in pred]
    assert one == batch[:1]
    np.testing.assert_allclose([[r["probabilities"][n] for n in model.labels] for r in batch], proba)
    pairs = httpx.post(f"{url}/v1/classify", json={"texts": TEXTS[:2], "text_pairs": ["a", "b"]}).json()
    ppred, _ = model.classify(TEXTS[:2], ["a", "b"])
    assert [r["label"] for r in pairs["results"]] == [model.labels[i] for i in ppred]


def test_health_model_card_and_prometheus_metrics(server, tfidf_export):
    url, _ = server
    assert httpx.get(f"{url}/healthz").json()["status"] == "ok"
    card = httpx.get(f"{url}/v1/model").json()
    assert card["export"]["run_id"] == card["card"]["run_id"] and "accuracy" in card["card"]["metrics"]
    with ThreadPoolExecutor(16) as pool:  # concurrent requests: some are merged into one call
        list(pool.map(lambda t: httpx.post(f"{url}/v1/classify", json={"text": t}), TEXTS * 16))
    httpx.post(f"{url}/v1/classify", json={"texts": []})
    r = httpx.get(f"{url}/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = dict(line.rsplit(" ", 1) for line in r.text.splitlines() if not line.startswith("#"))
    assert float(lines['clfbench_requests_total{method="POST",path="/v1/classify",status="200"}']) >= 48
    assert float(lines['clfbench_requests_total{method="POST",path="/v1/classify",status="422"}']) >= 1
    assert float(lines['clfbench_request_duration_seconds_bucket{le="+Inf"}']) >= 49
    assert float(lines["clfbench_batch_size_requests_count"]) < float(lines["clfbench_batch_size_requests_sum"])
    assert float(lines["clfbench_texts_classified_total"]) >= 48


@pytest.mark.parametrize("body, status, message", [
    ({"texts": ["a"] * 5}, 413, "5 texts in one request; the limit is 4"),
    ({"text": "x" * 201}, 422, "201 characters; the limit is 200"),
    ({"text": "   "}, 422, "empty"),
    ({"texts": ["a"], "text": "b"}, 422, "either 'text' or 'texts'"),
    ({"texts": ["a", "b"], "text_pairs": ["c"]}, 422, "as many items"),
    ({"txt": "a"}, 422, "txt"),
    ({"texts": "a"}, 422, "texts"),
])
def test_bad_requests_get_a_clear_json_4xx(server, body, status, message):
    r = httpx.post(f"{server[0]}/v1/classify", json=body)
    assert r.status_code == status and message in r.json()["error"]


def test_oversized_or_malformed_bodies(server):
    url = server[0]
    r = httpx.post(f"{url}/v1/classify", content=b'{"text": "' + b"a" * 6000 + b'"}',
                   headers={"content-type": "application/json"})
    assert r.status_code == 413 and "limit is 5000" in r.json()["error"]

    def chunks():  # no content-length: the limit holds while the body streams in
        for _ in range(10):
            yield b"a" * 1000

    r = httpx.post(f"{url}/v1/classify", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over 5000 bytes" in r.json()["error"]
    r = httpx.post(f"{url}/v1/classify", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "error" in r.json()


def test_api_key_is_required_and_never_logged(tfidf_export, caplog, capfd):
    key = "s3cret-key-123"
    app = create_app(load_export(tfidf_export), ServeSettings(api_key=key))
    with caplog.at_level(logging.DEBUG), serving(app) as url:
        assert httpx.post(f"{url}/v1/classify", json={"text": "hi"}).status_code == 401
        wrong = httpx.post(f"{url}/v1/classify", json={"text": "hi"}, headers={"X-API-Key": "nope"})
        assert wrong.status_code == 401 and key not in wrong.text
        assert httpx.get(f"{url}/v1/model").status_code == 401
        ok = httpx.post(f"{url}/v1/classify", json={"text": "hi"}, headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
        assert httpx.get(f"{url}/v1/model", headers={"X-API-Key": key}).status_code == 200
        assert httpx.get(f"{url}/healthz").status_code == 200
    out, err = capfd.readouterr()
    assert key not in caplog.text + out + err


@pytest.mark.slow
def test_the_cli_serves_an_export_and_shuts_down_gracefully_on_sigterm(tfidf_export):
    port = free_port()
    env = {**os.environ, "MY_KEY": "k-123"}
    proc = subprocess.Popen([sys.executable, "-m", "clfbench.cli", "serve", str(tfidf_export), "--port", str(port),
                             "--api-key-env", "MY_KEY", "--max-batch-size", "8"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        r = httpx.post(f"{url}/v1/classify", json={"texts": TEXTS}, headers={"X-API-Key": "k-123"})
        assert r.status_code == 200 and len(r.json()["results"]) == 3
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0  # drained: a clean exit, not death by the signal
    finally:
        if proc.poll() is None:
            proc.kill()
    log = proc.stdout.read()
    assert "drained, 3 texts classified; shut down" in log and "k-123" not in log


def start_cli_server(export, *args: str) -> tuple[subprocess.Popen, str]:
    """`clfbench serve EXPORT ARGS` on 127.0.0.1, once it answers /healthz; (process, base URL)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "clfbench.cli", "serve", str(export), "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 120
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, "server did not start"
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)


@pytest.mark.slow
def test_sigterm_with_requests_in_flight_answers_each_200_or_503_and_exits_0(tfidf_export):
    """32 requests in flight, each ~1.8 MB of text (a second or so of the model on a loaded
    machine), then SIGTERM with --drain-s 1: the old server cancelled what was left at its
    hard-coded 30 s as HTTP 500s and died by the signal."""
    proc, url = start_cli_server(tfidf_export, "--drain-s", "1")
    texts = [" ".join(TEXTS) * 100] * 256
    try:
        with ThreadPoolExecutor(32) as pool:
            def post(_):
                try:
                    return httpx.post(f"{url}/v1/classify", json={"texts": texts}, timeout=120)
                except httpx.TransportError as err:
                    return err

            futures = [pool.submit(post, i) for i in range(32)]
            deadline = time.monotonic() + 120
            while httpx.get(f"{url}/healthz").json()["pending"] < 16:  # a backlog of many seconds
                assert time.monotonic() < deadline and not any(f.done() for f in futures[16:])
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            answers = [f.result() for f in futures]
        code = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    log = proc.stdout.read()
    statuses = [a.status_code if isinstance(a, httpx.Response) else repr(a) for a in answers]
    assert set(statuses) <= {200, 503}, (statuses, log)
    assert all(a.headers.get("retry-after") == "5" for a in answers if a.status_code == 503)
    assert statuses.count(503) >= 1 and "drain limit of 1 s reached" in log  # the backlog outlasted it
    assert all(len(a.json()["results"]) == 256 for a in answers if a.status_code == 200)
    assert code == 0, log
    assert "drained" in log and "Traceback" not in log


def test_a_draining_app_answers_new_requests_503_with_retry_after(tfidf_export):
    app = create_app(load_export(tfidf_export), ServeSettings(drain_s=60))
    with serving(app) as url, httpx.Client() as client:  # a connection still open at the signal
        assert client.get(f"{url}/healthz").status_code == 200
        app.state.drain.draining = True  # what `serve` sets when uvicorn begins its shutdown
        r = client.post(f"{url}/v1/classify", json={"text": TEXTS[0]})
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert "shutting down" in r.json()["error"]
        assert client.get(f"{url}/healthz").status_code == 503  # load balancers: take it out


def test_serve_refuses_an_unset_key_variable(tfidf_export, monkeypatch, capsys):
    from clfbench.cli import main

    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    assert main(["serve", str(tfidf_export), "--api-key-env", "NO_SUCH_KEY_VAR"]) == 2
    assert "NO_SUCH_KEY_VAR: the variable is not set" in capsys.readouterr().err


def test_metrics_and_card_are_json_serialisable_exports(tfidf_export):
    assert json.loads((tfidf_export / "model_card.json").read_text())["labels"]
