"""A bounded load generator for `clfbench serve`: closed loop at several concurrency levels and
an open loop at a target rate, end-to-end latency percentiles, throughput and errors.

Bounded by construction: a fixed number of requests per level and a duration cap, and only
loopback hosts unless `allow_remote`. Open-loop latency counts from when a request was due,
so a server that falls behind is charged for the queueing it causes (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from clfbench.errors import ClfbenchError

SERVED_FILE = "served.json"
DEFAULT_TEXTS = ("where is my parcel? it was due on monday", "i was charged twice for one order",
                 "the app crashes when i open my basket", "how do i change the email on my account",
                 "i want to send the blender back, it is broken")


def check_target(url: str, allow_remote: bool = False) -> str:
    """The /v1/classify URL for `url` (a server root or that path); refuse non-loopback hosts."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ClfbenchError(f"loadtest: {url!r} is not an http(s) URL")
    host = parts.hostname
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback and not allow_remote:
        raise ClfbenchError(f"loadtest: {host} is not a loopback address; pass --allow-remote to "
                            "load-test another machine (only servers you run)")
    root = url.rstrip("/")
    return root if root.endswith("/v1/classify") else root + "/v1/classify"


def summarize(latencies_s: list[float], errors: int, elapsed_s: float, texts_per_request: int) -> dict[str, Any]:
    """p50/p95/p99 (ms) of successful requests, throughput in requests and texts per second."""
    lat = np.asarray(latencies_s) * 1000.0
    ok = len(lat)
    pct = {f"p{q}_ms": float(np.percentile(lat, q)) if ok else None for q in (50, 95, 99)}
    return {"requests": ok + errors, "ok": ok, "errors": errors, **pct,
            "mean_ms": float(lat.mean()) if ok else None, "seconds": elapsed_s,
            "requests_per_s": ok / elapsed_s if elapsed_s > 0 else None,
            "texts_per_s": ok * texts_per_request / elapsed_s if elapsed_s > 0 else None}


class _Target:
    def __init__(self, client, url: str, texts: list[str], batch: int, headers: dict[str, str]) -> None:
        self.client, self.url, self.texts, self.batch, self.headers = client, url, texts, batch, headers
        self.latencies: list[float] = []
        self.errors = 0
        self.error_examples: list[str] = []

    def body(self, i: int) -> dict[str, Any]:
        if self.batch == 1:
            return {"text": self.texts[i % len(self.texts)]}
        return {"texts": [self.texts[(i * self.batch + j) % len(self.texts)] for j in range(self.batch)]}

    async def send(self, i: int, due: float | None = None) -> None:
        start = due if due is not None else time.perf_counter()
        try:
            r = await self.client.post(self.url, json=self.body(i), headers=self.headers)
            failed = r.status_code != 200 and f"HTTP {r.status_code}: {r.text[:200]}"
        except Exception as err:  # noqa: BLE001 - timeouts, refused connections: all are errors
            failed = f"{type(err).__name__}: {err}"[:200]
        if failed:
            self.errors += 1
            if len(self.error_examples) < 3:
                self.error_examples.append(failed)
        else:
            self.latencies.append(time.perf_counter() - start)


async def _closed_loop(target: _Target, concurrency: int, requests: int, deadline: float) -> None:
    counter = iter(range(requests))

    async def worker() -> None:
        for i in counter:
            if time.perf_counter() > deadline:
                return
            await target.send(i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def _open_loop(target: _Target, rate: float, requests: int, deadline: float) -> None:
    t0, tasks = time.perf_counter(), []
    for i in range(requests):
        due = t0 + i / rate
        if due > deadline:
            break
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(target.send(i, due)))
    await asyncio.gather(*tasks)


async def _run(url: str, levels: list[int], rate: float | None, requests: int, duration_s: float,
               texts: list[str], batch: int, headers: dict[str, str], timeout_s: float,
               warmup: int) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=max([*levels, 64]), max_keepalive_connections=max([*levels, 64]))
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits, trust_env=False) as client:
        await _closed_loop(_Target(client, url, texts, batch, headers), 1, warmup, time.perf_counter() + duration_s)
        out: dict[str, Any] = {"levels": []}
        runs = [("closed", c) for c in levels] + ([("open", rate)] if rate else [])
        for mode, value in runs:
            target = _Target(client, url, texts, batch, headers)
            t0 = time.perf_counter()
            if mode == "closed":
                await _closed_loop(target, int(value), requests, t0 + duration_s)
            else:
                await _open_loop(target, float(value), requests, t0 + duration_s)
            row = {"mode": mode, ("concurrency" if mode == "closed" else "rate"): value,
                   **summarize(target.latencies, target.errors, time.perf_counter() - t0, batch),
                   "error_examples": target.error_examples}
            if mode == "closed":
                out["levels"].append(row)
            else:
                out["open_loop"] = row
    return out


def run_loadtest(url: str, concurrency: tuple[int, ...] = (1, 8, 32), rate: float | None = None,
                 requests: int = 200, duration_s: float = 60.0, texts: list[str] | None = None,
                 batch: int = 1, api_key: str | None = None, allow_remote: bool = False,
                 timeout_s: float = 30.0, warmup: int = 5) -> dict[str, Any]:
    """Load-test a `clfbench serve` URL; at most `requests` requests and `duration_s` seconds
    per level. Returns the settings, one row per concurrency level and the open-loop row."""
    endpoint = check_target(url, allow_remote)
    if requests < 1 or duration_s <= 0 or batch < 1 or any(c < 1 for c in concurrency):
        raise ClfbenchError("loadtest: requests, duration, batch and concurrency must be positive")
    if rate is not None and rate <= 0:
        raise ClfbenchError("loadtest: --rate must be positive")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    result = asyncio.run(_run(endpoint, list(concurrency), rate, requests, duration_s,
                              list(texts or DEFAULT_TEXTS), batch, headers, timeout_s, warmup))
    return {"url": endpoint, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "requests_per_level": requests, "duration_cap_s": duration_s, "texts_per_request": batch,
            "machine_load_1min": os.getloadavg()[0], "cpu_count": os.cpu_count(), **result,
            "best_texts_per_s": max((r["texts_per_s"] or 0.0 for r in result["levels"]), default=None)}


def format_loadtest(result: dict[str, Any]) -> str:
    """The result as a text table."""
    head = f"{'load':<14} {'requests':>8} {'errors':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'req/s':>8} {'texts/s':>8}"
    rows = [*result["levels"], *([result["open_loop"]] if "open_loop" in result else [])]
    lines = [f"{result['url']} (1-min load {result['machine_load_1min']:.2f} on {result['cpu_count']} CPUs)", head]
    for r in rows:
        name = f"concurrency {r['concurrency']}" if r["mode"] == "closed" else f"rate {r['rate']}/s"
        cells = [f"{v:>8.1f}" if v is not None else f"{'-':>8}"
                 for v in (r["p50_ms"], r["p95_ms"], r["p99_ms"], r["requests_per_s"], r["texts_per_s"])]
        lines.append(f"{name:<14} {r['requests']:>8} {r['errors']:>6} " + " ".join(cells))
    return "\n".join(lines)


def attach(result: dict[str, Any], run: str | Path, served_run_id: str | None = None) -> Path:
    """Write `result` into the run folder as served.json (what the report reads)."""
    run = Path(run)
    if not (run / "metrics.json").is_file():
        raise ClfbenchError(f"--attach {run}: not a run folder (metrics.json missing)")
    if served_run_id and served_run_id != run.name:
        raise ClfbenchError(f"--attach {run}: the server serves run {served_run_id}, not {run.name}")
    path = run / SERVED_FILE
    path.write_text(json.dumps(result, indent=2))
    return path
