"""A soak of the whole local stack: do Redis's memory and its append-only file stay flat?

    python -m benchmarks.soak [--rate 8] [--seconds 600] [--sample-s 15] [--warmup-s 30]

Starts the stack as `sllen run` does (loopback, free ports, a fresh Redis under .run/soak),
sends 600x400 JPEG sync requests (PNG answers) open-loop at --rate per second, and samples
Redis's used_memory and the size of its append-only files every --sample-s. The baseline is the
sample at the end of the warm-up (load running, same run); the report gives both curves, their
start, end and peak, and end/start ratios: a flat stack ends near 1.0 (the append-only file is a
sawtooth: Redis rewrites it once it doubles past 64 MB). Bounded in time (--warmup-s +
--seconds) and in requests in flight (--max-outstanding; more are counted as skipped, not
queued). The report is also written to .run/reports/soak.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import redis

from benchmarks.bench import local_settings, local_stack
from service.config import PROJECT_ROOT, Settings
from testkit import machine
from testkit.images import dark_scene, encode

REPORT = PROJECT_ROOT / ".run" / "reports" / "soak.json"
# The default answer, a PNG (~0.5 MB at 600x400): the result that used to pile up in Redis.
ENHANCE = "/v1/enhance"


@dataclass
class Sample:
    t_s: float
    sent: int
    ok: int
    failed: int
    used_memory_mb: float
    rss_mb: float
    aof_mb: float
    aof_rewrites: int
    keys: int


def aof_bytes(redis_dir: Path) -> int:
    """Every append-only file Redis keeps (Redis 7: base and increments in appendonlydir/)."""
    return sum(p.stat().st_size for p in redis_dir.rglob("*.aof") if p.is_file())


class Load:
    """Open loop: one request every 1/rate s whatever the answers, at most ``limit`` in flight."""

    def __init__(self, url: str, photo: bytes, rate: float, limit: int) -> None:
        self.url, self.photo, self.rate, self.limit = url, photo, rate, limit
        self.sent = self.ok = self.skipped = 0
        self.statuses: dict[int, int] = {}
        self.latencies: list[float] = []
        self._inflight = 0

    async def run(self, seconds: float) -> None:
        connector = aiohttp.TCPConnector(limit=self.limit)
        timeout = aiohttp.ClientTimeout(total=60)
        headers = {"content-type": "image/jpeg"}
        async with aiohttp.ClientSession(self.url, connector=connector, timeout=timeout) as client:

            async def one() -> None:
                self._inflight += 1
                started = time.perf_counter()
                try:
                    async with client.post(ENHANCE, data=self.photo, headers=headers) as r:
                        await r.read()
                        status = r.status
                except (aiohttp.ClientError, TimeoutError):
                    status = 0
                finally:
                    self._inflight -= 1
                self.statuses[status] = self.statuses.get(status, 0) + 1
                if status == 200:
                    self.ok += 1
                    self.latencies.append(time.perf_counter() - started)

            tasks: set[asyncio.Task[None]] = set()
            start = time.perf_counter()
            n = 0
            while (due := start + n / self.rate) < start + seconds:
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                n += 1
                if self._inflight >= self.limit:
                    self.skipped += 1
                    continue
                self.sent += 1
                task = asyncio.create_task(one())
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.gather(*tasks)


def sample(r: redis.Redis, redis_dir: Path, load: Load, t0: float) -> Sample:
    memory = r.info("memory")
    persistence = r.info("persistence")
    return Sample(
        t_s=round(time.monotonic() - t0, 1),
        sent=load.sent,
        ok=load.ok,
        failed=sum(n for status, n in load.statuses.items() if status != 200),
        used_memory_mb=round(memory["used_memory"] / 2**20, 2),
        rss_mb=round(memory["used_memory_rss"] / 2**20, 2),
        aof_mb=round(aof_bytes(redis_dir) / 2**20, 2),
        aof_rewrites=int(persistence.get("aof_rewrites", -1)),
        keys=int(r.dbsize()),
    )


async def soak(settings: Settings, args: argparse.Namespace) -> dict[str, object]:
    photo = encode(dark_scene(400, 600, seed=1), "JPEG", quality=90)
    load = Load(f"http://127.0.0.1:{settings.port}", photo, args.rate, args.max_outstanding)
    r = redis.Redis(port=settings.redis_port)
    redis_dir = settings.state_dir / "redis"
    samples: list[Sample] = []
    t0 = time.monotonic()
    total_s = args.warmup_s + args.seconds
    running = asyncio.create_task(load.run(total_s))
    baseline: Sample | None = None
    while not running.done():
        await asyncio.wait({running}, timeout=args.sample_s)
        row = await asyncio.to_thread(sample, r, redis_dir, load, t0)
        samples.append(row)
        if baseline is None and row.t_s >= args.warmup_s:
            baseline = row
        print(
            f"{row.t_s:7.1f} s  sent {row.sent:6d}  ok {row.ok:6d}  failed {row.failed:4d}"
            f"  used_memory {row.used_memory_mb:8.2f} MB  rss {row.rss_mb:8.2f} MB"
            f"  aof {row.aof_mb:8.2f} MB ({row.aof_rewrites} rewrites)  keys {row.keys}",
            flush=True,
        )
    await running
    r.close()
    start = baseline or samples[0]
    end = samples[-1]
    after = [s for s in samples if s.t_s >= start.t_s]
    lat = sorted(load.latencies)
    q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [0.0] * 99
    return {
        "rate_per_s": args.rate,
        "seconds_measured": round(end.t_s - start.t_s, 1),
        "sent": load.sent,
        "ok": load.ok,
        "skipped": load.skipped,
        "statuses": {str(k): v for k, v in sorted(load.statuses.items())},
        "ok_per_s": round(load.ok / total_s, 2),
        "latency_ms": {"p50": 1000 * q[49], "p95": 1000 * q[94], "p99": 1000 * q[98]},
        "used_memory_mb": {
            "start": start.used_memory_mb,
            "end": end.used_memory_mb,
            "peak": max(s.used_memory_mb for s in after),
            "end_over_start": round(end.used_memory_mb / start.used_memory_mb, 3),
        },
        "aof_mb": {
            "start": start.aof_mb,
            "end": end.aof_mb,
            "peak": max(s.aof_mb for s in after),
            "end_over_start": round(end.aof_mb / start.aof_mb, 3) if start.aof_mb else None,
            "rewrites": end.aof_rewrites - start.aof_rewrites,
        },
        "samples": [asdict(s) for s in samples],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=8.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=600.0, help="measured, after warm-up")
    parser.add_argument("--warmup-s", type=float, default=30.0)
    parser.add_argument("--sample-s", type=float, default=15.0)
    parser.add_argument("--max-outstanding", type=int, default=64)
    args = parser.parse_args(argv)
    settings = local_settings(workers=1, state_dir=PROJECT_ROOT / ".run" / "soak")
    print(f"soak: {args.rate:g} req/s of 600x400 JPEG for {args.warmup_s:g}+{args.seconds:g} s")
    print(f"machine: {machine.cpu_info()['model']}, {machine.cpu_info()['cores']} cores")
    with local_stack(settings):
        report = asyncio.run(soak(settings, args))
    summary = {k: v for k, v in report.items() if k != "samples"}
    print(json.dumps(summary, indent=2))
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
