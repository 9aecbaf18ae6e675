"""The gateway's HTTP/1.1 connection: uvicorn's httptools protocol plus what it lacks.

uvicorn bounds idle keep-alive time but not how long a request's head may take to arrive, nor
its size; a client sending a byte every few seconds holds a connection forever. This protocol
closes a connection whose head is not complete ``header_timeout_s`` after its first byte (408)
or that passes ``max_header_bytes`` (431). When an answer goes out before the request's body
was read (an early 401, 413, 429 or 503 with ``Connection: close``), it closes gracefully: the
answer, then FIN, then whatever the client still sends is dropped for ``linger_s`` at most, so
a client busy sending its body reads the answer instead of a connection reset.
Bodies are paced per route, where their rate is known (``service/api/upload_guard.py``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from service import metrics
from service.api.problems import PROBLEM_JSON, TYPE_BASE
from service.config import get_settings


def _problem_bytes(status: int, title: str, detail: str, code: str) -> bytes:
    body = json.dumps(
        {
            "type": TYPE_BASE + code.replace("_", "-"),
            "title": title,
            "status": status,
            "detail": detail,
            "code": code,
        }
    ).encode()
    head = (
        f"content-type: {PROBLEM_JSON}\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return STATUS_LINE[status] + head.encode() + body


class _LingeringTransport:
    """The transport a request's response is written to: its close() lingers when the
    request's body is still arriving, and closes at once otherwise."""

    def __init__(self, protocol: GuardedHttpToolsProtocol, transport: asyncio.Transport) -> None:
        self._protocol = protocol
        self._transport = transport

    def close(self) -> None:
        self._protocol.close_after_response()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self.header_timeout_s = settings.header_timeout_s
        self.max_header_bytes = settings.max_header_bytes
        self.linger_s = settings.linger_s
        self._head_timer: asyncio.TimerHandle | None = None
        self._in_head = False
        self._head_bytes = 0
        self._refused = False
        self._lingering = False

    # --- the request head: a deadline from its first byte, and a size bound
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_head()  # a client that connects and says nothing is closed too

    def _start_head(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _end_head(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if not self._in_head or self._refused:
            return
        if self._busy():  # a pipelined head waits for the response before it; so may we
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)
        else:
            self._refuse(
                "header_timeout",
                408,
                "Request timeout",
                f"the request head did not arrive within {self.header_timeout_s:g} s",
            )

    def _busy(self) -> bool:
        """A response is still being produced (the next, pipelined head may wait for it)."""
        return self.cycle is not None and not self.cycle.response_complete

    def _refuse(self, reason: str, status: int, title: str, detail: str) -> None:
        self._refused = True
        self._end_head()
        metrics.CONNECTIONS_REFUSED.labels(reason).inc()
        if not self.transport.is_closing():
            self.transport.write(_problem_bytes(status, title, detail, reason))
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the rest of a refused body: dropped unparsed
        if self._refused:
            return
        super().data_received(data)
        if self._in_head and not self._refused:
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self._too_large()

    def _too_large(self) -> None:
        self._refuse(
            "header_too_large",
            431,
            "Request header fields too large",
            f"the request line and headers exceed {self.max_header_bytes} bytes",
        )

    def on_message_begin(self) -> None:
        if self._refused:
            return
        super().on_message_begin()
        self._start_head()

    def on_url(self, url: bytes) -> None:
        if not self._refused:
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._refused:
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
        if size > self.max_header_bytes:
            self._too_large()
            return
        self._end_head()
        real = self.transport
        self.transport = _LingeringTransport(self, real)  # type: ignore[assignment]
        try:  # the cycle created here keeps the lingering transport
            super().on_headers_complete()
        finally:
            self.transport = real

    def on_body(self, body: bytes) -> None:
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            super().on_message_complete()

    # --- closing after a response
    def close_after_response(self) -> None:
        transport = self.transport
        if transport.is_closing():
            return
        body_pending = self.cycle is not None and self.cycle.more_body
        if not body_pending or self.linger_s <= 0 or not transport.can_write_eof():
            transport.close()
            return
        self._lingering = True
        self._end_head()
        transport.write_eof()
        self.flow.resume_reading()
        self.loop.call_later(self.linger_s, transport.close)

    def eof_received(self) -> None:
        if self._lingering:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end_head()
        super().connection_lost(exc)
