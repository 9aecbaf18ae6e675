"""With API keys on, an upload without a valid key, or over its rate limit, is refused from its
headers alone: its body is never read, multipart or raw, with or without Expect: 100-continue."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from service.api.access import hash_key
from testkit.stack import Stack
from tests.integration.conftest import start_stack

KEY = "before-body-key-0123456789"
BIG = 20 * 1024 * 1024
BOUNDARY = "b0undary"


@pytest.fixture(scope="module")
def keyed(redis_url: str, triton_url: str) -> Iterator[Stack]:
    s = start_stack(redis_url, triton_url, api_key_hashes=[hash_key(KEY)], rate_limit_per_minute=2)
    yield s
    s.close()


def _head(s: Stack, kind: str, expect: bool, key: str | None = None) -> bytes:
    content_type = (
        f"multipart/form-data; boundary={BOUNDARY}" if kind == "multipart" else "image/png"
    )
    lines = [
        "POST /v1/enhance HTTP/1.1",
        f"Host: 127.0.0.1:{s.settings.port}",
        f"Content-Type: {content_type}",
        f"Content-Length: {BIG}",
    ]
    if expect:
        lines.append("Expect: 100-continue")
    if key:
        lines.append(f"X-API-Key: {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _body_start(kind: str) -> bytes:
    if kind == "multipart":
        disposition = 'Content-Disposition: form-data; name="image"; filename="a.png"'
        part = f"--{BOUNDARY}\r\n{disposition}\r\n\r\n"
        return part.encode() + b"\x89PNG\r\n\x1a\n" + b"\0" * 60_000
    return b"\x89PNG\r\n\x1a\n" + b"\0" * 60_000


def _read_answer(sock: socket.socket, within_s: float) -> bytes:
    """What the server sends within the time given, up to its headers' end."""
    sock.settimeout(within_s)
    data = b""
    deadline = time.monotonic() + within_s
    while b"\r\n\r\n" not in data and time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data


def _closes_soon(sock: socket.socket, within_s: float) -> bool:
    """The server ends the connection (FIN or reset) while we keep sending the body."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + within_s
    chunk = b"\0" * 65536
    while time.monotonic() < deadline:
        try:
            sock.sendall(chunk)
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


@pytest.mark.parametrize("kind", ["multipart", "raw"])
def test_no_key_with_expect_100_continue_is_refused_unsent(keyed: Stack, kind: str) -> None:
    with socket.create_connection(("127.0.0.1", keyed.settings.port)) as sock:
        sock.sendall(_head(keyed, kind, expect=True))
        answer = _read_answer(sock, within_s=5)
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]  # and no 100 Continue first
        assert b"connection: close" in answer.lower()
        sock.settimeout(5)
        rest = b""
        while chunk := sock.recv(65536):  # then the server hangs up, without our body
            rest += chunk
        assert b"100 Continue" not in rest


@pytest.mark.parametrize("kind", ["multipart", "raw"])
def test_no_key_is_refused_as_soon_as_the_headers_arrive(keyed: Stack, kind: str) -> None:
    with socket.create_connection(("127.0.0.1", keyed.settings.port)) as sock:
        started = time.monotonic()
        sock.sendall(_head(keyed, kind, expect=False) + _body_start(kind))
        answer = _read_answer(sock, within_s=5)
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:200]
        assert time.monotonic() - started < 5  # 64 KiB of 20 MiB sent: the rest was not awaited
        assert _closes_soon(sock, within_s=keyed.settings.linger_s + 5)


def test_a_client_sending_all_of_its_body_still_reads_the_401(keyed: Stack) -> None:
    # httpx sends the whole body before it reads: the graceful close lets it see the answer
    data = b"\x89PNG\r\n\x1a\n" + b"\0" * (BIG - 8 - 70_000)
    r = keyed.client.post("/enhance", files={"image": ("big.png", data)})
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"


def test_rate_limited_upload_is_refused_before_its_body(keyed: Stack) -> None:
    from testkit.images import dark_scene, encode

    png = encode(dark_scene(32, 32), "PNG")
    codes: list[int] = []
    while 429 not in codes and len(codes) < 8:  # the limit is 2 a minute, in fixed windows
        r = keyed.client.post(
            "/enhance", files={"image": ("a.png", png)}, headers={"x-api-key": KEY}
        )
        codes.append(r.status_code)
    assert set(codes) == {200, 429}, codes
    with socket.create_connection(("127.0.0.1", keyed.settings.port)) as sock:
        sock.sendall(_head(keyed, "multipart", expect=True, key=KEY))
        answer = _read_answer(sock, within_s=5)
    assert answer.startswith(b"HTTP/1.1 429 "), answer[:200]
    assert b"retry-after:" in answer.lower()
