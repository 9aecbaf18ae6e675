"""100 clients trickling a byte every few seconds (in their headers or their body) for 60 s:
other clients' uploads keep getting 200 in their usual time, and the server closes every slow
connection itself, after the header deadline, the body's minimum rate or the slow-body bound."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass

import httpx
import pytest

from testkit.images import dark_scene, encode
from testkit.prometheus import metric_value
from testkit.stack import Stack
from tests.integration.conftest import StackFactory

pytestmark = pytest.mark.slow

PNG = encode(dark_scene(48, 64, seed=3), "PNG")
ATTACK_S = 60.0
SLOW_CLIENTS = 100  # 70 trickle their body (more than max_inflight_requests), 30 their headers
TRICKLE_EVERY_S = 2.0


@dataclass
class Connection:
    kind: str
    lasted_s: float
    status: int  # the server's answer; 0 if it closed without one
    closed_by_server: bool


def _head(port: int, content_length: int) -> bytes:
    return (
        f"POST /enhance HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: image/png\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


async def _one_slow_connection(port: int, kind: str, cap_s: float) -> Connection:
    """Send the head (or the body) a byte at a time until the server hangs up."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    head = _head(port, 100_000)
    trickle = head if kind == "header" else b"\x89PNG\r\n\x1a\n" + b"\0" * 99_992
    if kind == "body":
        writer.write(head)
    reply, closed, position = b"", False, 0
    try:
        while time.monotonic() - started < cap_s:
            if position < len(trickle):
                writer.write(trickle[position : position + 1])
                position += 1
                await writer.drain()
            try:
                data = await asyncio.wait_for(reader.read(65536), TRICKLE_EVERY_S)
            except TimeoutError:
                continue
            if not data:
                closed = True
                break
            reply += data
    except ConnectionError:
        closed = True
    finally:
        writer.close()
    status = int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0
    return Connection(kind, time.monotonic() - started, status, closed)


async def _slow_client(port: int, kind: str, until: float, out: list[Connection]) -> None:
    while time.monotonic() < until:  # as an attacker would: reconnect when dropped
        out.append(await _one_slow_connection(port, kind, cap_s=60.0))


async def _uploads(url: str, until: float) -> list[tuple[int, float]]:
    """One client's uploads, one after another, each on a fresh connection."""
    results = []
    async with httpx.AsyncClient(
        base_url=url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0)
    ) as client:
        while time.monotonic() < until:
            started = time.perf_counter()
            r = await client.post("/enhance", files={"image": ("p.png", PNG)})
            results.append((r.status_code, time.perf_counter() - started))
    return results


async def _attack(
    s: Stack,
) -> tuple[list[tuple[int, float]], list[tuple[int, float]], list[Connection]]:
    port = s.settings.port
    baseline = await _uploads(s.url, time.monotonic() + 10)
    connections: list[Connection] = []
    until = time.monotonic() + ATTACK_S
    attackers = [
        asyncio.create_task(
            _slow_client(port, "body" if i % 10 < 7 else "header", until, connections)
        )
        for i in range(SLOW_CLIENTS)
    ]
    await asyncio.sleep(5)  # let them settle in
    during = await _uploads(s.url, until)
    await asyncio.gather(*attackers)
    return baseline, during, connections


def test_slow_clients_do_not_shut_others_out(stack_factory: StackFactory) -> None:
    s = stack_factory()
    st = s.settings
    s.client.post("/enhance", files={"image": ("p.png", PNG)})  # warm up the model
    baseline, during, connections = asyncio.run(_attack(s))

    assert baseline and during
    assert {status for status, _ in baseline + during} == {200}
    base_s = statistics.median(t for _, t in baseline)
    attacked_s = statistics.median(t for _, t in during)
    print(f"upload p50: {base_s * 1000:.0f} ms alone, {attacked_s * 1000:.0f} ms under attack")
    assert attacked_s <= 2 * base_s

    headers = [c for c in connections if c.kind == "header"]
    bodies = [c for c in connections if c.kind == "body"]
    assert len(headers) >= 30 and len(bodies) >= 70
    assert all(c.closed_by_server for c in connections)
    # the head: 408 at its deadline (counted from the first byte: the connection's start)
    assert {c.status for c in headers} == {408}
    assert max(c.lasted_s for c in headers) <= st.header_timeout_s + 2 * TRICKLE_EVERY_S + 2
    # the body: 503 when the slow-body bound is full, else 408 at its minimum rate
    assert {c.status for c in bodies} <= {408, 503} and 408 in {c.status for c in bodies}
    body_bytes = ATTACK_S / TRICKLE_EVERY_S  # at most one per trickle
    body_deadline_s = st.body_timeout_s + body_bytes / st.body_min_rate_bytes_per_s
    assert max(c.lasted_s for c in bodies) <= body_deadline_s + 2 * TRICKLE_EVERY_S + 2
    refused_early = [c for c in bodies if c.status == 503]
    if refused_early:
        assert max(c.lasted_s for c in refused_early) <= st.slow_body_after_s + TRICKLE_EVERY_S + 2

    page = httpx.get(f"{s.url}/metrics").text
    assert (
        metric_value(page, 'sllen_http_requests_total{method="POST",route="/enhance",status="408"}')
        > 0
    )
    assert 'route="unmatched",status="503"' not in page
    if refused_early:
        series = 'sllen_http_requests_total{method="POST",route="/enhance",status="503"}'
        assert metric_value(page, series) >= len(refused_early)
    timeouts = 'sllen_http_connections_refused_total{reason="header_timeout"}'
    assert metric_value(page, timeouts) >= len(headers)
