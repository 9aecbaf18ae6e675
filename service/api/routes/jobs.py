"""Async jobs: POST /v1/jobs queues a photo; GET /v1/jobs/{id} (and /image, /mask) read the outcome.

Job ids are 128 random bits: knowing one is the capability to read the job. Results are kept for
``SLLEN_RESULT_TTL_S``, after which the job is gone (404).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from service.api import submit
from service.api.access import PrincipalDep
from service.api.deps import ServicesDep
from service.api.idempotency import REPLAY_DOC, REPLAYED_HEADER, IdempotencyKey, claim
from service.api.problems import status_for
from service.api.schemas import ModelInfo
from service.api.uploads import (
    IMAGE_CONTENT,
    ImageFile,
    OptionsDep,
    problem_responses,
    raw_body_openapi,
    read_upload,
)
from service.errors import JobNotDone, NotFound, error_from_code
from service.queue.jobs import EnhanceOptions, JobRecord, JobResult

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

JobId = Path(description="the id POST /v1/jobs returned", min_length=8, max_length=64)


class JobAccepted(BaseModel):
    id: str
    status: Literal["queued"] = "queued"
    status_url: str


class JobError(BaseModel):
    status: int
    code: str
    detail: str


class JobTiming(BaseModel):
    queue: float
    inference: float


class JobStatus(BaseModel):
    id: str
    status: Literal["queued", "running", "done", "failed"]
    created_at: datetime
    width: int
    height: int
    options: EnhanceOptions
    image_url: str | None = Field(None, description="set once done")
    mask_url: str | None = Field(None, description="set once done, if a mask was asked for")
    model: ModelInfo | None = None
    timing_ms: JobTiming | None = None
    error: JobError | None = None


@router.post(
    "",
    status_code=202,
    response_model=JobAccepted,
    responses=problem_responses(400, 401, 413, 415, 422, 429, 503),
    summary="Queue a photo for enhancement",
    description=REPLAY_DOC,
    openapi_extra=raw_body_openapi(),
)
async def create_job(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    options: OptionsDep,
    idempotency_key: IdempotencyKey = None,
    image: ImageFile = None,
) -> JSONResponse:
    data = await read_upload(request, image)
    once = await claim(services.queue.keys, idempotency_key, principal, "jobs", options, data)
    record, replayed = await submit.submit_job(data, options, services, principal, once)
    url = str(request.url_for("get_job", job_id=record.id).path)
    body = JobAccepted(id=record.id, status_url=url)
    headers = {"Location": url} | ({REPLAYED_HEADER: "true"} if replayed else {})
    return JSONResponse(body.model_dump(), status_code=202, headers=headers)


async def _load(
    services: ServicesDep, principal: str | None, job_id: str
) -> tuple[JobRecord, JobResult | None]:
    record = await services.queue.get_record(job_id)
    # Another key's job answers exactly like a missing one: ids must not be probeable.
    if record is None or record.owner != principal:
        raise NotFound("no such job (or its result has expired)")
    return record, await services.queue.get_result(job_id)


def _status(request: Request, record: JobRecord, result: JobResult | None, state: str) -> JobStatus:
    body: dict[str, Any] = {
        "id": record.id,
        "status": result.status if result else ("running" if state == "running" else "queued"),
        "created_at": datetime.fromtimestamp(record.created_at_ms / 1000, tz=UTC),
        "width": record.width,
        "height": record.height,
        "options": record.options,
    }
    if result and result.status == "done":
        body["image_url"] = str(request.url_for("get_job_image", job_id=record.id).path)
        if record.options.mask:
            body["mask_url"] = str(request.url_for("get_job_mask", job_id=record.id).path)
        body["model"] = ModelInfo(name=result.model_name, version=result.model_version)
        body["timing_ms"] = JobTiming(queue=result.queue_ms, inference=result.inference_ms)
    elif result:
        exc = error_from_code(result.error_code or "job_failed", result.error_detail or "")
        body["error"] = JobError(status=status_for(exc)[0], code=exc.code, detail=exc.detail)
    return JobStatus.model_validate(body)


@router.get(
    "/{job_id}", response_model=JobStatus, responses=problem_responses(401, 404, 422, 429, 503)
)
async def get_job(
    request: Request, services: ServicesDep, principal: PrincipalDep, job_id: str = JobId
) -> JobStatus:
    record, result = await _load(services, principal, job_id)
    state = "" if result else (await services.queue.get_state(job_id) or "")
    return _status(request, record, result, state)


async def _finished(
    services: ServicesDep, principal: str | None, job_id: str
) -> tuple[JobRecord, JobResult]:
    record, result = await _load(services, principal, job_id)
    if result is None:
        raise JobNotDone("the job has not finished yet; poll its status_url")
    if result.status != "done":
        raise error_from_code(result.error_code or "job_failed", result.error_detail or "")
    return record, result


@router.get(
    "/{job_id}/image",
    response_class=Response,
    responses={200: {"content": IMAGE_CONTENT}, **problem_responses(401, 404, 409, 422, 429, 503)},
)
async def get_job_image(
    services: ServicesDep, principal: PrincipalDep, job_id: str = JobId
) -> Response:
    _, result = await _finished(services, principal, job_id)
    return Response(result.image or b"", media_type=result.image_content_type)


@router.get(
    "/{job_id}/mask",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
        **problem_responses(401, 404, 409, 422, 429, 503),
    },
)
async def get_job_mask(
    services: ServicesDep, principal: PrincipalDep, job_id: str = JobId
) -> Response:
    record, result = await _finished(services, principal, job_id)
    if not record.options.mask or result.mask is None:
        raise NotFound("this job was created without mask=true")
    return Response(result.mask, media_type="image/png")
