"""POST /enhance (and /v1/enhance): a photo in, the enhanced photo (and mask) out."""

from __future__ import annotations

import base64
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from service.api import submit
from service.api.access import PrincipalDep
from service.api.deps import ServicesDep
from service.api.idempotency import REPLAY_DOC, REPLAYED_HEADER, IdempotencyKey, claim
from service.api.schemas import EnhanceWithMask
from service.api.uploads import (
    IMAGE_CONTENT,
    ImageFile,
    OptionsDep,
    problem_responses,
    raw_body_openapi,
    read_upload,
)
from service.labels import CLASSES
from service.queue.jobs import EnhanceOptions, JobResult

router = APIRouter(tags=["enhance"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": EnhanceWithMask,
        "content": IMAGE_CONTENT,
        "description": "The enhanced image; JSON with the mask when mask=true.",
    },
    **problem_responses(400, 401, 413, 415, 422, 429, 500, 503, 504),
}


def _render(result: JobResult, options: EnhanceOptions, started: float, replayed: bool) -> Response:
    headers = {REPLAYED_HEADER: "true"} if replayed else None
    if not options.mask:
        return Response(result.image or b"", media_type=result.image_content_type, headers=headers)
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
    return JSONResponse(body.model_dump(), headers=headers)


@router.post(
    "/enhance",
    responses=_RESPONSES,
    response_class=Response,
    summary="Enhance a photo",
    description=REPLAY_DOC,
    openapi_extra=raw_body_openapi(),
)
@router.post(
    "/v1/enhance",
    responses=_RESPONSES,
    response_class=Response,
    summary="Enhance a photo (v1)",
    description=REPLAY_DOC,
    openapi_extra=raw_body_openapi(),
)
async def enhance(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    options: OptionsDep,
    idempotency_key: IdempotencyKey = None,
    image: ImageFile = None,
) -> Response:
    started = time.perf_counter()
    data = await read_upload(request, image)

    async def client_gone() -> None:
        # The body is consumed: the next ASGI message is the disconnect, if the client leaves.
        while (await request.receive())["type"] != "http.disconnect":
            pass

    once = await claim(services.queue.keys, idempotency_key, principal, "enhance", options, data)
    result, replayed = await submit.enhance(data, options, services, started, client_gone, once)
    return _render(result, options, started, replayed)
