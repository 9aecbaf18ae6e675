"""Gateway side of a job: validate the upload, enqueue it, wait for its result with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from starlette.concurrency import run_in_threadpool

from service import imaging, metrics
from service.api.deps import Services
from service.errors import Cancelled, DeadlineExceeded, PayloadTooLarge, error_from_code
from service.queue.jobs import EnhanceOptions, Job, JobRecord, JobResult, new_job_id, now_ms


async def validate_upload(data: bytes, services: Services) -> imaging.ImageInfo:
    s = services.settings
    if len(data) > s.max_upload_bytes:
        raise PayloadTooLarge(f"the image is {len(data)} bytes; the limit is {s.max_upload_bytes}")
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


async def enhance(
    data: bytes,
    options: EnhanceOptions,
    services: Services,
    started: float,
    client_gone: Callable[[], Coroutine[Any, Any, None]],
) -> JobResult:
    """Run one upload through the queue and return its successful result, or raise its error."""
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
        enqueued_at_ms=now_ms(),
        deadline_at_ms=now_ms() + int((deadline_s - time.perf_counter()) * 1000),
    )
    future = services.waiter.register(job.id)
    try:
        await services.queue.enqueue(job, data)
    except BaseException:
        services.waiter.forget(job.id)
        raise
    arrived = await _wait_unless_gone(services, job, future, deadline_s, client_gone)
    result = await services.queue.get_result(job.id) if arrived else None
    if result is None:
        raise DeadlineExceeded(f"no result within {s.request_deadline_s:g} s")
    metrics.QUEUE_WAIT.observe(result.queue_ms / 1000)
    if result.status != "done":
        raise error_from_code(result.error_code or "job_failed", result.error_detail or "failed")
    return result


async def submit_job(
    data: bytes, options: EnhanceOptions, services: Services, owner: str | None
) -> JobRecord:
    """Queue an async job; the client polls GET /v1/jobs/{id} for it."""
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
    await services.queue.enqueue(job, data, record)
    return record
