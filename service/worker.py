"""The batching worker: queue -> decode -> batch by shape -> Triton -> encode -> result -> ack.

Several consume loops run per process so decoding and encoding of one batch overlap with
inference of another. Transient Triton failures are retried with backoff until the job's deadline;
permanent ones fail the job at once; attempts per job (crashes included) are capped, so a poison
job ends as failed instead of circling forever. On SIGTERM the worker stops reading, finishes
what it holds and exits; what it cannot finish stays pending for another worker to reclaim.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from service import imaging, metrics, tiling
from service.batching import backoff_s, group_by_shape
from service.config import Settings
from service.errors import (
    Cancelled,
    DeadlineExceeded,
    InputError,
    JobFailed,
    ModelUnavailable,
    ServiceError,
    UnavailableError,
)
from service.inference import Prediction, TritonModel
from service.queue.jobs import Job, JobResult, now_ms
from service.queue.streams import Entry, JobQueue

U8 = npt.NDArray[np.uint8]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Work:
    """One job in flight inside the worker."""

    entry_id: bytes
    job: Job
    started_ms: int
    upload: bytes
    height: int = 0
    width: int = 0
    exif: bytes | None = None
    tiles: list[tiling.Tile] | None = None  # None: the whole (padded) image is one part
    outputs: dict[int, tuple[U8, U8 | None]] = field(default_factory=dict)  # mask if asked
    parts_total: int = 1
    inference_ms: float = 0.0
    model_version: str = ""
    finished: bool = False


@dataclass(slots=True)
class Part:
    """One model input: a whole image (edge-padded to the minimum side) or a tile of a large one."""

    work: Work
    index: int
    image: U8


def default_worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Worker:
    def __init__(self, settings: Settings, queue: JobQueue, model: TritonModel, name: str) -> None:
        self.settings = settings
        self.queue = queue
        self.model = model
        self.name = name
        self._stop = asyncio.Event()
        self._inflight: set[bytes] = set()
        self._pool = ThreadPoolExecutor(
            max_workers=max(2, settings.worker_concurrency), thread_name_prefix="codec"
        )

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
            self._pool.shutdown(wait=True)
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
        while not self._stop.is_set():
            try:
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
            works = await self._admit(entries)
            parts = [
                p for ps in await asyncio.gather(*(self._decode(w) for w in works)) for p in ps
            ]
            batches = group_by_shape(
                parts,
                lambda p: p.image.shape,
                self.settings.batch_max_size,
                self.settings.batch_max_pixels,
            )
            await asyncio.gather(*(self._run_batch(batch) for batch in batches))
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
                await self._fail(entry.entry_id, job, _expired())
            elif attempt.upload is None:
                await self._fail(
                    entry.entry_id, job, JobFailed("the upload expired before processing")
                )
            else:
                works.append(Work(entry.entry_id, job, started, attempt.upload))
        return works

    async def _decode(self, work: Work) -> list[Part]:
        data, work.upload = work.upload, b""  # the decoded pixels replace the bytes
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            decoded = await loop.run_in_executor(
                self._pool, imaging.decode, data, work.job.options.metadata
            )
        except InputError as exc:
            await self._fail_work(work, exc)
            return []
        metrics.CODEC.labels("decode").observe(time.perf_counter() - started)
        rgb = decoded.rgb
        work.height, work.width, work.exif = rgb.shape[0], rgb.shape[1], decoded.exif
        s = self.settings
        if rgb.shape[0] * rgb.shape[1] <= s.tile_above_pixels:
            return [
                Part(work, 0, imaging.pad_for_model(rgb, s.model_min_side_px, s.batch_bucket_px))
            ]
        work.tiles = tiling.plan(rgb.shape[0], rgb.shape[1], s.tile_size_px, s.tile_overlap_px)
        work.parts_total = len(work.tiles)
        return [Part(work, i, tile) for i, tile in enumerate(tiling.cut(rgb, work.tiles))]

    async def _run_batch(self, batch: list[Part]) -> None:
        batch = [p for p in batch if not p.work.finished]
        if not batch:
            return
        try:
            # A lone image goes as a view: stacking copies it for nothing (0.5 ms at 600x400).
            images = batch[0].image[None] if len(batch) == 1 else np.stack([p.image for p in batch])
            with_mask = any(p.work.job.options.mask for p in batch)
            prediction = await self._infer_with_retry(batch, images, with_mask)
        except JobFailed as exc:
            if len(batch) > 1:  # find the culprit: run each image alone
                await asyncio.gather(*(self._run_batch([p]) for p in batch))
                return
            await self._fail_work(batch[0].work, exc)
            return
        except _GiveBack:
            return  # stopping or out of time: left pending (or failed as expired) already
        metrics.BATCH_SIZE.observe(len(batch))
        metrics.INFERENCE.observe(prediction.inference_ms / 1000)
        ready: list[Work] = []
        for i, part in enumerate(batch):
            work = part.work
            mask = prediction.mask[i] if prediction.mask is not None else None
            work.outputs[part.index] = (prediction.enhanced[i], mask)
            work.inference_ms += prediction.inference_ms
            work.model_version = prediction.model_version
            if len(work.outputs) == work.parts_total and work not in ready:
                ready.append(work)
        await asyncio.gather(*(self._complete(w) for w in ready))

    async def _infer_with_retry(self, batch: list[Part], images: U8, mask: bool) -> Prediction:
        attempt = 0
        while True:
            try:
                return await self.model.infer(images, mask)
            except ModelUnavailable as exc:
                delay = backoff_s(
                    attempt, self.settings.retry_backoff_s, self.settings.retry_backoff_max_s
                )
                attempt += 1
                metrics.RETRIES.inc()
                if self._stop.is_set():
                    raise _GiveBack from exc
                if now_ms() + delay * 1000 >= min(p.work.job.deadline_at_ms for p in batch):
                    for p in batch:
                        await self._fail_work(p.work, _expired(f"model unavailable: {exc.detail}"))
                    raise _GiveBack from exc
                log.warning(
                    "Triton unavailable (%s); retry %d in %.1fs", exc.detail, attempt, delay
                )
                await self._sleep(delay)

    def _assemble(self, work: Work) -> tuple[U8, U8 | None]:
        """The full-size outputs: stitched from tiles, or cropped back from the padded image."""
        h, w = work.height, work.width
        want_mask = work.job.options.mask
        if work.tiles is None:
            enhanced, mask = work.outputs[0]
            enhanced = enhanced[:h, :w]
            mask = mask[:h, :w] if want_mask and mask is not None else None
        else:
            order = range(len(work.tiles))
            tile_masks = [m for i in order if (m := work.outputs[i][1]) is not None]
            enhanced, mask = tiling.stitch(
                np.stack([work.outputs[i][0] for i in order]),
                np.stack(tile_masks) if want_mask else None,
                work.tiles,
                h,
                w,
                self.settings.tile_overlap_px,
            )
        return enhanced, mask

    async def _complete(self, work: Work) -> None:
        work.finished = True
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        image_bytes, mask_bytes = await loop.run_in_executor(self._pool, self._encode, work)
        metrics.CODEC.labels("encode").observe(time.perf_counter() - started)
        result = JobResult(
            id=work.job.id,
            status="done",
            image=image_bytes,
            image_content_type=imaging.CONTENT_TYPES[work.job.options.format],
            mask=mask_bytes,
            width=work.width,
            height=work.height,
            model_name=self.model.name,
            model_version=work.model_version,
            queue_ms=float(work.started_ms - work.job.enqueued_at_ms),
            inference_ms=work.inference_ms,
            worker=self.name,
        )
        await self._finish(work.entry_id, work.job, result)

    async def _fail_work(self, work: Work, exc: ServiceError) -> None:
        if not work.finished:
            work.finished = True
            await self._fail(work.entry_id, work.job, exc)

    def _encode(self, work: Work) -> tuple[bytes, bytes | None]:
        s, job = self.settings, work.job
        enhanced, mask = self._assemble(work)
        image = imaging.encode_image(
            np.ascontiguousarray(enhanced),
            job.options.format,
            quality=job.options.quality,
            exif=work.exif,
            png_compress_level=s.png_compress_level,
            jpeg_quality=s.jpeg_quality,
            webp_quality=s.webp_quality,
        )
        mask_png = None
        if mask is not None:
            mask_png = imaging.encode_mask(
                np.ascontiguousarray(mask), png_compress_level=s.png_compress_level
            )
        return image, mask_png

    async def _fail(self, entry_id: bytes, job: Job, exc: ServiceError) -> None:
        await self._finish(
            entry_id, job, JobResult.failure(job.id, exc.code, exc.detail, self.name)
        )

    async def _finish(self, entry_id: bytes, job: Job, result: JobResult) -> None:
        # Shielded: a cancelled worker must not leave a result written but the job unacked.
        try:
            first = await asyncio.shield(self.queue.finish(entry_id, job.id, job.reply_to, result))
        except UnavailableError as exc:
            log.warning("job %s: could not store result (%s); it stays pending", job.id, exc.detail)
            return
        metrics.JOBS.labels(result.status if result.status == "done" else result.error_code).inc()
        log.info(
            "job %s %s in %d ms%s",
            job.id,
            result.status,
            now_ms() - job.enqueued_at_ms,
            "" if first else " (duplicate result ignored)",
        )


class _GiveBack(Exception):
    """The batch goes back to the queue: the worker is stopping, or its jobs expired."""


def _expired(detail: str = "the request deadline passed before the job ran") -> ServiceError:
    return DeadlineExceeded(detail)
