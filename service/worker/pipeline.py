"""The image pipeline of a worker: decode -> batch by shape -> Triton -> assemble -> encode.

It knows nothing of the queue: the consume loop hands it admitted jobs and gets exactly one
result (done or failed) back per job through ``deliver``. Transient Triton failures are retried
with backoff until the jobs' deadline; permanent ones fail the job at once (a failed batch is
rerun image by image to find the culprit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from service import colour, imaging, metrics, tiling
from service.batching import backoff_s, group_by_shape
from service.config import Settings
from service.errors import DeadlineExceeded, InputError, JobFailed, ModelUnavailable, ServiceError
from service.inference import Prediction, TritonModel
from service.queue.jobs import Job, JobResult, now_ms

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
    original: U8 | None = None  # the upright input, kept only to blend with when strength < 1
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


Deliver = Callable[[Work, JobResult], Awaitable[None]]


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        model: TritonModel,
        worker_name: str,
        stopping: asyncio.Event,
        deliver: Deliver,
    ) -> None:
        self.settings = settings
        self.model = model
        self.worker_name = worker_name
        self._stopping = stopping
        self._deliver = deliver
        self._pool = ThreadPoolExecutor(
            max_workers=max(2, settings.worker_concurrency), thread_name_prefix="codec"
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    async def run(self, works: list[Work]) -> None:
        """Every work ends delivered, or (worker stopping) left undelivered for the queue."""
        parts = [p for ps in await asyncio.gather(*(self._decode(w) for w in works)) for p in ps]
        batches = group_by_shape(
            parts,
            lambda p: p.image.shape,
            self.settings.batch_max_size,
            self.settings.batch_max_pixels,
        )
        await asyncio.gather(*(self._run_batch(batch) for batch in batches))

    async def fail(self, work: Work, exc: ServiceError) -> None:
        if not work.finished:
            work.finished = True
            await self._deliver(
                work, JobResult.failure(work.job.id, exc.code, exc.detail, self.worker_name)
            )

    async def _decode(self, work: Work) -> list[Part]:
        data, work.upload = work.upload, b""  # the decoded pixels replace the bytes
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            decoded = await loop.run_in_executor(
                self._pool, imaging.decode, data, work.job.options.metadata
            )
        except InputError as exc:
            await self.fail(work, exc)
            return []
        metrics.CODEC.labels("decode").observe(time.perf_counter() - started)
        rgb = decoded.rgb
        work.height, work.width, work.exif = rgb.shape[0], rgb.shape[1], decoded.exif
        if work.job.options.strength < 1.0:
            work.original = rgb
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
            with_mask = any(p.work.job.options.mask for p in batch)
            batch, prediction = await self._infer_with_retry(batch, with_mask)
        except JobFailed as exc:
            if len(batch) > 1:  # find the culprit: run each image alone
                await asyncio.gather(*(self._run_batch([p]) for p in batch))
                return
            await self.fail(batch[0].work, exc)
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

    async def _infer_with_retry(
        self, batch: list[Part], mask: bool
    ) -> tuple[list[Part], Prediction]:
        """Infer, retrying while Triton or the model is unavailable. A part whose job's deadline
        would pass before the next try fails as model_unavailable (503: the client may come
        back later); the others go on without it. Returns the parts the prediction is for."""
        attempt = 0
        while True:
            # A lone image goes as a view: stacking copies it for nothing (0.5 ms at 600x400).
            images = batch[0].image[None] if len(batch) == 1 else np.stack([p.image for p in batch])
            try:
                return batch, await self.model.infer(images, mask)
            except ModelUnavailable as exc:
                delay = backoff_s(
                    attempt, self.settings.retry_backoff_s, self.settings.retry_backoff_max_s
                )
                attempt += 1
                metrics.RETRIES.inc()
                if self._stopping.is_set():
                    raise _GiveBack from exc
                next_try_ms = now_ms() + delay * 1000
                for p in batch:
                    if next_try_ms >= p.work.job.deadline_at_ms:
                        await self.fail(p.work, ModelUnavailable(f"no model: {exc.detail}"))
                batch = [p for p in batch if not p.work.finished]
                if not batch:
                    raise _GiveBack from exc
                log.warning(
                    "Triton unavailable (%s); retry %d in %.1fs", exc.detail, attempt, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=delay)

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
            image_content_type=imaging.CONTENT_TYPES[work.job.answer_format],
            mask=mask_bytes,
            width=work.width,
            height=work.height,
            model_name=self.model.name,
            model_version=work.model_version,
            queue_ms=float(work.started_ms - work.job.enqueued_at_ms),
            inference_ms=work.inference_ms,
            worker=self.worker_name,
        )
        await self._deliver(work, result)

    def _encode(self, work: Work) -> tuple[bytes, bytes | None]:
        s, job = self.settings, work.job
        enhanced, mask = self._assemble(work)
        if work.original is not None:  # after the model: strength costs no model time
            enhanced = colour.blend(work.original, enhanced, job.options.strength)
        image = imaging.encode_image(
            np.ascontiguousarray(enhanced),
            job.answer_format,
            quality=job.options.quality,
            exif=work.exif,
            png_compress_level=s.png_compress_level,
            jpeg_quality=s.jpeg_quality,
            webp_quality=s.webp_quality,
            avif_quality=s.avif_quality,
        )
        mask_png = None
        if mask is not None:
            mask_png = imaging.encode_mask(
                np.ascontiguousarray(mask), png_compress_level=s.png_compress_level
            )
        return image, mask_png


class _GiveBack(Exception):
    """The batch goes back to the queue: the worker is stopping, or its jobs expired."""


def expired(detail: str = "the request deadline passed before the job ran") -> ServiceError:
    return DeadlineExceeded(detail)
