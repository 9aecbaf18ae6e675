"""The job that travels through the stream and the result that comes back.

Jobs are JSON (small, readable in redis-cli); results are msgpack because they carry image bytes.
Never pickle: a worker must not execute what it reads from Redis.
"""

from __future__ import annotations

import secrets
import time
from typing import Literal

import msgpack
from pydantic import BaseModel, ConfigDict, Field

from service.imaging import MetadataPolicy, OutputFormat, RequestedFormat


def new_job_id() -> str:
    """128 random bits, URL-safe: job ids double as capabilities, so they must be unguessable."""
    return secrets.token_urlsafe(16)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class EnhanceOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mask: bool = False
    format: RequestedFormat = "auto"
    quality: int | None = Field(None, ge=1, le=100)
    metadata: MetadataPolicy = "strip"
    strength: float = Field(1.0, ge=0.0, le=1.0)


class Job(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: str
    reply_to: str
    options: EnhanceOptions
    width: int
    height: int
    enqueued_at_ms: int
    deadline_at_ms: int
    # The answer's format, resolved by the gateway from the options and the upload's type.
    output_format: OutputFormat | None = None
    # Sent with an Idempotency-Key: a sync job's result then stays for SLLEN_RESULT_TTL_S, not
    # SLLEN_SYNC_RESULT_TTL_S, so a retry whose first answer was lost still finds it.
    replayable: bool = False

    @property
    def answer_format(self) -> OutputFormat:
        """``output_format``; for a job queued without one, the format its options named."""
        if self.output_format is not None:
            return self.output_format
        return "png" if self.options.format == "auto" else self.options.format

    def expired(self, at_ms: int | None = None) -> bool:
        return (at_ms if at_ms is not None else now_ms()) >= self.deadline_at_ms


class JobRecord(BaseModel):
    """What the gateway keeps about an async job until its result expires."""

    model_config = ConfigDict(frozen=True)

    id: str
    options: EnhanceOptions
    width: int
    height: int
    created_at_ms: int
    owner: str | None = None


class JobResult(BaseModel):
    """Exactly one of these is written per job id (SET NX): the first answer wins."""

    model_config = ConfigDict(frozen=True)

    id: str
    status: Literal["done", "failed"]
    error_code: str | None = None
    error_detail: str | None = None
    image: bytes | None = None
    image_content_type: str | None = None
    mask: bytes | None = None
    width: int = 0
    height: int = 0
    model_name: str = ""
    model_version: str = ""
    queue_ms: float = 0.0
    inference_ms: float = 0.0
    worker: str = ""

    def pack(self) -> bytes:
        packed: bytes = msgpack.packb(self.model_dump(), use_bin_type=True)
        return packed

    @classmethod
    def unpack(cls, data: bytes) -> JobResult:
        return cls.model_validate(msgpack.unpackb(data, raw=False))

    @classmethod
    def failure(cls, job_id: str, code: str, detail: str, worker: str = "") -> JobResult:
        return cls(id=job_id, status="failed", error_code=code, error_detail=detail, worker=worker)
