"""The FastAPI app factory. Clients live for the app's lifespan; nothing connects at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from service import __version__
from service.api import problems
from service.api.deps import Services
from service.api.middleware import (
    MetricsMiddleware,
    RequestIdMiddleware,
    SecurityHeadersMiddleware,
)
from service.api.routes import enhance, health, jobs, web
from service.api.upload_guard import UploadGuard
from service.config import Settings, get_settings
from service.errors import UnavailableError
from service.inference import TritonModel
from service.queue.streams import JobQueue, connect
from service.queue.waiter import ResultWaiter

log = logging.getLogger(__name__)

UPLOAD_PATHS = frozenset({"/enhance", "/v1/enhance", "/v1/jobs"})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = connect(settings)
        queue = JobQueue(redis, settings)
        waiter = ResultWaiter(redis, queue.keys)
        model = TritonModel(settings)
        try:
            await queue.ensure_group()
        except (
            UnavailableError
        ) as exc:  # workers create it too; requests answer 503 until Redis is up
            log.warning("Redis not reachable at start-up: %s", exc.detail)
        await waiter.start()
        app.state.services = Services(settings, queue, waiter, model)
        try:
            yield
        finally:
            await waiter.stop()
            await model.close()
            await redis.aclose()

    app = FastAPI(
        title="sllen-service",
        version=__version__,
        summary="Makes dark photos readable: low-light enhancement plus a segmentation mask.",
        lifespan=lifespan,
        # /docs is served by routes/web.py from local files; ReDoc would need a CDN
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    problems.install(app)
    app.include_router(enhance.router)
    app.include_router(jobs.router)
    app.include_router(health.router)
    app.include_router(web.router)
    app.mount("/static/swagger-ui", web.swagger_ui_files(), name="swagger-ui")
    app.mount("/static", web.static_files(), name="static")
    # Outermost last: request ids wrap everything, so even a refused body gets one.
    app.add_middleware(UploadGuard, settings=settings, paths=UPLOAD_PATHS)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    app.add_middleware(RequestIdMiddleware)
    return app
