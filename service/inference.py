"""The Triton client wrapper: uint8 batches in and out, tritonclient errors mapped to ours.

The model contract (same for the python/ONNX Runtime model and the TensorRT engine):
``image`` uint8 [N, H, W, 3] in; ``enhanced`` uint8 [N, H, W, 3] and ``mask`` uint8 [N, H, W] out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc
import numpy as np
import numpy.typing as npt
import tritonclient.grpc.aio as triton
from tritonclient.utils import InferenceServerException

from service.config import Settings
from service.errors import JobFailed, ModelUnavailable

U8 = npt.NDArray[np.uint8]

# Photos are megabytes; gRPC's 4 MiB default would reject a batch of full-HD images.
_CHANNEL_ARGS = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
# Statuses after which the same request may well succeed later (server restarting, overloaded).
_TRANSIENT = {
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

    async def close(self) -> None:
        await self._client.close()

    async def is_ready(self) -> bool:
        try:
            return bool(
                await self._client.is_model_ready(self.name, self.version, client_timeout=2.0)
            )
        except (InferenceServerException, grpc.RpcError, OSError):
            return False

    async def infer(self, images: U8, mask: bool = True) -> Prediction:
        """``mask=False`` asks for the enhanced image alone: the CPU model then runs a graph
        without the segmentation mask's upsampling and argmax (8% of its time)."""
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[3] != 3:
            raise ValueError(f"expected uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
        image_in = triton.InferInput("image", list(images.shape), "UINT8")
        image_in.set_data_from_numpy(images)
        names = ("enhanced", "mask") if mask else ("enhanced",)
        outputs = [triton.InferRequestedOutput(name) for name in names]
        started = time.perf_counter()
        try:
            response = await self._client.infer(
                self.name,
                [image_in],
                model_version=self.version,
                outputs=outputs,
                client_timeout=self._timeout_s,
            )
        except InferenceServerException as exc:
            raise _translate(exc) from exc
        except (grpc.RpcError, OSError) as exc:
            raise ModelUnavailable(f"Triton unreachable: {type(exc).__name__}") from exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        enhanced = response.as_numpy("enhanced")
        masks = response.as_numpy("mask") if mask else None
        _check(images, enhanced, masks, mask)
        version = response.get_response().model_version
        return Prediction(enhanced, masks, version, elapsed_ms)


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
