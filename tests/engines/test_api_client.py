"""ChatClient against a real loopback server: streaming, usage, retries, budget, key hygiene."""

from __future__ import annotations

import math
import time

import pytest

pytest.importorskip("httpx")  # the `api` extra

from api_server import ApiServer, keyword_reply

from clfbench.engines.api_client import (
    ApiError,
    Budget,
    ChatClient,
    _retry_after,
    is_loopback,
    prompt_token_bound,
)
from clfbench.engines.pricing import load_prices, price_for, request_cost

RULE = keyword_reply({"great", "good"})


def msgs(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def client(server: ApiServer, **kw) -> ChatClient:
    kw.setdefault("timeout_s", 0.5)
    kw.setdefault("backoff_base_s", 0.01)
    kw.setdefault("backoff_max_s", 0.05)
    return ChatClient(server.url, "test-model", kw.pop("api_key", "sk-test"), **kw)


@pytest.mark.parametrize("stream", [True, False])
def test_answers_in_order_and_tokens_equal_server_usage(stream):
    texts = [f"review {i} was {'great' if i % 3 == 0 else 'dull'}" for i in range(12)]
    with ApiServer(RULE) as server:
        c = client(server, concurrency=4, stream=stream)
        results = c.chat_many([msgs(t) for t in texts], max_tokens=4, top_logprobs=5)
        summary = c.summary()
    assert [r.text for r in results] == [RULE(msgs(t))["text"] for t in texts]
    assert all(r.status == "ok" and r.attempts == 1 for r in results)
    assert summary["input_tokens"] == sum(u[0] for u in server.usage_sent)
    assert summary["output_tokens"] == sum(u[1] for u in server.usage_sent)
    assert summary["requests"] == summary["http_attempts"] == len(server.requests) == 12
    assert results[0].logprobs[0]["top"][0] == ("positive", pytest.approx(math.log(0.9)))
    body = server.requests[0]["body"]
    assert body["logprobs"] is True and body["top_logprobs"] == 5 and body["max_tokens"] == 4
    if stream:
        assert body["stream_options"] == {"include_usage": True}
        assert all(r.ttft_s is not None and 0 < r.ttft_s <= r.latency_s for r in results)
        assert summary["ttft_ms_p50"] is not None
    else:
        assert all(r.ttft_s is None for r in results)
        assert summary["ttft_ms_p50"] is None
    assert server.requests[0]["headers"]["Authorization"] == "Bearer sk-test"


@pytest.mark.parametrize("stream", [True, False])
def test_retries_429_500_timeout_malformed_then_success(stream):
    with ApiServer(RULE, hang_s=2.0) as server:
        server.script.extend(["429", "500", "hang", "malformed"])
        c = client(server, stream=stream, timeout_s=0.3)
        r = c.chat(msgs("a great film"), max_tokens=2)
        summary = c.summary()
    assert r.status == "ok" and r.text == "positive" and r.attempts == 5
    assert [q["behaviour"] for q in server.requests] == ["429", "500", "hang", "malformed", "ok"]
    assert summary["retries"] == 4 and summary["failures"] == 0
    assert summary["errors_by_kind"] == {"http_429": 1, "http_500": 1, "timeout": 1, "malformed": 1}
    # only the well-formed reply's usage is counted
    assert (summary["input_tokens"], summary["output_tokens"]) == server.usage_sent[0]


def test_retry_after_is_honoured_and_backoff_is_seeded():
    waits: list[float] = []
    with ApiServer(RULE, retry_after="7") as server:
        server.script.extend(["429", "500", "500"])
        c = client(server, sleep=waits.append, backoff_base_s=1.0, backoff_max_s=100.0, seed=3)
        assert c.chat(msgs("good"), max_tokens=2).status == "ok"
    assert waits[0] == 7.0  # Retry-After: 7
    assert 1.0 <= waits[1] <= 2.0 and 2.0 <= waits[2] <= 4.0  # base * 2^attempt, half-jittered
    again: list[float] = []
    with ApiServer(RULE) as server:
        server.script.extend(["500", "500", "500"])
        c = client(server, sleep=again.append, backoff_base_s=1.0, backoff_max_s=100.0, seed=3)
        c.chat(msgs("good"), max_tokens=2)
    c2 = client(server, backoff_base_s=1.0, backoff_max_s=100.0, seed=3)
    assert again == [c2._backoff(a, None) for a in range(3)]  # same seed, same jitter
    assert _retry_after({"retry-after-ms": "250"}) == 0.25
    assert _retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # in the past
    assert _retry_after({}) is None


def test_concurrent_requests_overlap_and_ttft_measures_the_wait():
    batch = [msgs(f"text {i}") for i in range(8)]
    with ApiServer(RULE, delay_s=0.2) as server:
        results = client(server, concurrency=4, timeout_s=5).chat_many(batch, max_tokens=2)
    assert all(r.status == "ok" for r in results)
    # Requests overlap, up to the limit and never beyond it (counted by the server, not timed;
    # on a loaded machine the 4 threads may not all be inside the 0.2 s delay at once).
    assert 2 <= server.max_in_flight <= 4
    assert all(r.ttft_s >= 0.2 for r in results)
    with ApiServer(RULE, delay_s=0.2) as server:
        client(server, concurrency=1, timeout_s=5).chat_many(batch[:3], max_tokens=2)
    assert server.max_in_flight == 1


def test_gives_up_after_max_retries():
    with ApiServer(RULE) as server:
        server.script.extend(["500"] * 5)
        c = client(server, max_retries=2)
        r = c.chat(msgs("good"), max_tokens=2)
        summary = c.summary()
    assert r.status == "failed" and r.attempts == 3 and "500" in r.error
    assert len(server.requests) == 3
    assert summary["failures"] == 1 and summary["succeeded"] == 0


def test_refused_key_is_an_error_that_does_not_echo_the_key():
    secret = "sk-SENTINEL-refused-9f8e7d"
    with ApiServer(RULE) as server:
        server.script.append("401")
        c = client(server, api_key=secret)
        with pytest.raises(ApiError) as err:
            c.chat(msgs("good"), max_tokens=2)
        assert err.value.status == 401 and len(server.requests) == 1  # not retried
        server.script.append("400")
        with pytest.raises(ApiError, match="logprobs are not supported"):
            c.chat(msgs("good"), max_tokens=2)
    assert secret not in str(err.value) and secret not in repr(c)


def test_budget_is_hard_and_stops_sending():
    # each request: worst case = estimate + max_tokens tokens at $1 per token
    cost = lambda i, o: float(i + o)  # noqa: E731
    batch = [msgs(f"text number {i} good") for i in range(10)]
    worst = prompt_token_bound(batch[0]) + 3
    with ApiServer(RULE) as server:
        c = client(server, concurrency=3, cost_fn=cost, budget_usd=4.5 * worst)
        results = c.chat_many(batch, max_tokens=3)
        summary = c.summary()
    sent = [r for r in results if r.status == "ok"]
    assert len(sent) == len(server.requests) >= 4  # actual usage is below the worst case
    assert [r.status for r in results] == ["ok"] * len(sent) + ["not_sent"] * (10 - len(sent))
    assert summary["budget_exhausted"] is True and summary["not_sent_budget"] == 10 - len(sent)
    assert summary["usd_spent"] == pytest.approx(sum(a + b for a, b in server.usage_sent))
    assert summary["usd_spent"] <= 4.5 * worst


def test_budget_counts_attempts_that_may_have_been_billed():
    cost = lambda i, o: float(i + o)  # noqa: E731
    m = msgs("good")
    worst = prompt_token_bound(m) + 2
    with ApiServer(RULE, hang_s=2.0) as server:
        server.script.extend(["hang", "hang"])
        c = client(server, cost_fn=cost, budget_usd=2.5 * worst, timeout_s=0.2)
        r = c.chat(m, max_tokens=2)
    # two timed-out attempts are charged their worst case; a third does not fit: a budget
    # stop (not_sent), not a failed request that would make the run incomplete
    assert r.status == "not_sent" and r.attempts == 2 and "budget exhausted before retry" in r.error
    assert c.summary()["failures"] == 0 and c.summary()["not_sent_budget"] == 1
    assert c.budget.uncertain_usd == pytest.approx(2 * worst)


def test_budget_reservations():
    b = Budget(1.0)
    assert b.reserve(0.6) and not b.reserve(0.6) and b.exhausted
    b.settle(0.6, spent_usd=0.1)
    assert not b.reserve(0.1)  # once exhausted, nothing more is sent
    assert b.remaining_usd == pytest.approx(0.9)


def test_helpers():
    assert is_loopback("http://127.0.0.1:8000/v1") and is_loopback("http://localhost/v1")
    assert not is_loopback("https://api.openai.com/v1")
    # 3 priming + per message: 4 framing + role bytes + content bytes (UTF-8)
    assert prompt_token_bound(msgs("x" * 10)) == 3 + 4 + len("user") + 10
    assert prompt_token_bound(msgs("电影")) == 3 + 4 + len("user") + 6


def test_prices(tmp_path):
    prices = load_prices()
    assert prices["gpt-4o"] == {"input": 2.5, "output": 10.0}
    assert prices["claude-sonnet-4-5"] == {"input": 3.0, "output": 15.0}
    assert price_for("gpt-4o-2024-08-06", prices) == prices["gpt-4o"]
    assert price_for("gpt-4o-mini-2024-07-18", prices) == prices["gpt-4o-mini"]
    assert price_for("unknown-model", prices) is None
    # USD per 1M requests = mean input tokens x price_in + mean output tokens x price_out
    assert request_cost("gpt-4o", 100, 2, prices) * 1e6 == pytest.approx(100 * 2.5 + 2 * 10.0)
    bad = tmp_path / "p.yaml"
    bad.write_text("models:\n  m: {input: -1, output: 2}\n")
    with pytest.raises(Exception, match=r"p.yaml: models.m.input"):
        load_prices(bad)
    flat = tmp_path / "flat.yaml"
    flat.write_text("m: {input: 1, output: 2}\n")
    assert load_prices(flat) == {"m": {"input": 1.0, "output": 2.0}}
    with pytest.raises(Exception, match="no price"):
        request_cost("other", 1, 1, load_prices(flat))


@pytest.mark.parametrize("stream", [True, False])
def test_timeout_is_a_deadline_even_for_a_trickling_reply(stream):
    # Each byte arrives well within a per-read timeout; the whole reply would take > 5 s.
    with ApiServer(RULE, trickle_s=0.05) as server:
        server.script.extend(["trickle", "trickle"])
        c = client(server, stream=stream, timeout_s=0.5, max_retries=1)
        t0 = time.perf_counter()
        r = c.chat(msgs("good"), max_tokens=2)
        elapsed = time.perf_counter() - t0
    assert r.status == "failed" and r.attempts == 2 and "0.5 s" in r.error
    assert c.summary()["errors_by_kind"] == {"timeout": 2}
    assert elapsed < 2.5  # two attempts of 0.5 s, the backoff and some slack
    with ApiServer(RULE, trickle_s=0.001) as server:  # the same reply, fast enough: accepted
        server.script.append("trickle")
        r = client(server, stream=stream, timeout_s=5).chat(msgs("good"), max_tokens=2)
    assert r.status == "ok" and r.text == "ok"


def test_budget_holds_for_cjk_text_when_the_server_sends_no_usage():
    # The server bills a token per character (as CJK text roughly costs) and reports no usage.
    cost = lambda i, o: (i + o) * 1e-3  # noqa: E731
    text = "这部电影的剧情非常精彩演员的表演也很出色" * 3
    batch = [msgs(f"{text}{i}") for i in range(30)]
    with ApiServer(RULE, usage=False, count_tokens=len) as server:
        c = client(server, concurrency=4, cost_fn=cost, budget_usd=1.0)
        results = c.chat_many(batch, max_tokens=3)
        summary = c.summary()
    billed = sum(cost(a, b) for a, b in server.usage_sent)
    assert summary["usage_missing"] == len(server.usage_sent) > 0
    assert billed <= 1.0  # the cap holds for what the server actually billed
    assert summary["usd_spent"] >= billed  # and the spend is never under-counted
    assert summary["budget_exhausted"] and results[-1].status == "not_sent"


def test_budget_reservations_are_atomic_across_threads():
    import threading

    b, granted = Budget(1.0), []
    start = threading.Barrier(8)

    def grab() -> None:
        start.wait()
        for _ in range(50):
            if b.reserve(0.1):
                granted.append(1)

    threads = [threading.Thread(target=grab) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(granted) == 10 and b.reserved_usd == pytest.approx(1.0)


def test_close_stops_the_request_loop():
    with ApiServer(RULE) as server:
        c = client(server)
        assert c.chat(msgs("good"), max_tokens=2).status == "ok"
        thread = c._runner._thread
        c.close()
    assert not thread.is_alive() and c._runner is None


def test_a_stream_closed_before_done_is_not_an_answer():
    """A reply cut off (the stream ends cleanly but without `data: [DONE]`) is a failed
    attempt: retried, and never returned as the model's answer."""
    with ApiServer(RULE) as server:
        server.script.append("cut")  # sends "positive", then closes: looks whole, is not
        c = client(server)
        r = c.chat(msgs("a great film"), max_tokens=4)
        assert r.status == "ok" and r.attempts == 2 and r.text == "positive"
        assert c.summary()["errors_by_kind"] == {"truncated": 1}
    with ApiServer(RULE, done=False) as server:  # every reply whole but for [DONE]
        c = client(server, max_retries=1)
        r = c.chat(msgs("a great film"), max_tokens=4)
        assert r.status == "failed" and r.text == "" and "[DONE]" in r.error
        assert len(server.requests) == 2 and c.summary()["failures"] == 1


def test_negative_usage_keeps_the_worst_case_and_the_budget_on():
    """A server reporting -1,000,000 tokens: the spend is the request's worst case (not
    negative), the tokens are not counted, and the budget still stops the next request."""
    cost = lambda i, o: float(i + o)  # noqa: E731
    m = msgs("a good film")
    worst = prompt_token_bound(m) + 3
    with ApiServer(RULE) as server:
        server.script.append("negative-usage")
        c = client(server, cost_fn=cost, budget_usd=1.5 * worst)
        first = c.chat(m, max_tokens=3)
        second = c.chat(m, max_tokens=3)
        summary = c.summary()
    assert first.status == "ok" and first.cost_usd == pytest.approx(worst)
    assert second.status == "not_sent" and len(server.requests) == 1
    assert summary["usd_spent"] == pytest.approx(worst) and summary["budget_exhausted"] is True
    assert summary["usage_invalid"] == 1 and summary["usage_missing"] == 1
    assert summary["input_tokens"] == 0 and summary["output_tokens"] == 0
