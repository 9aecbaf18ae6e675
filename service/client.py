"""A Python client for sllen-service, sync and async, with retries that honour ``Retry-After``.

    from service.client import SllenClient
    with SllenClient("http://127.0.0.1:8000", api_key=None) as client:
        result = client.enhance(Path("dark.jpg"), mask=True)
        Path("bright.png").write_bytes(result.image)

Transient answers (429, 502, 503, 504 and connection errors) are retried with exponential backoff
and jitter; a ``Retry-After`` header, when present, sets the wait. Every upload carries an
``Idempotency-Key`` (a new UUID per call unless one is given), the same on each of its retries, so
a retry whose first answer was lost returns the first job instead of running the model twice.
Other errors raise ``SllenError`` carrying the server's problem+json. Only httpx is imported: the
client does not need the server.
"""

from __future__ import annotations

import asyncio
import base64
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

RETRY_STATUSES = frozenset({429, 502, 503, 504})
Photo = bytes | Path


class SllenError(Exception):
    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        super().__init__(f"{status} {problem.get('code', '')}: {problem.get('detail', '')}")
        self.status = status
        self.problem = problem


@dataclass(frozen=True)
class EnhanceResult:
    image: bytes
    content_type: str
    width: int = 0
    height: int = 0
    mask: bytes | None = None
    model: dict[str, str] = field(default_factory=dict)
    timing_ms: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0

    def delay_s(self, attempt: int, response: httpx.Response | None) -> float | None:
        """Seconds to wait before retry ``attempt`` (1-based), or None to give up."""
        if attempt >= self.attempts:
            return None
        if response is not None:
            if response.status_code not in RETRY_STATUSES:
                return None
            header = response.headers.get("retry-after", "")
            if header.isdigit():
                return min(float(header), self.backoff_max_s)
        ceiling = min(self.backoff_max_s, self.backoff_s * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


@dataclass(frozen=True)
class Options:
    """What to ask for: ``format`` auto (the upload's own family) or png, jpeg, webp, avif;
    ``strength`` from 0 (the photo as sent) to 1 (the model's output)."""

    mask: bool = False
    format: str = "auto"
    quality: int | None = None
    metadata: str = "strip"
    strength: float = 1.0


def _upload(photo: Photo, options: Options, idempotency_key: str | None) -> dict[str, Any]:
    """The request arguments shared by every upload: options as query, photo as multipart, and
    the key that makes a retry of this call the same request."""
    params = {
        "mask": "true" if options.mask else "false",
        "format": options.format,
        "metadata": options.metadata,
        "strength": f"{options.strength:g}",
    }
    if options.quality is not None:
        params["quality"] = str(options.quality)
    data = photo.read_bytes() if isinstance(photo, Path) else photo
    return {
        "params": params,
        "files": {"image": ("photo", data)},
        "headers": {"Idempotency-Key": idempotency_key or str(uuid.uuid4())},
    }


def _raise_for_problem(response: httpx.Response) -> None:
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {"detail": response.text[:500]}
        raise SllenError(response.status_code, problem)


def _parse_enhance(response: httpx.Response, mask: bool) -> EnhanceResult:
    _raise_for_problem(response)
    if not mask:
        return EnhanceResult(response.content, response.headers.get("content-type", ""))
    body = response.json()
    return EnhanceResult(
        image=base64.b64decode(body["image"]["data"]),
        content_type=body["image"]["content_type"],
        width=body["width"],
        height=body["height"],
        mask=base64.b64decode(body["mask"]["data"]),
        model=body["model"],
        timing_ms=body["timing_ms"],
    )


def _headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


class SllenClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(
            base_url=base_url, headers=_headers(api_key), timeout=timeout_s, transport=transport
        )

    def __enter__(self) -> SllenClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            response: httpx.Response | None = None
            try:
                response = self._http.request(method, url, **kwargs)
                if response.status_code not in RETRY_STATUSES:
                    return response
            except httpx.TransportError:
                if attempt >= self.retry.attempts:
                    raise
            delay = self.retry.delay_s(attempt, response)
            if delay is None:
                assert response is not None
                return response
            time.sleep(delay)

    def enhance(
        self,
        photo: Photo,
        *,
        mask: bool = False,
        format: str = "auto",
        quality: int | None = None,
        metadata: str = "strip",
        strength: float = 1.0,
        idempotency_key: str | None = None,
    ) -> EnhanceResult:
        options = Options(mask, format, quality, metadata, strength)
        response = self._send("POST", "/v1/enhance", **_upload(photo, options, idempotency_key))
        return _parse_enhance(response, mask)

    def submit(
        self,
        photo: Photo,
        *,
        mask: bool = False,
        format: str = "auto",
        quality: int | None = None,
        metadata: str = "strip",
        strength: float = 1.0,
        idempotency_key: str | None = None,
    ) -> str:
        """Queue an async job; returns its id (the first job's, for a key used before)."""
        options = Options(mask, format, quality, metadata, strength)
        response = self._send("POST", "/v1/jobs", **_upload(photo, options, idempotency_key))
        _raise_for_problem(response)
        return str(response.json()["id"])

    def wait(self, job_id: str, *, poll_s: float = 0.5, timeout_s: float = 600.0) -> EnhanceResult:
        deadline = time.monotonic() + timeout_s
        while True:
            status = self._send("GET", f"/v1/jobs/{job_id}")
            _raise_for_problem(status)
            body = status.json()
            if body["status"] == "failed":
                raise SllenError(body["error"]["status"], body["error"])
            if body["status"] == "done":
                return self._fetch(body)
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {body['status']} after {timeout_s}s")
            time.sleep(poll_s)

    def _fetch(self, body: dict[str, Any]) -> EnhanceResult:
        image = self._send("GET", body["image_url"])
        _raise_for_problem(image)
        mask = None
        if body.get("mask_url"):
            mask_response = self._send("GET", body["mask_url"])
            _raise_for_problem(mask_response)
            mask = mask_response.content
        return EnhanceResult(
            image.content,
            image.headers.get("content-type", ""),
            body["width"],
            body["height"],
            mask,
            body.get("model") or {},
            body.get("timing_ms") or {},
        )


class AsyncSllenClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=_headers(api_key), timeout=timeout_s, transport=transport
        )

    async def __aenter__(self) -> AsyncSllenClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            response: httpx.Response | None = None
            try:
                response = await self._http.request(method, url, **kwargs)
                if response.status_code not in RETRY_STATUSES:
                    return response
            except httpx.TransportError:
                if attempt >= self.retry.attempts:
                    raise
            delay = self.retry.delay_s(attempt, response)
            if delay is None:
                assert response is not None
                return response
            await asyncio.sleep(delay)

    async def enhance(
        self,
        photo: Photo,
        *,
        mask: bool = False,
        format: str = "auto",
        quality: int | None = None,
        metadata: str = "strip",
        strength: float = 1.0,
        idempotency_key: str | None = None,
    ) -> EnhanceResult:
        options = Options(mask, format, quality, metadata, strength)
        response = await self._send(
            "POST", "/v1/enhance", **_upload(photo, options, idempotency_key)
        )
        return _parse_enhance(response, mask)
