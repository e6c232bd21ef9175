"""The HTTP server of an export (FastAPI; run by uvicorn, `clfbench serve`).

    POST /v1/classify   {"text": "..."} or {"texts": [...]}, pairs with "text_pair" / "text_pairs"
                        -> {"results": [{"label": ..., "probabilities": {...}}, ...]}
    GET  /v1/model      the model card
    GET  /healthz       {"status": "ok"}
    GET  /metrics       Prometheus text format

Requests go through the micro-batcher. Limits give JSON errors: a body over `max_body_bytes`
or more than `max_texts` texts is 413, a malformed body or a text over `max_text_chars` 422.
With an API key (read from an environment variable by `clfbench serve --api-key-env`), /v1/*
needs `Authorization: Bearer KEY` or `X-API-Key: KEY` (401 otherwise); the key is never logged.

Shutdown (`serve`, on SIGTERM or Ctrl-C): the server stops accepting connections and answers
the requests in flight; a request arriving meanwhile on an open connection gets 503 with
Retry-After. `drain_s` seconds after the signal, every request still unanswered gets that 503
too (those queued for the model are dropped), so shutdown is bounded and never answers 500.
After a SIGTERM the process exits 0.
"""

from __future__ import annotations

import asyncio
import hmac
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from clfbench.errors import ClfbenchError
from clfbench.serving.batching import BatcherClosed, MicroBatcher
from clfbench.serving.export import ExportedModel
from clfbench.serving.server_metrics import CONTENT_TYPE, ServerMetrics


@dataclass
class ServeSettings:
    max_batch_size: int = 32
    max_wait_ms: float = 5.0
    max_texts: int = 256
    max_text_chars: int = 20_000
    max_body_bytes: int = 2_000_000
    api_key: str | None = None
    drain_s: float = 30.0  # after a shutdown signal: time to answer the requests in flight


RETRY_AFTER_S = 5  # the Retry-After of a 503 while shutting down: a restarted server or a peer
DRAIN_BACKSTOP_S = 10.0  # uvicorn's own limit is drain_s + this: past it, it cancels (500s)


class ClassifyRequest(BaseModel):
    """One text or a batch; pairs optional, the same count as texts."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = None
    text_pair: str | None = None
    texts: list[str] | None = None
    text_pairs: list[str] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> ClassifyRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give either 'text' or 'texts'")
        if self.text is None and self.text_pair is not None:
            raise ValueError("'text_pair' goes with 'text'; use 'text_pairs' with 'texts'")
        if self.texts is not None and self.text_pairs is not None and len(self.text_pairs) != len(self.texts):
            raise ValueError("'text_pairs' must have as many items as 'texts'")
        return self

    def inputs(self) -> tuple[list[str], list[str] | None]:
        if self.text is not None:
            return [self.text], None if self.text_pair is None else [self.text_pair]
        return list(self.texts or []), self.text_pairs


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _unavailable(message: str = "the server is shutting down") -> JSONResponse:
    return JSONResponse({"error": message}, status_code=503,
                        headers={"Retry-After": str(RETRY_AFTER_S), "Connection": "close"})


class Drain:
    """A server's shutdown. `begin()` when it stops accepting: new requests get 503; `seconds`
    later `expired` is set: unanswered requests get 503 and the batcher drops its queue."""

    def __init__(self, batcher: MicroBatcher, seconds: float) -> None:
        self.batcher, self.seconds = batcher, float(seconds)
        self.draining = False
        self.expired = asyncio.Event()

    def begin(self) -> None:
        if not self.draining:
            self.draining = True
            asyncio.get_running_loop().call_later(self.seconds, self.expire)

    def expire(self) -> None:
        self.draining = True
        self.expired.set()
        dropped = self.batcher.drop_queued()
        print(f"clfbench serve: drain limit of {self.seconds:g} s reached; {dropped} queued requests "
              "answered 503", file=sys.stderr)

    async def unless_expired(self, work: Coroutine[Any, Any, JSONResponse]) -> JSONResponse:
        """`work`'s response, or a 503 if the drain limit passes first (`work` is cancelled)."""
        task = asyncio.ensure_future(work)
        expired = asyncio.ensure_future(self.expired.wait())
        try:
            await asyncio.wait({task, expired}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            expired.cancel()
            if not task.done():
                task.cancel()
        if task.done() and not task.cancelled():
            return task.result()
        return _unavailable("the server is shutting down: drain limit reached")


def create_app(model: ExportedModel, settings: ServeSettings | None = None) -> FastAPI:
    """The app serving `model`; the batcher starts and drains with the app's lifespan."""
    settings = settings or ServeSettings()
    metrics = ServerMetrics()
    batcher = MicroBatcher(model.classify, settings.max_batch_size, settings.max_wait_ms, metrics.batch)
    drain = Drain(batcher, settings.drain_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        yield
        await batcher.stop()  # uvicorn has stopped taking requests: answer what is queued
        print(f"clfbench serve: drained, {metrics.texts} texts classified; shut down", file=sys.stderr)

    app = FastAPI(title="clfbench", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.batcher, app.state.metrics, app.state.settings = batcher, metrics, settings
    app.state.drain = drain

    @app.middleware("http")
    async def count_and_guard(request: Request, call_next):
        t0 = time.perf_counter()
        path = request.url.path
        if drain.draining:  # arrived after the shutdown signal on a connection still open
            response = _unavailable()
        elif path.startswith("/v1/") and settings.api_key and not _authorized(request, settings.api_key):
            response = _error(401, "missing or wrong API key (Authorization: Bearer KEY or X-API-Key)")
        else:
            response = await call_next(request)
        known = path if path in ("/v1/classify", "/v1/model", "/healthz", "/metrics") else "other"
        metrics.request(request.method, known, response.status_code,
                        time.perf_counter() - t0 if known == "/v1/classify" else None)
        return response

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok", "pending": batcher.pending}

    @app.get("/v1/model")
    async def model_card() -> dict:
        return {"labels": model.labels, "export": model.meta, "card": model.card}

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(batcher.pending), media_type=CONTENT_TYPE)

    @app.post("/v1/classify")
    async def classify(request: Request) -> JSONResponse:
        return await drain.unless_expired(_classify(request))

    async def _classify(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
            return _error(413, f"request body of {declared} bytes; the limit is {settings.max_body_bytes}")
        body = bytearray()
        async for chunk in request.stream():  # a chunked body has no content-length: count as it comes
            body += chunk
            if len(body) > settings.max_body_bytes:
                return _error(413, f"request body over {settings.max_body_bytes} bytes, the limit")
        try:
            texts, pairs = ClassifyRequest.model_validate_json(bytes(body)).inputs()
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(map(str, first.get("loc", ()))) or "body"
            return _error(422, f"{where}: {first['msg']}")
        problem = _check_limits(texts, pairs, settings)
        if problem:
            return _error(*problem)
        try:
            pred, proba = await batcher.submit(texts, pairs)
        except BatcherClosed as err:
            return _unavailable(str(err))
        except ClfbenchError as err:
            return _error(422, str(err))
        return JSONResponse({"results": [
            {"label": model.labels[int(p)] if p >= 0 else None,
             "probabilities": None if proba is None else {n: float(v) for n, v in zip(model.labels, proba[i])}}
            for i, p in enumerate(pred)]})

    return app


def serve(app: FastAPI, host: str, port: int) -> None:
    """Run `app` under uvicorn until SIGTERM or Ctrl-C, then drain it (module docstring):
    answer what is in flight within the app's `drain_s`, then exit normally."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            app.state.drain.begin()  # uvicorn now stops accepting; it waits for the connections
            await super().shutdown(sockets)

    drain_s = app.state.settings.drain_s
    server = DrainingServer(uvicorn.Config(app, host=host, port=port, log_level="warning",
                                           timeout_graceful_shutdown=drain_s + DRAIN_BACKSTOP_S))

    def stop(signum: int, frame: Any) -> None:  # uvicorn raises SIGTERM again once shut down
        server.should_exit = True  # (and before it runs: then it stops right after starting)

    if threading.current_thread() is not threading.main_thread():
        server.run()
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    finally:
        signal.signal(signal.SIGTERM, previous)


def _authorized(request: Request, key: str) -> bool:
    given = request.headers.get("x-api-key") or ""
    auth = request.headers.get("authorization") or ""
    if auth.lower().startswith("bearer "):
        given = auth[7:].strip()
    return hmac.compare_digest(given.encode(), key.encode())


def _check_limits(texts: list[str], pairs: list[str] | None,
                  settings: ServeSettings) -> tuple[int, str] | None:
    """(status, message) for the first limit a request breaks, else None."""
    if not texts:
        return 422, "texts: empty list"
    if len(texts) > settings.max_texts:
        return 413, f"{len(texts)} texts in one request; the limit is {settings.max_texts}"
    for i, t in enumerate([*texts, *(pairs or [])]):
        if not t.strip():
            return 422, f"text {i % len(texts)}: empty"
        if len(t) > settings.max_text_chars:
            return 422, f"text {i % len(texts)}: {len(t)} characters; the limit is {settings.max_text_chars}"
    return None
