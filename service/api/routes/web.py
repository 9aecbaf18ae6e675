"""The web page at /, the API docs at /docs and their static files (no CDN: everything they need
is served from here; Swagger UI 5 from the pinned fastapi-offline package's files)."""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parent.parent.parent / "web"
# Only its static files are used: its own /docs page initialises Swagger UI inline, which the
# page's Content-Security-Policy forbids; web/docs.js does that from a file instead.
SWAGGER_UI_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"

router = APIRouter(include_in_schema=False)


@router.api_route("/", methods=["GET", "HEAD"])
async def index() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html")


@router.api_route("/docs", methods=["GET", "HEAD"])
async def docs() -> FileResponse:
    return FileResponse(WEB_DIR / "docs.html", media_type="text/html")


def static_files() -> StaticFiles:
    return StaticFiles(directory=WEB_DIR)


def swagger_ui_files() -> StaticFiles:
    return StaticFiles(directory=SWAGGER_UI_DIR)
