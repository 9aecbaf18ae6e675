"""What an upload route checks before and while its body arrives, in one ASGI wrapper.

Before the body: the declared length (413), the API key and its rate limit (401/429), and the
in-flight bound (503), each answered from the headers alone, so a refused client's body is never
read (a client that sent ``Expect: 100-continue`` never sends it).
While the body arrives: its size, the one place the byte limit is enforced (413); its pace, at
least ``body_min_rate_bytes_per_s`` after ``body_timeout_s`` (408); and how many bodies are slow
(still arriving after ``slow_body_after_s``: at most ``max_slow_bodies``, else 503). A request
counts against ``max_inflight_requests`` only once its body is complete, so clients that trickle
their bodies cannot fill it. A client that leaves mid-body is a 499 in the metrics, not a 500.

Its answers carry their route's label in the metrics, though given before routing.
An answer sent before the body was read says ``Connection: close``; the connection protocol then
closes gracefully (``service/api/connection.py``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.access import PRINCIPAL_STATE, check_access
from service.api.deps import Services
from service.api.middleware import ROUTE_TEMPLATE
from service.api.problems import error_response
from service.config import Settings
from service.errors import (
    BodyTooSlow,
    ClientDisconnected,
    Overloaded,
    PayloadTooLarge,
    ServiceError,
)
from service.metrics import INFLIGHT

# Room for the multipart envelope and the option fields around the image itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024


class _Refused(BaseException):
    """Unwinds the route once the guard has answered. A BaseException, like CancelledError, so
    no framework ``except Exception`` turns it into an answer of its own (FastAPI's 400)."""


@dataclass
class Occupancy:
    """Uploads of one gateway process being served, and those whose body is slow."""

    inflight: int = 0
    slow_bodies: int = 0


def body_limit(settings: Settings, headers: Headers) -> int:
    multipart = headers.get("content-type", "").lower().startswith("multipart/")
    return settings.max_upload_bytes + (MULTIPART_OVERHEAD_BYTES if multipart else 0)


class UploadGuard:
    def __init__(self, app: ASGIApp, settings: Settings, paths: frozenset[str]) -> None:
        self.app = app
        self.settings = settings
        self.paths = paths
        self.occupancy = Occupancy()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        scope[ROUTE_TEMPLATE] = scope["path"]  # these paths are their routes' templates
        headers = Headers(scope=scope)
        services: Services = scope["app"].state.services
        limit = body_limit(self.settings, headers)
        try:
            declared = headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise PayloadTooLarge(f"the request body exceeds {limit} bytes")
            scope.setdefault("state", {})[PRINCIPAL_STATE] = await check_access(headers, services)
            if self.occupancy.inflight >= self.settings.max_inflight_requests:
                raise Overloaded("too many requests in flight; retry later")
        except ServiceError as exc:
            await _answer(exc, scope, receive, send)
            return
        body = _PacedBody(self.settings, self.occupancy, scope, receive, send, limit)
        try:
            await self.app(scope, body.receive, body.send)
        except _Refused:
            pass
        except Exception:
            if body.refusal is None:
                raise
        finally:
            body.release()


async def _answer(exc: ServiceError, scope: Scope, receive: Receive, send: Send) -> None:
    response = error_response(exc, Request(scope), {"Connection": "close"})
    await response(scope, receive, send)


class _PacedBody:
    """The route's receive and send for one request: the body's size and pace are checked as
    it arrives, and once the guard has answered, the route's own answer is dropped."""

    def __init__(
        self,
        settings: Settings,
        occupancy: Occupancy,
        scope: Scope,
        receive: Receive,
        send: Send,
        limit: int,
    ) -> None:
        self.settings = settings
        self.occupancy = occupancy
        self.scope = scope
        self._receive = receive
        self._send = send
        self.limit = limit
        self.started = time.monotonic()
        self.received = 0
        self.complete = False
        self.slow = False
        self.inflight = False
        self.responded = False
        self.refusal: ServiceError | None = None

    async def receive(self) -> Message:
        if self.complete:  # after the body, only the disconnect is left to wait for
            return await self._receive()
        s = self.settings
        while True:
            deadline = self.started + s.body_timeout_s + self.received / s.body_min_rate_bytes_per_s
            wake = deadline if self.slow else min(deadline, self.started + s.slow_body_after_s)
            try:
                message = await asyncio.wait_for(self._receive(), wake - time.monotonic())
            except TimeoutError:
                if time.monotonic() >= deadline:
                    await self._refuse(BodyTooSlow(self._too_slow()))
                await self._mark_slow_or_refuse()
                continue
            return await self._count(message)

    def _too_slow(self) -> str:
        s = self.settings
        return (
            f"the body arrived slower than {s.body_min_rate_bytes_per_s} bytes/s "
            f"after {s.body_timeout_s:g} s"
        )

    async def _count(self, message: Message) -> Message:
        if message["type"] == "http.disconnect":
            await self._refuse(ClientDisconnected("the client left while sending its body"))
        self.received += len(message.get("body", b""))
        if self.received > self.limit:
            await self._refuse(PayloadTooLarge(f"the request body exceeds {self.limit} bytes"))
        if message.get("more_body", False):
            if time.monotonic() - self.started >= self.settings.slow_body_after_s:
                await self._mark_slow_or_refuse()
            return message
        self.complete = True
        self._release_slow()
        if self.occupancy.inflight >= self.settings.max_inflight_requests:
            await self._refuse(Overloaded("too many requests in flight; retry later"))
        self.occupancy.inflight += 1
        self.inflight = True
        INFLIGHT.inc()
        return message

    async def _mark_slow_or_refuse(self) -> None:
        if self.slow:
            return
        if self.occupancy.slow_bodies >= self.settings.max_slow_bodies:
            await self._refuse(Overloaded("too many slow uploads; retry later"))
        self.occupancy.slow_bodies += 1
        self.slow = True

    def _release_slow(self) -> None:
        if self.slow:
            self.slow = False
            self.occupancy.slow_bodies -= 1

    def release(self) -> None:
        self._release_slow()
        if self.inflight:
            self.inflight = False
            self.occupancy.inflight -= 1
            INFLIGHT.dec()

    async def _refuse(self, exc: ServiceError) -> None:
        self.refusal = exc
        self._release_slow()
        if not self.responded:
            self.responded = True
            await _answer(exc, self.scope, self._receive, self._send)
        raise _Refused

    async def send(self, message: Message) -> None:
        if self.refusal is not None:
            return
        if message["type"] == "http.response.start":
            self.responded = True
            if not self.complete:  # answered before the body was read: do not wait for it
                MutableHeaders(scope=message)["Connection"] = "close"
        await self._send(message)
