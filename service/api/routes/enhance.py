"""POST /enhance (and /v1/enhance): a photo in, the enhanced photo (and mask) out."""

from __future__ import annotations

import base64
import time
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from service.api import submit
from service.api.deps import ServicesDep
from service.api.schemas import EnhanceWithMask, Problem
from service.errors import PayloadTooLarge
from service.imaging import OutputFormat
from service.labels import CLASSES
from service.queue.jobs import EnhanceOptions, JobResult

router = APIRouter(tags=["enhance"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {"application/problem+json": {}}}
    for status in (400, 413, 415, 422, 429, 500, 503, 504)
}
_IMAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/webp": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {
                "schema": EnhanceWithMask.model_json_schema(
                    ref_template="#/components/schemas/{model}"
                )
            },
        },
        "description": "The enhanced image; JSON with the mask when mask=true.",
    },
    **_ERRORS,
}


def _options(
    mask_q: bool | None,
    format_q: OutputFormat | None,
    quality_q: int | None,
    mask_f: bool | None,
    format_f: OutputFormat | None,
    quality_f: int | None,
) -> EnhanceOptions:
    """Form fields win over query parameters when both are given."""
    return EnhanceOptions(
        mask=mask_f if mask_f is not None else bool(mask_q),
        format=format_f or format_q or "png",
        quality=quality_f if quality_f is not None else quality_q,
    )


async def _read_upload(upload: UploadFile, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"the image exceeds {limit} bytes")
    return data


def _render(result: JobResult, options: EnhanceOptions, started: float) -> Response:
    if not options.mask:
        return Response(result.image or b"", media_type=result.image_content_type)
    body = EnhanceWithMask.model_validate(
        {
            "width": result.width,
            "height": result.height,
            "image": {
                "content_type": result.image_content_type,
                "data": base64.b64encode(result.image or b"").decode(),
            },
            "mask": {
                "content_type": "image/png",
                "data": base64.b64encode(result.mask or b"").decode(),
            },
            "classes": [c._asdict() for c in CLASSES],
            "model": {"name": result.model_name, "version": result.model_version},
            "timing_ms": {
                "queue": round(result.queue_ms, 2),
                "inference": round(result.inference_ms, 2),
                "total": round((time.perf_counter() - started) * 1000, 2),
            },
        }
    )
    return JSONResponse(body.model_dump())


@router.post(
    "/enhance",
    responses=_IMAGE_RESPONSES,
    response_class=Response,
    summary="Enhance a low-light photo",
)
@router.post(
    "/v1/enhance",
    responses=_IMAGE_RESPONSES,
    response_class=Response,
    summary="Enhance a low-light photo (versioned path)",
)
async def enhance(
    request: Request,
    services: ServicesDep,
    image: Annotated[
        UploadFile, File(description="JPEG, PNG, WebP or BMP; type read from the bytes")
    ],
    mask_q: Annotated[bool | None, Query(alias="mask")] = None,
    format_q: Annotated[OutputFormat | None, Query(alias="format")] = None,
    quality_q: Annotated[int | None, Query(alias="quality", ge=1, le=100)] = None,
    mask_f: Annotated[bool | None, Form(alias="mask")] = None,
    format_f: Annotated[OutputFormat | None, Form(alias="format")] = None,
    quality_f: Annotated[int | None, Form(alias="quality", ge=1, le=100)] = None,
) -> Response:
    started = time.perf_counter()
    options = _options(mask_q, format_q, quality_q, mask_f, format_f, quality_f)
    data = await _read_upload(image, services.settings.max_upload_bytes)
    result = await submit.enhance(data, options, services, started)
    return _render(result, options, started)
