"""The consume loop of a worker: read and claim jobs, keep them alive, hand them to the pipeline,
store each result and ack it.

Several consume loops run per process so decoding and encoding of one batch overlap with
inference of another. Attempts per job (crashes included) are capped, so a poison job ends as
failed instead of circling forever. On SIGTERM the worker stops reading, finishes what it holds
and exits; what it cannot finish stays pending for another worker to reclaim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

from service import metrics
from service.batching import backoff_s
from service.config import Settings
from service.errors import Cancelled, JobFailed, ServiceError, UnavailableError
from service.inference import TritonModel
from service.queue.jobs import Job, JobResult, now_ms
from service.queue.streams import Entry, JobQueue
from service.worker.pipeline import Pipeline, Work, expired

log = logging.getLogger(__name__)


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    def __init__(self, settings: Settings, queue: JobQueue, model: TritonModel, name: str) -> None:
        self.settings = settings
        self.queue = queue
        self.name = name
        self._stop = asyncio.Event()
        self._inflight: set[bytes] = set()
        self.pipeline = Pipeline(settings, model, name, self._stop, self._deliver)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        await self._wait_for_redis()
        log.info(
            "worker %s consuming (concurrency %d, batch <= %d)",
            self.name,
            self.settings.worker_concurrency,
            self.settings.batch_max_size,
        )
        loops = [self._consume_loop(i) for i in range(self.settings.worker_concurrency)]
        tasks = [asyncio.create_task(c) for c in loops]
        side = [
            asyncio.create_task(self._reclaim_loop()),
            asyncio.create_task(self._keepalive_loop()),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)
            self.pipeline.close()
            log.info("worker %s stopped", self.name)

    async def _wait_for_redis(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                await self.queue.ensure_group()
                return
            except UnavailableError as exc:
                delay = backoff_s(attempt, 0.2, 5.0)
                log.warning("waiting for Redis (%s); retry in %.1fs", exc.detail, delay)
                attempt += 1
                await self._sleep(delay)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)

    # --- loops
    async def _consume_loop(self, index: int) -> None:
        attempt = 0
        # Loop 0 first takes back what this worker held if it restarted under the same name;
        # any loop does after a queue outage (its jobs may have failed to start).
        own_pending = index == 0
        while not self._stop.is_set():
            try:
                if own_pending:
                    await self._take_own_pending()
                    own_pending = False
                entries = await self._read_batch()
                attempt = 0
                if entries:
                    await self.process(entries)
            except UnavailableError as exc:
                delay = backoff_s(attempt, 0.2, 5.0)
                log.warning(
                    "loop %d: queue unavailable (%s); retry in %.1fs", index, exc.detail, delay
                )
                attempt += 1
                own_pending = True
                await self._sleep(delay)
            except Exception:
                # A bug must not stop the loop: the jobs stay pending, are reclaimed later and
                # end as failed once they reach SLLEN_MAX_ATTEMPTS.
                log.exception("loop %d: unexpected error; its jobs stay pending", index)
                await self._sleep(1.0)

    async def _read_batch(self) -> list[Entry]:
        size = self.settings.batch_max_size
        entries = await self.queue.read(self.name, size, self.settings.read_block_ms)
        if entries and len(entries) < size and self.settings.batch_wait_ms > 0:
            # A short second read lets near-simultaneous uploads share one Triton call.
            entries += await self.queue.read(
                self.name, size - len(entries), self.settings.batch_wait_ms
            )
        return entries

    async def _take_own_pending(self) -> None:
        """Process this consumer's pending entries that no loop of this process holds: those of
        a previous life under this name (sllen run and a restarted container reuse it) are
        taken at once, instead of after SLLEN_CLAIM_IDLE_MS."""
        after = b"0"
        while not self._stop.is_set():
            entries = await self.queue.read_own(self.name, self.settings.batch_max_size, after)
            if not entries:
                return
            after = entries[-1].entry_id
            entries = [e for e in entries if e.entry_id not in self._inflight]
            if entries:
                metrics.RECLAIMED.inc(len(entries))
                log.info("took back %d job(s) pending under this worker's name", len(entries))
                await self.process(entries)

    async def _reclaim_loop(self) -> None:
        while not self._stop.is_set():
            await self._sleep(self.settings.claim_interval_s)
            if self._stop.is_set():
                return
            try:
                entries = await self.queue.reclaim(self.name, self.settings.batch_max_size)
                entries = [e for e in entries if e.entry_id not in self._inflight]
                if entries:
                    metrics.RECLAIMED.inc(len(entries))
                    log.info("reclaimed %d stale job(s)", len(entries))
                    await self.process(entries)
            except UnavailableError:
                continue
            except Exception:
                log.exception("reclaim: unexpected error; the jobs stay pending")

    async def _keepalive_loop(self) -> None:
        """Prove this worker is alive, and keep the jobs it holds from being reclaimed."""
        interval_s = min(
            self.settings.claim_idle_ms / 3000, self.settings.worker_heartbeat_ttl_s / 3
        )
        while not self._stop.is_set():
            with contextlib.suppress(UnavailableError):
                await self.queue.heartbeat(self.name, self.settings.worker_heartbeat_ttl_s)
                await self.queue.touch(self.name, list(self._inflight))
                stats = await self.queue.stats()
                metrics.QUEUE_DEPTH.set(stats.depth)
                metrics.QUEUE_PENDING.set(stats.pending)
                metrics.QUEUE_OLDEST_AGE.set(stats.oldest_age_s)
            await asyncio.sleep(interval_s)

    # --- one batch of entries
    async def process(self, entries: list[Entry]) -> None:
        self._inflight.update(e.entry_id for e in entries)
        try:
            await self.pipeline.run(await self._admit(entries))
        finally:
            self._inflight.difference_update(e.entry_id for e in entries)

    async def _admit(self, entries: list[Entry]) -> list[Work]:
        works: list[Work] = []
        for entry in entries:
            if entry.job is None:
                await self.queue.drop(entry.entry_id)
                continue
            job, started = entry.job, now_ms()
            attempt = await self.queue.begin_attempt(job.id)
            if attempt.cancelled:
                await self._fail(entry.entry_id, job, Cancelled("the client went away"))
            elif attempt.number > self.settings.max_attempts:
                await self._fail(
                    entry.entry_id, job, JobFailed(f"gave up after {attempt.number - 1} attempts")
                )
            elif job.expired(started):
                await self._fail(entry.entry_id, job, expired())
            elif attempt.upload is None:
                await self._fail(
                    entry.entry_id, job, JobFailed("the upload expired before processing")
                )
            else:
                works.append(Work(entry.entry_id, job, started, attempt.upload))
        return works

    async def _deliver(self, work: Work, result: JobResult) -> None:
        await self._finish(work.entry_id, work.job, result)

    async def _fail(self, entry_id: bytes, job: Job, exc: ServiceError) -> None:
        await self._finish(
            entry_id, job, JobResult.failure(job.id, exc.code, exc.detail, self.name)
        )

    async def _finish(self, entry_id: bytes, job: Job, result: JobResult) -> None:
        """Store the result, retrying while Redis is away (a restart, a failover) until it lands
        or the job's deadline passes: a computed result is not thrown away for a short fault."""
        attempt = 0
        while True:
            try:
                # Shielded: a cancelled worker must not leave a result written but unacked.
                first = await asyncio.shield(
                    self.queue.finish(
                        entry_id, job.id, job.reply_to, result, job.deadline_at_ms, job.replayable
                    )
                )
                break
            except UnavailableError as exc:
                delay = backoff_s(attempt, 0.1, 1.0)
                attempt += 1
                if self._stop.is_set() or job.expired(now_ms() + int(delay * 1000)):
                    log.warning(
                        "job %s: could not store result (%s); it stays pending",
                        job.id,
                        exc.detail,
                    )
                    return
                if attempt == 1:
                    log.warning("job %s: storing result failed (%s); retrying", job.id, exc.detail)
                await self._sleep(delay)
        metrics.JOBS.labels(result.status if result.status == "done" else result.error_code).inc()
        log.info(
            "job %s %s in %d ms%s",
            job.id,
            result.status,
            now_ms() - job.enqueued_at_ms,
            "" if first else " (duplicate result ignored)",
        )
