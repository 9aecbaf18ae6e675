"""Small HTTP matters through the real gateway: HEAD on the read-only pages, a bound on header
size, a client that aborts its raw upload (a 499, not a 500 and a traceback), and a Retry-After
that a client can wait exactly."""

from __future__ import annotations

import contextlib
import socket
import time

import httpx
import pytest

from service.api.access import hash_key
from testkit.images import dark_scene, encode
from testkit.prometheus import metric_value
from testkit.stack import Stack
from tests.integration.conftest import StackFactory

PNG = encode(dark_scene(32, 32), "PNG")


@pytest.mark.parametrize("path", ["/", "/healthz", "/readyz", "/metrics", "/docs"])
def test_head_works_where_get_does(stack: Stack, path: str) -> None:
    get = stack.client.get(path)
    head = stack.client.head(path)
    assert head.status_code == get.status_code == 200
    assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]


def test_header_size_is_bounded(stack: Stack) -> None:
    limit = stack.settings.max_header_bytes
    assert stack.client.get("/healthz", headers={"x-pad": "a" * (limit // 2)}).status_code == 200
    for size in (limit + 1024, 1024 * 1024):
        with httpx.Client(base_url=stack.url, timeout=30) as client:  # it is closed after
            r = client.get("/healthz", headers={"x-pad": "a" * size})
        assert r.status_code == 431 and r.json()["code"] == "header_too_large"


def test_a_head_trickled_past_the_size_bound_is_431(stack: Stack) -> None:
    limit = stack.settings.max_header_bytes
    with socket.create_connection(("127.0.0.1", stack.settings.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ")
        sent = 0
        sock.settimeout(0.05)
        answer = b""
        while sent < 2 * limit and not answer:
            try:
                sock.sendall(b"a" * 4096)
            except OSError:  # closed after its answer: read that
                break
            sent += 4096
            with contextlib.suppress(TimeoutError):
                answer = sock.recv(65536)
        if not answer:
            sock.settimeout(5)
            answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_an_aborted_raw_upload_is_a_499_without_traceback(stack_factory: StackFactory) -> None:
    s = stack_factory()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", s.settings.port)) as sock:
            sock.sendall(
                b"POST /enhance HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                b"Content-Length: 500000\r\n\r\n" + PNG[:200]
            )
            time.sleep(0.3)  # the route is reading the body when the client leaves
    time.sleep(1)
    page = s.client.get("/metrics").text
    assert (
        metric_value(page, 'sllen_http_requests_total{method="POST",route="/enhance",status="499"}')
        == 3
    )
    assert 'status="500"' not in page
    log = s.gateway.log_path.read_text() if s.gateway else ""
    assert "Traceback" not in log and "Exception in ASGI application" not in log


@pytest.mark.slow
def test_waiting_retry_after_exactly_is_enough(stack_factory: StackFactory) -> None:
    key = "retry-after-key-0123456789"
    s = stack_factory(api_key_hashes=[hash_key(key)], rate_limit_per_minute=1)
    headers = {"x-api-key": key}
    files = {"image": ("a.png", PNG)}
    r = s.client.post("/enhance", files=files, headers=headers)
    while r.status_code != 429:
        r = s.client.post("/enhance", files=files, headers=headers)
    time.sleep(int(r.headers["retry-after"]))
    assert s.client.post("/enhance", files=files, headers=headers).status_code == 200
