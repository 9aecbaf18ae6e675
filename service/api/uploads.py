"""What enhance and jobs routes share: the options dependency, reading the upload, OpenAPI docs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, File, Form, Query, Request, UploadFile

from service.api.schemas import Problem
from service.errors import MissingImage
from service.imaging import MetadataPolicy, RequestedFormat
from service.queue.jobs import EnhanceOptions

ImageFile = Annotated[
    UploadFile | None,
    File(description="JPEG, PNG, WebP, BMP, HEIC/HEIF or AVIF; the type is read from the bytes"),
]
# Mobile clients often send the photo itself as the body; the type is still read from the bytes.
RAW_BODY_TYPES = frozenset(
    {
        "image/jpeg",
        "image/png",
        "image/webp",
        "image/bmp",
        "image/heic",
        "image/heif",
        "image/avif",
        "application/octet-stream",
    }
)
_FORMAT_DOC = (
    "auto (default): the upload's own family (JPEG, PNG, WebP and AVIF as sent; HEIC as JPEG; "
    "BMP as PNG); png, jpeg, webp or avif force one"
)
_STRENGTH_DOC = "0: the upload as sent (upright), 1 (default): the model's output; between, a blend"


async def enhance_options(
    mask_q: Annotated[bool | None, Query(alias="mask")] = None,
    format_q: Annotated[
        RequestedFormat | None, Query(alias="format", description=_FORMAT_DOC)
    ] = None,
    quality_q: Annotated[int | None, Query(alias="quality", ge=1, le=100)] = None,
    strength_q: Annotated[
        float | None, Query(alias="strength", ge=0, le=1, description=_STRENGTH_DOC)
    ] = None,
    mask_f: Annotated[bool | None, Form(alias="mask")] = None,
    format_f: Annotated[
        RequestedFormat | None, Form(alias="format", description=_FORMAT_DOC)
    ] = None,
    quality_f: Annotated[int | None, Form(alias="quality", ge=1, le=100)] = None,
    strength_f: Annotated[
        float | None, Form(alias="strength", ge=0, le=1, description=_STRENGTH_DOC)
    ] = None,
    metadata_q: Annotated[
        MetadataPolicy | None,
        Query(
            alias="metadata",
            description="strip (default): no metadata; keep: EXIF without location; "
            "keep-all: EXIF with location",
        ),
    ] = None,
    metadata_f: Annotated[MetadataPolicy | None, Form(alias="metadata")] = None,
) -> EnhanceOptions:
    """Options as query parameters or form fields; a form field wins when both are given.
    async without awaiting: a plain def dependency would cost a thread hop per request."""
    return EnhanceOptions(
        mask=mask_f if mask_f is not None else bool(mask_q),
        format=format_f or format_q or "auto",
        quality=quality_f if quality_f is not None else quality_q,
        metadata=metadata_f or metadata_q or "strip",
        strength=_first(strength_f, strength_q, 1.0),
    )


def _first(*values: float | None) -> float:
    return next(v for v in values if v is not None)


OptionsDep = Annotated[EnhanceOptions, Depends(enhance_options)]


async def read_upload(request: Request, upload: UploadFile | None) -> bytes:
    """The photo from the multipart field ``image``, or from a raw ``image/*`` body. Its size was
    bounded while it arrived (upload_guard.py), so it is read whole here."""
    if upload is not None:
        return await upload.read()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in RAW_BODY_TYPES:
        raise MissingImage(
            "send the photo as the multipart field 'image', or as the body with an image/* type"
        )
    return await request.body()


def raw_body_openapi() -> dict[str, Any]:
    """Document the raw-body alternative beside the multipart form FastAPI describes."""
    return {"requestBody": {"content": {t: BINARY for t in sorted(RAW_BODY_TYPES)}}}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": Problem, "content": {"application/problem+json": {}}}
        for status in statuses
    }


BINARY = {"schema": {"type": "string", "format": "binary"}}
IMAGE_CONTENT = {
    "image/png": BINARY,
    "image/jpeg": BINARY,
    "image/webp": BINARY,
    "image/avif": BINARY,
}
