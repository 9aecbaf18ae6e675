"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from service.api.deps import ServicesDep
from service.api.schemas import Health

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health, summary="The process is alive")
async def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health}},
    summary="Redis answers and Triton reports the model ready",
)
async def readyz(services: ServicesDep) -> JSONResponse:
    checks = {"redis": await services.queue.ping(), "triton": await services.model.is_ready()}
    ready = all(checks.values())
    body = Health(status="ready" if ready else "unavailable", checks=checks)
    headers = {} if ready else {"Retry-After": str(services.settings.retry_after_s)}
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503, headers=headers)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics_endpoint(services: ServicesDep) -> Response:
    registry = REGISTRY
    if services.settings.gateway_processes > 1:  # each uvicorn process writes its own files
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


# HEAD too (load balancers and uptime checks use it), kept out of the schema: one operation each.
router.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/readyz", readyz, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/metrics", metrics_endpoint, methods=["HEAD"], include_in_schema=False)
