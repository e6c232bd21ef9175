"""A client for OpenAI-compatible chat-completions endpoints, built for measuring.

What it adds over a plain POST: retries with seeded exponential backoff (429, 5xx,
timeouts, connection errors, malformed replies, streams that close before `data: [DONE]`;
`Retry-After` honoured), a thread pool for
`concurrency` requests in flight, streaming (SSE) so that time to first token is measured,
token accounting from each reply's `usage`, and a hard USD budget shared by all requests.

The budget is enforced *before* sending: a request goes out only if its worst-case cost
(an upper bound on its prompt tokens + `max_tokens` output, priced) fits in what is left
after what was spent, what is reserved by requests in flight, and what may have been billed
by attempts whose outcome is unknown (timeouts, replies cut off or malformed); the check and
the reservation are one atomic step, whatever the concurrency. The prompt bound needs no
tokenizer: a byte-level BPE token covers at least one UTF-8 byte, so the prompt's bytes
(plus chat framing) bound its tokens, for any script (CJK text has 3 bytes per character).
Spend is settled from the actual `usage` of each reply; a reply without `usage`, or with
impossible usage (negative token counts, counted in `usage_invalid`), keeps its worst case, so
spend never goes down and the budget stays on. (A server that reports more prompt tokens than the bound raises all later
bounds by that ratio.)

`timeout_s` is a deadline for each attempt as a whole (connect, headers, body): every
request runs on the client's event loop under `asyncio.wait_for`, so a reply trickling in
one byte at a time is cut off at the deadline, not kept alive by each byte.

httpx is used (the `api` extra) rather than urllib because it keeps connections alive across
requests and threads: with urllib every request would pay a new TCP/TLS handshake, which
would inflate the very latencies being measured. The API key lives only in this object's
request headers; it is never logged, and error messages are scrubbed of it.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import random
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import numpy as np

from clfbench.errors import ClfbenchError
from clfbench.extras import import_optional

#: Statuses worth retrying; others (400, 401, 403, 404, 422) fail at once.
RETRY_STATUSES = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}
#: How many positions of token logprobs a reply keeps (the answer starts within them).
KEEP_LOGPROB_POSITIONS = 8
#: A server asking to wait longer than this is not waited for (the attempt counts as failed).
MAX_RETRY_AFTER_S = 600.0


class ApiError(ClfbenchError):
    """The endpoint refused the request in a way retrying cannot fix (bad key, model, body)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(url: str) -> bool:
    """True for http(s)://127.x.x.x, localhost or [::1]: local servers need no API key."""
    host = (urlparse(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


#: Chat-template tokens per message beyond its role and content (OpenAI counts 3).
FRAMING_TOKENS = 4


def prompt_token_bound(messages: list[dict[str, Any]]) -> int:
    """An upper bound on a chat prompt's tokens, for any byte-level BPE tokenizer: the UTF-8
    bytes of each message's role, name and content (a token covers at least one byte),
    + FRAMING_TOKENS per message, + 3 for the reply's priming."""

    def nbytes(v: Any) -> int:
        return len(str(v).encode("utf-8")) if v is not None else 0

    return 3 + sum(FRAMING_TOKENS + nbytes(m.get("role")) + nbytes(m.get("name"))
                   + nbytes(m.get("content")) for m in messages)


def check_api_key(key: str, source: str) -> None:
    """A key that cannot be sent as a header (whitespace around it, a non-ASCII or control
    character) is one clear error naming `source` (e.g. the variable), never the value."""
    if key != key.strip():
        problem = "has leading or trailing whitespace (a newline?)"
    elif not key.isascii():
        problem = "contains a non-ASCII character"
    elif not key.isprintable() or " " in key:
        problem = "contains a space or a control character"
    else:
        return
    raise ClfbenchError(f"the API key in {source} {problem}; fix the value (it is not shown)")


@dataclass
class ChatResult:
    """One logical request (all its attempts). `status`: ok | failed | not_sent."""

    status: str
    text: str = ""
    #: Per generated position (first few): {"token", "logprob", "top": [(token, logprob), ...]}.
    logprobs: list[dict[str, Any]] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    ttft_s: float | None = None
    latency_s: float | None = None  # of the successful attempt
    total_s: float = 0.0  # all attempts and waits
    attempts: int = 0
    cost_usd: float | None = None
    error: str | None = None


@dataclass
class _Reply:
    text: str
    logprobs: list[dict[str, Any]] | None
    usage: dict[str, Any] | None
    ttft_s: float | None
    latency_s: float


class _Retryable(Exception):
    """An attempt failed in a way worth retrying. `billed_maybe`: the server may have charged."""

    def __init__(self, kind: str, message: str, billed_maybe: bool, wait_s: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.billed_maybe = billed_maybe
        self.wait_s = wait_s


class Budget:
    """A hard USD limit shared by concurrent requests (reserve before sending, settle after)."""

    def __init__(self, limit_usd: float | None) -> None:
        self.limit_usd = limit_usd
        self.spent_usd = 0.0  # from actual usage (worst case where a reply had no usage)
        self.uncertain_usd = 0.0  # worst case of attempts that may or may not have been billed
        self.reserved_usd = 0.0
        self.exhausted = False
        self._lock = threading.Lock()

    def reserve(self, worst_usd: float) -> bool:
        """Claim `worst_usd` if it fits; once a request does not fit, nothing more is sent."""
        with self._lock:
            if self.limit_usd is None:
                self.reserved_usd += worst_usd
                return True
            committed = self.spent_usd + self.uncertain_usd + self.reserved_usd
            if self.exhausted or committed + worst_usd > self.limit_usd + 1e-12:
                self.exhausted = True
                return False
            self.reserved_usd += worst_usd
            return True

    def settle(self, reserved_usd: float, spent_usd: float = 0.0, uncertain_usd: float = 0.0) -> None:
        with self._lock:
            self.reserved_usd = max(0.0, self.reserved_usd - reserved_usd)
            self.spent_usd += spent_usd
            self.uncertain_usd += uncertain_usd

    @property
    def remaining_usd(self) -> float | None:
        if self.limit_usd is None:
            return None
        return self.limit_usd - self.spent_usd - self.uncertain_usd - self.reserved_usd


@dataclass
class _Stats:
    calls: int = 0  # logical requests asked for
    attempts: int = 0  # HTTP requests sent
    retries: int = 0
    ok: int = 0
    failed: int = 0
    not_sent: int = 0
    usage_missing: int = 0  # replies without usable usage (absent, or impossible: negative)
    usage_invalid: int = 0  # of which the usage was impossible (negative token counts)
    input_tokens: int = 0
    output_tokens: int = 0
    errors: Counter = field(default_factory=Counter)
    ttft_s: list[float] = field(default_factory=list)
    latency_s: list[float] = field(default_factory=list)


class ChatClient:
    """Chat completions against `base_url` (…/v1) for one `model`; thread-safe.

    `cost_fn(input_tokens, output_tokens) -> USD` prices requests; it is required when
    `budget_usd` is set. `sleep` is injectable so that tests need not wait.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        *,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 30.0,
        concurrency: int = 4,
        seed: int = 0,
        stream: bool = True,
        cost_fn: Callable[[int, int], float] | None = None,
        budget_usd: float | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        httpx = import_optional("httpx", "llm-api")
        if budget_usd is not None and cost_fn is None:
            raise ClfbenchError("budget_usd needs a price for the model (prices=FILE)")
        if api_key:
            check_api_key(api_key, "api_key")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_base_s = float(backoff_base_s)
        self.backoff_max_s = float(backoff_max_s)
        self.concurrency = max(1, int(concurrency))
        self.stream = bool(stream)
        self.cost_fn = cost_fn
        self.budget = Budget(budget_usd)
        self.stats = _Stats()
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._input_ratio = 1.0  # max observed actual/bounded prompt tokens (>= 1)
        self._secret = api_key or None
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._httpx = httpx
        self._loop_lock = threading.Lock()
        self._runner: _LoopRunner | None = None

    def __repr__(self) -> str:  # never show headers
        return f"ChatClient(url={self.url!r}, model={self.model!r})"

    def close(self) -> None:
        with self._loop_lock:
            runner, self._runner = self._runner, None
        if runner is not None:
            runner.close()

    def _loop(self) -> _LoopRunner:
        """The event loop thread and its AsyncClient, (re)started in this process if needed."""
        with self._loop_lock:
            if self._runner is None or self._runner.pid != os.getpid():
                httpx = self._httpx
                self._runner = _LoopRunner(lambda: httpx.AsyncClient(
                    headers=self._headers,
                    timeout=httpx.Timeout(self.timeout_s),
                    limits=httpx.Limits(max_connections=self.concurrency,
                                        max_keepalive_connections=self.concurrency),
                ))
            return self._runner

    # --- public ---------------------------------------------------------------------------
    def chat_many(self, batch: list[list[dict[str, Any]]], **kwargs: Any) -> list[ChatResult]:
        """`chat` for every message list, `concurrency` at a time, results in input order.

        Requests are started in order; once one does not fit in the budget, no later one is
        sent (they come back `not_sent`). An `ApiError` (bad key, unknown model) stops all.
        """
        if len(batch) <= 1 or self.concurrency == 1:
            return [self.chat(m, **kwargs) for m in batch]
        stop = threading.Event()

        def one(messages: list[dict[str, Any]]) -> ChatResult:
            if stop.is_set():
                return self._count_not_sent(ChatResult("not_sent", error="stopped"))
            try:
                return self.chat(messages, **kwargs)
            except ApiError:
                stop.set()
                raise

        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="clfbench-api") as pool:
            futures = [pool.submit(one, m) for m in batch]
            return [f.result() for f in futures]

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        max_tokens: int,
        temperature: float = 0.0,
        top_logprobs: int | None = None,
    ) -> ChatResult:
        """One logical request with retries. Raises ApiError on non-retryable refusals."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": int(max_tokens),
            "temperature": temperature,
            "stream": self.stream,
        }
        if self.stream:
            body["stream_options"] = {"include_usage": True}
        if top_logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = int(top_logprobs)
        est_in = prompt_token_bound(messages)
        with self._lock:
            self.stats.calls += 1
        t_start = time.perf_counter()
        result = ChatResult("failed")
        for attempt in range(self.max_retries + 1):
            worst = self._worst_cost(est_in, max_tokens)
            if not self.budget.reserve(worst):
                if attempt == 0:
                    return self._count_not_sent(ChatResult("not_sent", error="budget exhausted"))
                # A budget stop, not a failure: the retry was never sent for want of money.
                result.status = "not_sent"
                result.error = f"budget exhausted before retry ({attempt} failed attempt(s): {result.error})"
                break
            result.attempts = attempt + 1
            with self._lock:
                self.stats.attempts += 1
                self.stats.retries += attempt > 0
            try:
                reply = self._attempt(body)
            except _Retryable as e:
                self.budget.settle(worst, uncertain_usd=worst if e.billed_maybe else 0.0)
                with self._lock:
                    self.stats.errors[e.kind] += 1
                result.error = self._scrub(str(e))
                if attempt < self.max_retries:
                    wait = self._backoff(attempt, e.wait_s)
                    if wait is None:
                        break
                    self._sleep(wait)
                continue
            except ApiError:
                self.budget.settle(worst)
                raise
            cost = self._settle_reply(reply, est_in, worst, result)
            result.status, result.text, result.logprobs = "ok", reply.text, reply.logprobs
            result.ttft_s, result.latency_s, result.cost_usd = reply.ttft_s, reply.latency_s, cost
            result.error = None
            break
        result.total_s = time.perf_counter() - t_start
        with self._lock:
            if result.status == "not_sent":
                self.stats.not_sent += 1
            elif result.status == "ok":
                self.stats.ok += 1
                self.stats.latency_s.append(result.latency_s or 0.0)
                if result.ttft_s is not None:
                    self.stats.ttft_s.append(result.ttft_s)
            else:
                self.stats.failed += 1
        return result

    def summary(self) -> dict[str, Any]:
        """Totals over every request this client made (JSON-ready)."""
        s, b = self.stats, self.budget
        with self._lock:
            n_usage = s.ok - s.usage_missing
            out: dict[str, Any] = {
                "requests": s.calls,
                "http_attempts": s.attempts,
                "retries": s.retries,
                "succeeded": s.ok,
                "failures": s.failed,
                "not_sent_budget": s.not_sent,
                "errors_by_kind": dict(s.errors),
                "usage_missing": s.usage_missing,
                "usage_invalid": s.usage_invalid,
                "input_tokens": s.input_tokens,
                "output_tokens": s.output_tokens,
                "mean_input_tokens": s.input_tokens / n_usage if n_usage else None,
                "mean_output_tokens": s.output_tokens / n_usage if n_usage else None,
                "ttft_ms_mean": float(np.mean(s.ttft_s) * 1000) if s.ttft_s else None,
                "ttft_ms_p50": float(np.percentile(s.ttft_s, 50) * 1000) if s.ttft_s else None,
                "request_latency_ms_p50": (
                    float(np.percentile(s.latency_s, 50) * 1000) if s.latency_s else None
                ),
                "usd_spent": b.spent_usd if self.cost_fn is not None else None,
                "usd_uncertain": b.uncertain_usd if self.cost_fn is not None else None,
                "budget_usd": b.limit_usd,
                "budget_exhausted": b.exhausted,
                "input_estimate_ratio": self._input_ratio,
            }
        return out

    # --- internals --------------------------------------------------------------------------
    def _count_not_sent(self, result: ChatResult) -> ChatResult:
        with self._lock:
            self.stats.not_sent += 1
        return result

    def _worst_cost(self, est_in: int, max_tokens: int) -> float:
        if self.cost_fn is None:
            return 0.0
        return self.cost_fn(math.ceil(est_in * self._input_ratio), int(max_tokens))

    def _settle_reply(self, reply: _Reply, est_in: int, worst: float, result: ChatResult) -> float | None:
        usage = reply.usage if isinstance(reply.usage, dict) else {}
        tin, tout = usage.get("prompt_tokens"), usage.get("completion_tokens")
        have = all(isinstance(v, int) and not isinstance(v, bool) for v in (tin, tout))
        impossible = have and (tin < 0 or tout < 0)  # negative usage: a broken server
        have = have and not impossible
        with self._lock:
            self.stats.usage_invalid += impossible
            if have:
                self.stats.input_tokens += tin
                self.stats.output_tokens += tout
                # Estimates that came out low make later worst cases larger (budget stays hard).
                self._input_ratio = max(self._input_ratio, tin / max(1, est_in))
            else:
                self.stats.usage_missing += 1
        if have:
            result.input_tokens, result.output_tokens = tin, tout
        if self.cost_fn is None:
            self.budget.settle(worst)
            return None
        # No (or impossible) usage: the worst case stands; a price never makes spend negative.
        cost = max(0.0, float(self.cost_fn(tin, tout))) if have else worst
        self.budget.settle(worst, spent_usd=cost)
        return cost

    def _backoff(self, attempt: int, retry_after: float | None) -> float | None:
        """Seconds to wait before the next attempt: Retry-After if the server said so, else
        exponential backoff with seeded jitter (between half and all of base * 2^attempt)."""
        if retry_after is not None:
            return retry_after if retry_after <= MAX_RETRY_AFTER_S else None
        cap = min(self.backoff_max_s, self.backoff_base_s * 2**attempt)
        with self._lock:
            return cap * (0.5 + 0.5 * self._rng.random())

    def _scrub(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, "***")
        return text

    def _attempt(self, body: dict[str, Any]) -> _Reply:
        """One HTTP attempt, finished (or abandoned) within `timeout_s` from start to end."""
        runner = self._loop()
        try:
            return runner.run(self._attempt_async(runner.client, body), self.timeout_s + 30.0)
        except TimeoutError:  # the loop itself did not answer (never expected)
            raise _Retryable("timeout", "the request loop did not answer", True) from None

    async def _attempt_async(self, http: Any, body: dict[str, Any]) -> _Reply:
        httpx = self._httpx
        t0 = time.perf_counter()
        try:
            return await asyncio.wait_for(self._request(http, body, t0), self.timeout_s)
        except TimeoutError:  # the deadline (asyncio.TimeoutError is TimeoutError)
            raise _Retryable("timeout", f"reply not complete within {self.timeout_s:g} s",
                             True) from None
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as e:
            raise _Retryable("connection", f"cannot connect: {type(e).__name__}", False) from None
        except httpx.TimeoutException:
            raise _Retryable("timeout", f"no reply within {self.timeout_s:g} s", True) from None
        except httpx.TransportError as e:
            raise _Retryable("connection", f"connection broken: {type(e).__name__}", True) from None

    async def _request(self, http: Any, body: dict[str, Any], t0: float) -> _Reply:
        if self.stream:
            async with http.stream("POST", self.url, json=body) as r:
                if r.status_code != 200:
                    await r.aread()
                    self._raise_status(r)
                return await self._read_stream(r, t0)
        r = await http.post(self.url, json=body)
        if r.status_code != 200:
            self._raise_status(r)
        try:
            data = r.json()
        except ValueError:
            raise _Retryable("malformed", "malformed JSON reply", billed_maybe=True) from None
        return self._parse_full(data, t0)

    def _raise_status(self, r: Any) -> None:
        code = r.status_code
        if code in RETRY_STATUSES or code >= 500:
            raise _Retryable(f"http_{code}", f"HTTP {code}", False, _retry_after(r.headers))
        if code in (401, 403):
            raise ApiError(self._scrub(
                f"{self.url}: HTTP {code}, the API key was refused (check the key's variable)"
            ), code)
        detail = ""
        try:
            err = r.json().get("error", {})
            detail = err.get("message", "") if isinstance(err, dict) else str(err)
        except (ValueError, AttributeError):
            detail = r.text
        detail = self._scrub(" ".join(str(detail).split()))[:300]
        raise ApiError(self._scrub(f"{self.url}: HTTP {code}: {detail or 'request refused'}"), code)

    async def _read_stream(self, r: Any, t0: float) -> _Reply:
        pieces: list[str] = []
        logprobs: list[dict[str, Any]] = []
        usage = None
        ttft = None
        saw_logprobs = False
        done = False
        async for line in r.aiter_lines():
            line = line.strip()
            if not line.startswith("data:"):
                continue  # blank separators, comments (":"), event:/id: fields
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            try:
                chunk = json.loads(data)
            except ValueError:
                raise _Retryable("malformed", "malformed JSON in stream", True) from None
            if not isinstance(chunk, dict):
                raise _Retryable("malformed", "stream chunk is not an object", True)
            if chunk.get("error"):
                raise _Retryable("stream_error", "error event in stream", True)
            usage = chunk.get("usage") or usage
            for choice in chunk.get("choices") or []:
                if choice.get("index", 0) != 0:
                    continue
                piece = (choice.get("delta") or {}).get("content") or ""
                lp = (choice.get("logprobs") or {}).get("content")
                if lp is not None:
                    saw_logprobs = True
                if (piece or lp) and ttft is None:
                    ttft = time.perf_counter() - t0
                pieces.append(piece)
                if lp and len(logprobs) < KEEP_LOGPROB_POSITIONS:
                    logprobs.extend(_positions(lp)[: KEEP_LOGPROB_POSITIONS - len(logprobs)])
        if not done:  # the connection closed early: what came is not the whole reply
            raise _Retryable("truncated", "stream closed before [DONE] (reply cut off)", True)
        return _Reply("".join(pieces), logprobs if saw_logprobs else None, usage, ttft,
                      time.perf_counter() - t0)

    def _parse_full(self, data: Any, t0: float) -> _Reply:
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError):
            raise _Retryable("malformed", "reply has no choices[0].message", True) from None
        lp = (choice.get("logprobs") or {}).get("content")
        return _Reply(
            text,
            _positions(lp)[:KEEP_LOGPROB_POSITIONS] if lp is not None else None,
            data.get("usage"),
            None,
            time.perf_counter() - t0,
        )


class _LoopRunner:
    """An asyncio event loop in a daemon thread, with one httpx.AsyncClient living on it.

    Threads submit coroutines with `run` and wait for their results; requests from many
    threads share the client's connection pool. Stopped by `close` or when garbage-collected.
    """

    def __init__(self, make_client: Callable[[], Any]) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=_run_loop, args=(self.loop,), daemon=True,
                                        name="clfbench-api-loop")
        self._thread.start()
        self._finalize = weakref.finalize(self, self.loop.call_soon_threadsafe, self.loop.stop)

        async def make() -> Any:
            return make_client()

        self.client = self.run(make(), 30.0)

    def run(self, coro: Any, timeout_s: float) -> Any:
        """Run `coro` on the loop and return its result (raise its exception)."""
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return fut.result(timeout_s)
        except BaseException:
            fut.cancel()
            raise

    def close(self) -> None:
        if self.loop.is_closed() or not self._thread.is_alive():
            return
        try:
            self.run(self.client.aclose(), 10.0)
        finally:
            self._finalize()
            self._thread.join(10.0)


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        loop.close()


def _positions(content: list[Any]) -> list[dict[str, Any]]:
    out = []
    for entry in content:
        if not isinstance(entry, dict):
            continue
        top = [
            (str(t.get("token", "")), float(t.get("logprob", -math.inf)))
            for t in entry.get("top_logprobs") or []
            if isinstance(t, dict)
        ]
        out.append({"token": str(entry.get("token", "")),
                    "logprob": float(entry.get("logprob", -math.inf)), "top": top})
    return out


def _retry_after(headers: Any) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date), if present."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
