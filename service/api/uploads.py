"""What enhance and jobs routes share: the options dependency, reading the upload, OpenAPI docs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, File, Form, Query, UploadFile

from service.api.schemas import Problem
from service.errors import PayloadTooLarge
from service.imaging import OutputFormat
from service.queue.jobs import EnhanceOptions

ImageFile = Annotated[
    UploadFile, File(description="JPEG, PNG, WebP or BMP; the type is read from the bytes")
]


def enhance_options(
    mask_q: Annotated[bool | None, Query(alias="mask")] = None,
    format_q: Annotated[OutputFormat | None, Query(alias="format")] = None,
    quality_q: Annotated[int | None, Query(alias="quality", ge=1, le=100)] = None,
    mask_f: Annotated[bool | None, Form(alias="mask")] = None,
    format_f: Annotated[OutputFormat | None, Form(alias="format")] = None,
    quality_f: Annotated[int | None, Form(alias="quality", ge=1, le=100)] = None,
) -> EnhanceOptions:
    """Options as query parameters or form fields; a form field wins when both are given."""
    return EnhanceOptions(
        mask=mask_f if mask_f is not None else bool(mask_q),
        format=format_f or format_q or "png",
        quality=quality_f if quality_f is not None else quality_q,
    )


OptionsDep = Annotated[EnhanceOptions, Depends(enhance_options)]


async def read_upload(upload: UploadFile, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"the image exceeds {limit} bytes")
    return data


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": Problem, "content": {"application/problem+json": {}}}
        for status in statuses
    }


BINARY = {"schema": {"type": "string", "format": "binary"}}
IMAGE_CONTENT = {"image/png": BINARY, "image/jpeg": BINARY, "image/webp": BINARY}
