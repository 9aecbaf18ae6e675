"""Overload: at 3x the sustainable rate the gateway sheds load, stays bounded, keeps deadlines."""

from __future__ import annotations

import asyncio
import json
import statistics
import threading
import time
from pathlib import Path

import httpx

from service.config import PROJECT_ROOT
from testkit.images import dark_scene, encode
from testkit.stack import Stack
from tests.integration.conftest import StackFactory

PNG = encode(dark_scene(400, 600), "JPEG", quality=90)  # a typical phone-web upload
REPORT = PROJECT_ROOT / ".run" / "reports" / "overload.json"


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _sustainable_rate(stack: Stack, concurrency: int, seconds: float = 4.0) -> float:
    """Closed-loop throughput at the gateway's full concurrency: the most it can keep up with."""

    async def run() -> int:
        done = 0
        stop_at = time.monotonic() + seconds
        async with httpx.AsyncClient(base_url=stack.url, timeout=30) as client:

            async def loop() -> None:
                nonlocal done
                while time.monotonic() < stop_at:
                    r = await client.post("/enhance", files={"image": ("x.png", PNG)})
                    done += r.status_code == 200

            await asyncio.gather(*(loop() for _ in range(concurrency)))
        return done

    return asyncio.run(run()) / seconds


def _open_loop(stack: Stack, rate: float, seconds: float) -> list[tuple[int, float, str]]:
    """Fire requests at a fixed rate whatever the answers: (status, latency s, Retry-After)."""

    async def run() -> list[tuple[int, float, str]]:
        limits = httpx.Limits(max_connections=2000, max_keepalive_connections=100)
        async with httpx.AsyncClient(base_url=stack.url, timeout=60, limits=limits) as client:

            async def one() -> tuple[int, float, str]:
                started = time.monotonic()
                r = await client.post("/enhance", files={"image": ("x.png", PNG)})
                return r.status_code, time.monotonic() - started, r.headers.get("retry-after", "")

            tasks = []
            started = time.monotonic()
            for i in range(int(rate * seconds)):
                await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
                tasks.append(asyncio.create_task(one()))
            return await asyncio.gather(*tasks)

    return asyncio.run(run())


def test_three_times_the_sustainable_rate(stack_factory: StackFactory) -> None:
    deadline_s = 10.0
    s = stack_factory(request_deadline_s=deadline_s, max_inflight_requests=8)
    assert s.gateway is not None
    pid = s.gateway.popen.pid
    rate = _sustainable_rate(s, concurrency=8)
    baseline_mb = _rss_mb(pid)
    peak_mb = baseline_mb
    sampling = True

    def sample() -> None:
        nonlocal peak_mb
        while sampling:
            peak_mb = max(peak_mb, _rss_mb(pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    results = _open_loop(s, rate * 3, seconds=8.0)
    sampling = False
    sampler.join()

    ok = [lat for status, lat, _ in results if status == 200]
    shed = [(status, ra) for status, _, ra in results if status in (429, 503)]
    other = [status for status, _, _ in results if status not in (200, 429, 503)]
    report = {
        "sustainable_rps": round(rate, 2),
        "offered_rps": round(rate * 3, 2),
        "sent": len(results),
        "accepted": len(ok),
        "shed": len(shed),
        "shed_rate": round(len(shed) / len(results), 3),
        "other_statuses": other,
        "accepted_p50_s": round(statistics.median(ok), 3) if ok else None,
        "accepted_max_s": round(max(ok), 3) if ok else None,
        "gateway_rss_baseline_mb": round(baseline_mb, 1),
        "gateway_rss_peak_mb": round(peak_mb, 1),
    }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2))
    assert other == [], report
    assert ok and max(ok) < deadline_s, report
    assert shed and all(ra.isdigit() for _, ra in shed), report
    assert peak_mb - baseline_mb < 150, report
