"""Gateway side of a job: validate the upload, enqueue it, wait for its result with a deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.concurrency import run_in_threadpool

from service import imaging, metrics
from service.api import idempotency
from service.api.deps import Services
from service.errors import (
    Cancelled,
    DeadlineExceeded,
    IdempotencyKeyReused,
    ModelUnavailable,
    Overloaded,
    QueueUnavailable,
    error_from_code,
)
from service.queue.jobs import EnhanceOptions, Job, JobRecord, JobResult, new_job_id, now_ms
from service.queue.streams import Earlier, Once

# Rounds of claim-then-look when an earlier job with the key keeps ending in a rerun-worthy
# failure or expiring in between: more than two means something else is racing on the key.
_CLAIM_TRIES = 3
_REPLAY_POLL_S = 0.05


async def validate_upload(data: bytes, services: Services) -> imaging.ImageInfo:
    s = services.settings
    return await run_in_threadpool(
        imaging.inspect, data, max_pixels=s.max_image_pixels, max_side_px=s.max_image_side_px
    )


async def _wait_unless_gone(
    services: Services,
    job: Job,
    future: asyncio.Future[None],
    deadline_s: float,
    client_gone: Callable[[], Coroutine[Any, Any, None]],
) -> bool:
    """Wait for the result; if the client disconnects first, tell workers not to bother."""
    waiting = asyncio.create_task(
        services.waiter.wait(job.id, future, deadline_s - time.perf_counter())
    )
    gone = asyncio.create_task(client_gone())
    try:
        await asyncio.wait({waiting, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if waiting.done():
        return waiting.result()
    waiting.cancel()
    await services.queue.cancel(job.id, int(deadline_s - time.perf_counter()) + 1)
    raise Cancelled("the client closed the connection")


def _same_body(earlier: Earlier, once: Once | None) -> None:
    if once is not None and earlier.fingerprint != once.fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was used for another photo or other options; "
            "use a new key for a new request"
        )


async def _poll_result(services: Services, job_id: str, deadline_s: float) -> JobResult | None:
    """The result of a job another request is waiting for (its wake-up goes to that request's
    gateway): a replay is rare, so it polls."""
    while True:
        result = await services.queue.get_result(job_id)
        if result is not None or time.perf_counter() >= deadline_s:
            return result
        await asyncio.sleep(_REPLAY_POLL_S)


async def _read_result(
    services: Services, job_id: str, deadline_s: float, take: bool
) -> JobResult | None:
    """Read a result known to exist (``take``: and delete it). A Redis just back from a restart
    refuses the first commands (loading its data, stale pooled connections): retried until the
    request's deadline, so a stored result is not answered with a 503."""
    delay_s = 0.05
    while True:
        try:
            if take:
                return await services.queue.take_result(job_id)
            return await services.queue.get_result(job_id)
        except QueueUnavailable:
            if time.perf_counter() + delay_s >= deadline_s:
                raise
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 1.0)


async def _run_once(
    services: Services,
    job: Job,
    data: bytes,
    deadline_s: float,
    client_gone: Callable[[], Coroutine[Any, Any, None]],
    once: Once | None,
) -> tuple[JobResult | None, bool]:
    """Queue the job and wait for it, or, with an Idempotency-Key seen before for this body,
    wait for the earlier job instead. Returns the result (None: out of time) and whether it is
    the earlier job's."""
    for _ in range(_CLAIM_TRIES):
        future = services.waiter.register(job.id)
        try:
            earlier = await services.queue.enqueue(job, data, once=once)
        except BaseException:
            services.waiter.forget(job.id)
            raise
        if earlier is None:
            arrived = await _wait_unless_gone(services, job, future, deadline_s, client_gone)
            if not arrived:
                return None, False
            # Read once and deleted: nobody else asks for a sync result, and it is ~0.5 MB a
            # photo. Under an Idempotency-Key it stays for its TTL, for a retry whose first
            # answer was lost on the way.
            return await _read_result(services, job.id, deadline_s, take=once is None), False
        services.waiter.forget(job.id)
        _same_body(earlier, once)
        result = await _poll_result(services, earlier.job_id, deadline_s)
        if not idempotency.worth_rerunning(result):
            return result, True
        assert once is not None
        once = dataclasses.replace(once, replace=earlier.claim)
    raise Overloaded("the request's Idempotency-Key is contended; retry", retry_after_s=1)


async def enhance(
    data: bytes,
    options: EnhanceOptions,
    services: Services,
    started: float,
    client_gone: Callable[[], Coroutine[Any, Any, None]],
    once: Once | None = None,
) -> tuple[JobResult, bool]:
    """Run one upload through the queue and return its successful result (and whether it is a
    replay of an earlier request's), or raise its error."""
    s = services.settings
    info = await validate_upload(data, services)
    deadline_s = started + s.request_deadline_s
    job = Job(
        id=new_job_id(),
        reply_to=services.waiter.channel,
        options=options,
        width=info.width,
        height=info.height,
        output_format=imaging.answer_format(options.format, info.format),
        replayable=once is not None,
        enqueued_at_ms=now_ms(),
        deadline_at_ms=now_ms() + int((deadline_s - time.perf_counter()) * 1000),
    )
    result, replayed = await _run_once(services, job, data, deadline_s, client_gone, once)
    if result is None:
        if not await services.model.is_ready():
            # Workers keep retrying while the model is away; this client should come back later.
            raise ModelUnavailable(
                f"the model is not available; no result within {s.request_deadline_s:g} s"
            )
        raise DeadlineExceeded(f"no result within {s.request_deadline_s:g} s")
    metrics.QUEUE_WAIT.observe(result.queue_ms / 1000)
    if result.status != "done":
        raise error_from_code(result.error_code or "job_failed", result.error_detail or "failed")
    return result, replayed


async def submit_job(
    data: bytes,
    options: EnhanceOptions,
    services: Services,
    owner: str | None,
    once: Once | None = None,
) -> tuple[JobRecord, bool]:
    """Queue an async job; the client polls GET /v1/jobs/{id} for it. With an Idempotency-Key
    seen before for this body, the earlier job's record instead (and True)."""
    s = services.settings
    info = await validate_upload(data, services)
    created = now_ms()
    job = Job(
        id=new_job_id(),
        reply_to="",
        options=options,
        width=info.width,
        height=info.height,
        output_format=imaging.answer_format(options.format, info.format),
        enqueued_at_ms=created,
        deadline_at_ms=created + int(s.job_deadline_s * 1000),
    )
    record = JobRecord(
        id=job.id,
        options=options,
        width=info.width,
        height=info.height,
        created_at_ms=created,
        owner=owner,
    )
    for _ in range(_CLAIM_TRIES):
        earlier = await services.queue.enqueue(job, data, record, once)
        if earlier is None:
            return record, False
        _same_body(earlier, once)
        result = await services.queue.get_result(earlier.job_id)
        if not idempotency.worth_rerunning(result):
            first = await services.queue.get_record(earlier.job_id)
            if first is not None:
                return first, True
        assert once is not None
        once = dataclasses.replace(once, replace=earlier.claim)
    raise Overloaded("the request's Idempotency-Key is contended; retry", retry_after_s=1)
