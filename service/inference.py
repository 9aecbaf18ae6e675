"""The Triton client wrapper: uint8 batches in and out, tritonclient errors mapped to ours.

The model contract (same for the python/ONNX Runtime model and the TensorRT engine):
``image`` uint8 [N, H, W, 3] in; ``enhanced`` uint8 [N, H, W, 3] and ``mask`` uint8 [N, H, W] out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import grpc
import numpy as np
import numpy.typing as npt
import tritonclient.grpc.aio as triton
from tritonclient.utils import InferenceServerException

from service import metrics
from service.config import Settings
from service.errors import JobFailed, ModelUnavailable
from service.triton_shm import Region, RegionPool, RegionsUnusable, on_loopback

U8 = npt.NDArray[np.uint8]

log = logging.getLogger(__name__)

# Photos are megabytes; gRPC's 4 MiB default would reject a batch of full-HD images.
_CHANNEL_ARGS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
# What a failed call to Triton raises, short of a cancellation.
_TRITON_FAILURES = (InferenceServerException, grpc.RpcError, OSError)
# Statuses after which the same request may well succeed later (server restarting, overloaded;
# NOT_FOUND: the model is not loaded, as while Triton loads it or after it was unloaded).
_TRANSIENT = {
    "NOT_FOUND",
    "UNAVAILABLE",
    "DEADLINE_EXCEEDED",
    "RESOURCE_EXHAUSTED",
    "ABORTED",
    "CANCELLED",
    "UNKNOWN",
}


@dataclass(frozen=True, slots=True)
class Prediction:
    enhanced: U8  # uint8 [N, H, W, 3]
    mask: U8 | None  # uint8 [N, H, W]; None when not asked for
    model_version: str
    inference_ms: float


class TritonModel:
    def __init__(self, settings: Settings) -> None:
        self.name = settings.triton_model
        self.version = settings.triton_model_version
        self._timeout_s = settings.triton_timeout_s
        self._client = triton.InferenceServerClient(
            url=settings.triton_grpc_url, channel_args=_CHANNEL_ARGS
        )
        mode = settings.triton_shared_memory
        self._shm_wanted = mode == "on" or (
            mode == "auto" and on_loopback(settings.triton_grpc_url)
        )
        self._shm_max_bytes = settings.triton_shared_memory_max_mb << 20
        self._regions: RegionPool | None = None
        self._regions_lock = asyncio.Lock()

    async def close(self) -> None:
        if self._regions is not None:
            try:
                await self._regions.close()
            except InferenceServerException as exc:
                log.warning("could not unregister shared memory from Triton: %s", exc.message())
        await self._client.close()

    async def is_ready(self) -> bool:
        try:
            return bool(
                await self._client.is_model_ready(self.name, self.version, client_timeout=2.0)
            )
        except _TRITON_FAILURES:
            return False

    async def infer(self, images: U8, mask: bool = True) -> Prediction:
        """``mask=False`` asks for the enhanced image alone: the CPU model then runs a graph
        without the segmentation mask's upsampling and argmax (8% of its time)."""
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"expected uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
        n = images.nbytes
        image_in = triton.InferInput("image", list(images.shape), "UINT8")
        names = ("enhanced", "mask") if mask else ("enhanced",)
        outputs = [triton.InferRequestedOutput(name) for name in names]
        slots = _output_slots(n, names)
        region = await self._region(n + sum(size for _, _, size in slots))
        if region is None:
            image_in.set_data_from_numpy(images)
        else:
            np.frombuffer(region.buffer, np.uint8, n).reshape(images.shape)[:] = images
            image_in.set_shared_memory(region.name, n)
            for output, (_, offset, size) in zip(outputs, slots, strict=True):
                output.set_shared_memory(region.name, size, offset=offset)
        metrics.TRITON_CALLS.labels("grpc" if region is None else "shm").inc()
        started = time.perf_counter()
        try:
            response = await self._client.infer(
                self.name,
                [image_in],
                model_version=self.version,
                outputs=outputs,
                client_timeout=self._timeout_s,
            )
        except BaseException as exc:
            if region is not None and self._regions is not None:
                if _lost_region(exc):  # Triton restarted: none of our regions exist there now
                    self._regions.forget_all()
                    raise ModelUnavailable("Triton lost its shared memory regions") from exc
                self._regions.retire(region)  # Triton may still write into it
            if isinstance(exc, _TRITON_FAILURES):
                raise _service_error(exc) from exc
            raise
        elapsed_ms = (time.perf_counter() - started) * 1000
        if region is None:
            enhanced = response.as_numpy("enhanced")
            masks = response.as_numpy("mask") if mask else None
        else:
            read = self._read_region(region, response, slots, images.shape)
            enhanced, masks = read["enhanced"], read.get("mask")
        _check(images, enhanced, masks, mask)
        version = response.get_response().model_version
        return Prediction(enhanced, masks, version, elapsed_ms)

    async def _region(self, nbytes: int) -> Region | None:
        """A shared memory region for this call, or None to send the pixels inside gRPC."""
        if not self._shm_wanted:
            return None
        try:
            async with self._regions_lock:  # one pool, set up once, one creation at a time
                if self._regions is None:
                    pool = RegionPool(self._client, self._shm_max_bytes)
                    stale = await pool.remove_stale()
                    if stale:
                        log.info("unregistered %d region(s) a dead worker left", len(stale))
                    self._regions = pool
                return await self._regions.acquire(nbytes)
        except RegionsUnusable as exc:
            log.warning("Triton cannot map this host's shared memory (%s): pixels go by gRPC", exc)
            self._shm_wanted = False
            return None
        except _TRITON_FAILURES as exc:
            raise _service_error(exc) from exc

    def _read_region(
        self,
        region: Region,
        response: triton.InferResult,
        slots: list[tuple[str, int, int]],
        shape: tuple[int, ...],
    ) -> dict[str, U8 | None]:
        """Copy the outputs out of the region, which then serves the next call."""
        want = {"enhanced": shape, "mask": shape[:3]}
        try:
            out: dict[str, U8 | None] = {}
            for name, offset, size in slots:
                told = response.get_output(name)
                if told is None or tuple(told.shape) != want[name]:
                    out[name] = None  # _check reports it
                    continue
                view = np.frombuffer(region.buffer, np.uint8, size, offset)
                out[name] = view.reshape(want[name]).copy()
                del view  # the region's buffer must have no views left when it is closed
            return out
        finally:
            assert self._regions is not None
            self._regions.release(region)


def _output_slots(n: int, names: tuple[str, ...]) -> list[tuple[str, int, int]]:
    """Where each output lies in a region after the ``n`` input bytes, as (name, offset, bytes):
    the enhanced image is as large as the input, the mask a third of it."""
    sizes = {"enhanced": n, "mask": n // 3}
    slots, offset = [], n
    for name in names:
        slots.append((name, offset, sizes[name]))
        offset += sizes[name]
    return slots


def _service_error(exc: InferenceServerException | grpc.RpcError | OSError) -> Exception:
    if isinstance(exc, InferenceServerException):
        return _translate(exc)
    return ModelUnavailable(f"Triton unreachable: {type(exc).__name__}")


def _lost_region(exc: BaseException) -> bool:
    return (
        isinstance(exc, InferenceServerException)
        and "NOT_FOUND" in str(exc.status() or "")
        and "shared memory region" in (exc.message() or "")
    )


def _translate(exc: InferenceServerException) -> Exception:
    status = (exc.status() or "").removeprefix("StatusCode.")
    if status in _TRANSIENT or not status:
        return ModelUnavailable(f"Triton: {status or 'error'}: {exc.message()}")
    return JobFailed(f"Triton rejected the request: {status}: {exc.message()}")


def _check(images: U8, enhanced: U8 | None, mask: U8 | None, want_mask: bool) -> None:
    """The batch that comes back must be the batch that went in: same N, same H and W."""
    n, h, w, _ = images.shape
    if enhanced is None or (want_mask and mask is None):
        raise JobFailed("Triton response lacks an output")
    if enhanced.shape != (n, h, w, 3) or (mask is not None and mask.shape != (n, h, w)):
        shapes = f"{enhanced.shape}, {mask.shape if mask is not None else '-'}"
        raise JobFailed(f"output shapes {shapes} do not match input {images.shape}")
    if enhanced.dtype != np.uint8 or (mask is not None and mask.dtype != np.uint8):
        raise JobFailed("model outputs are not uint8")
