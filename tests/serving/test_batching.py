"""The micro-batcher: concurrent requests merged up to the batch limit, answers routed back."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from clfbench.serving.batching import BatcherClosed, MicroBatcher


class Recorder:
    """A model whose label is the text's number; records every call's texts and pairs."""

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.calls: list[tuple[list[str], list[str] | None]] = []
        self.delay_s, self.fail = delay_s, fail
        self.threads: set[int] = set()
        self.running = 0
        self.overlapped = False

    def __call__(self, texts, pairs):
        self.running += 1
        self.overlapped |= self.running > 1
        self.threads.add(threading.get_ident())
        self.calls.append((texts, pairs))
        time.sleep(self.delay_s)
        self.running -= 1
        if self.fail:
            raise ValueError("model broke")
        pred = np.array([int(t) for t in texts])
        return pred, np.eye(100)[pred]


async def fire(batcher: MicroBatcher, jobs: list[tuple[list[str], list[str] | None]]):
    await batcher.start()
    try:
        return await asyncio.gather(*(batcher.submit(t, p) for t, p in jobs), return_exceptions=True)
    finally:
        await batcher.stop()


def test_concurrent_requests_are_merged_up_to_the_limit_and_answered_in_order():
    model = Recorder(delay_s=0.01)
    jobs = [([str(i)], None) for i in range(40)] + [([str(50 + j) for j in range(3)], None)]
    out = asyncio.run(fire(MicroBatcher(model, max_batch_size=8, max_wait_ms=20), jobs))
    for (texts, _), (pred, proba) in zip(jobs, out):
        assert pred.tolist() == [int(t) for t in texts] and proba.argmax(1).tolist() == pred.tolist()
    sizes = [len(t) for t, _ in model.calls]
    assert max(sizes) == 8 and sum(sizes) == 43 and len(sizes) <= 8
    assert len(model.threads) == 1 and not model.overlapped  # one model call at a time


def test_batch_size_one_turns_batching_off():
    model = Recorder()
    asyncio.run(fire(MicroBatcher(model, max_batch_size=1, max_wait_ms=5), [([str(i)], None) for i in range(10)]))
    assert [len(t) for t, _ in model.calls] == [1] * 10


def test_pairs_and_single_texts_are_never_mixed_in_one_call():
    model = Recorder(delay_s=0.01)
    jobs = [([str(i)], ["b"] if i % 2 else None) for i in range(12)]
    out = asyncio.run(fire(MicroBatcher(model, max_batch_size=32, max_wait_ms=20), jobs))
    assert [p.tolist() for p, _ in out] == [[i] for i in range(12)]
    assert all(p is None or len(p) == len(t) for t, p in model.calls)


def test_a_model_error_reaches_every_request_of_the_batch_and_stop_refuses_new_work():
    out = asyncio.run(fire(MicroBatcher(Recorder(fail=True), 8, 10), [(["1"], None), (["2"], None)]))
    assert all(isinstance(e, ValueError) for e in out)

    async def after_stop():
        b = MicroBatcher(Recorder(), 8, 1)
        await b.start()
        await b.stop()
        with pytest.raises(BatcherClosed):
            await b.submit(["1"])

    asyncio.run(after_stop())


def test_stop_drains_queued_requests():
    model = Recorder(delay_s=0.02)

    async def scenario():
        b = MicroBatcher(model, max_batch_size=2, max_wait_ms=1)
        await b.start()
        tasks = [asyncio.create_task(b.submit([str(i)])) for i in range(6)]
        await asyncio.sleep(0)  # queued, mostly not yet run
        await b.stop()
        return [t.result()[0].tolist() for t in tasks]

    assert asyncio.run(scenario()) == [[i] for i in range(6)]


def test_a_stopped_batcher_starts_again():
    model = Recorder()

    async def twice():
        b = MicroBatcher(model, 4, 1)
        for i in range(2):
            await b.start()
            assert (await b.submit([str(i)]))[0].tolist() == [i]
            await b.stop()

    asyncio.run(twice())


def test_drop_queued_fails_the_queue_but_not_the_batch_in_the_model():
    model = Recorder(delay_s=0.5)

    async def scenario():
        b = MicroBatcher(model, max_batch_size=1, max_wait_ms=0)
        await b.start()
        tasks = [asyncio.create_task(b.submit([str(i)])) for i in range(5)]
        while not model.calls:  # the first request is in the model, the others queued
            await asyncio.sleep(0.01)
        assert b.drop_queued() == 4 and b.pending == 0
        out = await asyncio.gather(*tasks, return_exceptions=True)
        with pytest.raises(BatcherClosed):
            await b.submit(["9"])
        await b.stop()  # nothing left to wait for
        return out

    out = asyncio.run(scenario())
    assert out[0][0].tolist() == [0]
    assert all(isinstance(e, BatcherClosed) and "drain limit" in str(e) for e in out[1:])
    assert len(model.calls) == 1
