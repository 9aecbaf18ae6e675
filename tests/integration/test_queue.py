"""Queue semantics against a real Redis."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from service.config import Settings
from service.errors import Overloaded
from service.queue.jobs import EnhanceOptions, Job, JobResult, new_job_id, now_ms
from service.queue.streams import JobQueue, connect
from service.queue.waiter import ResultWaiter

_n = itertools.count()


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[JobQueue]:
    settings = Settings(
        redis_url=redis_url,
        key_prefix=f"q{next(_n)}-{now_ms()}",
        max_queue_length=3,
        claim_idle_ms=100,
    )
    client = connect(settings)
    q = JobQueue(client, settings)
    await q.ensure_group()
    yield q
    await client.aclose()


def _job(reply_to: str = "") -> Job:
    return Job(
        id=new_job_id(),
        reply_to=reply_to,
        options=EnhanceOptions(),
        width=4,
        height=4,
        enqueued_at_ms=now_ms(),
        deadline_at_ms=now_ms() + 60_000,
    )


async def test_enqueue_read_finish_removes_the_job(queue: JobQueue) -> None:
    job = _job()
    await queue.enqueue(job, b"bytes")
    [entry] = await queue.read("c1", 10, 100)
    assert entry.job == job and (await queue.begin_attempt(job.id)).upload == b"bytes"
    assert await queue.finish(entry.entry_id, job.id, None, JobResult(id=job.id, status="done"))
    assert (await queue.stats()).depth == 0
    assert not await queue.redis.exists(queue.keys.upload(job.id))
    assert (await queue.get_result(job.id)).status == "done"  # type: ignore[union-attr]


async def test_first_result_wins(queue: JobQueue) -> None:
    job = _job()
    await queue.enqueue(job, b"x")
    [entry] = await queue.read("c1", 1, 100)
    assert await queue.finish(
        entry.entry_id, job.id, None, JobResult(id=job.id, status="done", width=1)
    )
    assert not await queue.finish(
        entry.entry_id, job.id, None, JobResult.failure(job.id, "job_failed", "late")
    )
    assert (await queue.get_result(job.id)).width == 1  # type: ignore[union-attr]


async def test_full_queue_sheds_load(queue: JobQueue) -> None:
    for _ in range(3):
        await queue.enqueue(_job(), b"x")
    with pytest.raises(Overloaded) as info:
        await queue.enqueue(_job(), b"x")
    assert info.value.retry_after_s


async def test_unacked_job_is_reclaimed_after_idle_timeout(queue: JobQueue) -> None:
    job = _job()
    await queue.enqueue(job, b"x")
    await queue.read("dead-worker", 1, 100)
    assert await queue.reclaim("alive", 10) == []  # not idle long enough yet
    await asyncio.sleep(0.15)
    [entry] = await queue.reclaim("alive", 10)
    assert entry.job == job


async def test_malformed_entry_is_parsed_as_droppable(queue: JobQueue) -> None:
    await queue.redis.xadd(queue.keys.stream, {b"job": b"{not json"})
    [entry] = await queue.read("c1", 1, 100)
    assert entry.job is None
    await queue.drop(entry.entry_id)
    assert (await queue.stats()).depth == 0


async def test_waiter_wakes_on_notification(queue: JobQueue) -> None:
    waiter = ResultWaiter(queue.redis, queue.keys)
    await waiter.start()
    try:
        job = _job(reply_to=waiter.channel)
        fut = waiter.register(job.id)
        await queue.enqueue(job, b"x")
        await asyncio.sleep(0.1)  # let the subscription settle
        [entry] = await queue.read("c1", 1, 100)
        loop = asyncio.get_running_loop()
        started = loop.time()
        finish = asyncio.create_task(
            queue.finish(entry.entry_id, job.id, job.reply_to, JobResult(id=job.id, status="done"))
        )
        assert await waiter.wait(job.id, fut, 5.0)
        assert loop.time() - started < 1.0
        await finish
    finally:
        await waiter.stop()


async def test_waiter_finds_a_result_whose_notification_was_lost(queue: JobQueue) -> None:
    waiter = ResultWaiter(queue.redis, queue.keys)
    job = _job(reply_to="nobody-listens")
    fut = waiter.register(job.id)
    await queue.enqueue(job, b"x")
    [entry] = await queue.read("c1", 1, 100)
    await queue.finish(entry.entry_id, job.id, job.reply_to, JobResult(id=job.id, status="done"))
    assert await waiter.wait(job.id, fut, 0.2)


async def test_attempts_are_counted_per_job(queue: JobQueue) -> None:
    job_id = new_job_id()
    attempts = [await queue.begin_attempt(job_id) for _ in range(2)]
    assert [(a.number, a.cancelled, a.upload) for a in attempts] == [
        (1, False, None),
        (2, False, None),
    ]
    await queue.cancel(job_id, 10)
    third = await queue.begin_attempt(job_id)
    assert (third.number, third.cancelled) == (3, True)


async def test_stats_report_depth_pending_and_lag(queue: JobQueue) -> None:
    empty = await queue.stats()
    assert (empty.depth, empty.pending, empty.oldest_age_s) == (0, 0, 0.0)
    await queue.enqueue(_job(), b"x")
    await queue.enqueue(_job(), b"x")
    await queue.read("c1", 1, 100)
    await asyncio.sleep(0.05)
    stats = await queue.stats()
    assert (stats.depth, stats.pending) == (2, 1) and 0.04 < stats.oldest_age_s < 5


async def test_lost_group_is_recreated_on_read(queue: JobQueue) -> None:
    await queue.redis.delete(queue.keys.stream)
    assert await queue.read("c1", 1, 10) == []
    job = _job()
    await queue.enqueue(job, b"x")
    [entry] = await queue.read("c1", 1, 100)
    assert entry.job == job
