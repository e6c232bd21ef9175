"""Dynamic micro-batching: concurrent requests merged into one batched `classify` call.

Each request is a job of one or more texts. A single worker takes the oldest job, then keeps
adding queued jobs until the batch holds `max_batch_size` texts or `max_wait_ms` has passed
since it started collecting; jobs with and without text pairs are never mixed. The model runs
in one background thread (never two calls at once), so while it works new requests queue up
and form the next batch. `max_batch_size=1` turns batching off: every request runs alone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

ClassifyFn = Callable[[list[str], "list[str] | None"], "tuple[np.ndarray, np.ndarray | None]"]


class BatcherClosed(RuntimeError):
    """The batcher is shutting down and takes no new work."""


@dataclass
class _Job:
    texts: list[str]
    pairs: list[str] | None
    future: asyncio.Future
    queued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """`await submit(texts, pairs)` -> (label ids, probabilities or None) for those texts.

    `on_batch(n_texts, n_requests, seconds)` is called after every model call (for metrics).
    `stop()` refuses new work, finishes everything queued, then ends the worker.
    """

    def __init__(self, classify: ClassifyFn, max_batch_size: int = 32, max_wait_ms: float = 5.0,
                 on_batch: Callable[[int, int, float], None] | None = None) -> None:
        if max_batch_size < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_size must be >= 1 and max_wait_ms >= 0")
        self.classify, self.max_batch_size = classify, int(max_batch_size)
        self.max_wait = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Job] | None = None
        self._held: _Job | None = None  # a job that did not fit the last batch: it starts the next
        self._worker: asyncio.Task | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False

    async def start(self) -> None:
        self._closing = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clfbench-model")
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._run())

    async def submit(self, texts: list[str], pairs: list[str] | None = None):
        if self._closing or self._queue is None:
            raise BatcherClosed("the server is shutting down")
        job = _Job(list(texts), None if pairs is None else list(pairs),
                   asyncio.get_running_loop().create_future())
        await self._queue.put(job)
        return await job.future

    @property
    def pending(self) -> int:
        return (self._queue.qsize() if self._queue else 0) + (self._held is not None)

    async def stop(self) -> None:
        """Drain: no new jobs; every queued job is answered before the worker ends."""
        self._closing = True
        if self._queue is not None and self._worker is not None:
            await self._queue.join()
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def drop_queued(self) -> int:
        """Refuse new work and fail every job not yet in a model call with BatcherClosed (a
        shutdown past its drain limit); the batch in the model finishes. How many were dropped."""
        self._closing = True
        dropped, self._held = ([self._held] if self._held is not None else []), None
        while self._queue is not None and not self._queue.empty():
            dropped.append(self._queue.get_nowait())
        for job in dropped:
            if not job.future.done():
                job.future.set_exception(BatcherClosed("the server is shutting down: drain limit reached"))
            if self._queue is not None:
                self._queue.task_done()
        return len(dropped)

    async def _collect(self) -> list[_Job]:
        assert self._queue is not None
        first, self._held = self._held or await self._queue.get(), None
        batch, n = [first], len(first.texts)
        deadline = time.perf_counter() + self.max_wait
        while n < self.max_batch_size:
            timeout = deadline - time.perf_counter()
            try:
                job = self._queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(
                    self._queue.get(), timeout)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if n + len(job.texts) > self.max_batch_size or (job.pairs is None) != (first.pairs is None):
                self._held = job
                break
            batch.append(job)
            n += len(job.texts)
        return batch

    async def _run(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            texts = [t for job in batch for t in job.texts]
            pairs = None if batch[0].pairs is None else [p for job in batch for p in job.pairs]
            t0 = time.perf_counter()
            try:
                pred, proba = await loop.run_in_executor(self._executor, self.classify, texts, pairs)
            except Exception as err:  # noqa: BLE001 - every waiting request gets the error
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(err)
            else:
                start = 0
                for job in batch:
                    end = start + len(job.texts)
                    if not job.future.done():  # the client may have gone
                        job.future.set_result((pred[start:end], None if proba is None else proba[start:end]))
                    start = end
            finally:
                for _ in batch:
                    self._queue.task_done()
            if self.on_batch is not None:
                self.on_batch(len(texts), len(batch), time.perf_counter() - t0)
