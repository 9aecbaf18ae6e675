"""RFC 9457 problem details: the one place where errors become HTTP statuses."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import metrics
from service.errors import (
    BodyTooSlow,
    Cancelled,
    DeadlineExceeded,
    InvalidOptions,
    JobFailed,
    JobNotDone,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServiceError,
    Unauthorized,
    UnavailableError,
    UndecodableImage,
    UnsupportedMediaType,
)

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://sllen.dev/problems/"

_STATUS: list[tuple[type[ServiceError], int, str]] = [
    (UnsupportedMediaType, 415, "Unsupported media type"),
    (UndecodableImage, 400, "Image does not decode"),
    (PayloadTooLarge, 413, "Payload too large"),
    (BodyTooSlow, 408, "Request timeout"),
    (InvalidOptions, 422, "Invalid options"),
    (Unauthorized, 401, "Unauthorized"),
    (RateLimited, 429, "Too many requests"),
    (NotFound, 404, "Not found"),
    (JobNotDone, 409, "Job not done"),
    (UnavailableError, 503, "Service unavailable"),
    (DeadlineExceeded, 504, "Deadline exceeded"),
    # nginx's "client closed request": nobody reads it, but logs and metrics should say so
    (Cancelled, 499, "Client closed request"),
    (JobFailed, 500, "Processing failed"),
]


def status_for(exc: ServiceError) -> tuple[int, str]:
    for cls, status, title in _STATUS:
        if isinstance(exc, cls):
            return status, title
    return 500, "Internal error"


def problem_response(
    status: int,
    title: str,
    detail: str,
    code: str,
    request: Request | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code.replace("_", "-"),
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    if request is not None:
        body["instance"] = request.url.path
        body["request_id"] = getattr(request.state, "request_id", None)
    body.update(extra or {})
    metrics.ERRORS.labels(code).inc()
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def error_response(
    exc: ServiceError, request: Request, headers: dict[str, str] | None = None
) -> JSONResponse:
    status, title = status_for(exc)
    headers = dict(headers or {})
    if isinstance(exc, UnavailableError | RateLimited):
        headers["Retry-After"] = str(exc.retry_after_s or request.app.state.settings.retry_after_s)
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="sllen"'
    if status >= 500:
        log.warning(
            "%s %s -> %d %s: %s", request.method, request.url.path, status, exc.code, exc.detail
        )
    return problem_response(status, title, exc.detail, exc.code, request, headers)


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc, request)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": list(e.get("loc", ())),
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "")),
        }
        for e in exc.errors()
    ]
    return problem_response(
        422,
        "Invalid request",
        "the request's fields or options are not valid",
        InvalidOptions.code,
        request,
        extra={"errors": errors},
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return problem_response(
        exc.status_code, str(exc.detail), str(exc.detail), code, request, dict(exc.headers or {})
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
