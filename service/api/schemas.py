"""Typed response bodies (they are also the OpenAPI schema clients generate code from)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class EncodedImage(BaseModel):
    content_type: str = Field(examples=["image/png"])
    data: str = Field(description="base64 of the encoded image")


class ClassInfo(BaseModel):
    id: int
    name: str
    color: tuple[int, int, int] = Field(description="display colour, RGB")


class ModelInfo(BaseModel):
    name: str
    version: str


class Timing(BaseModel):
    queue: float = Field(description="ms between enqueue and a worker taking the job")
    inference: float = Field(description="ms of the Triton call for the job's batch")
    total: float = Field(description="ms from the request's arrival to the response")


class EnhanceWithMask(BaseModel):
    width: int
    height: int
    image: EncodedImage
    mask: EncodedImage = Field(description="8-bit PNG; each pixel value is a class id")
    classes: list[ClassInfo]
    model: ModelInfo
    timing_ms: Timing


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    request_id: str | None = None


class Health(BaseModel):
    status: str
    checks: dict[str, bool] = Field(default_factory=dict)
