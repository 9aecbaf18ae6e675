"""Outages of the servers themselves: Triton killed mid-batch, Redis restarted."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx

from testkit.images import dark_scene, encode
from testkit.stack import wait_until
from tests.conftest import TritonPorts, start_redis, start_triton
from tests.integration.conftest import StackFactory

PNG = encode(dark_scene(120, 160), "PNG")


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
