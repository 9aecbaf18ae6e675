"""Triton's control API is closed by default; a model that goes missing is waited for."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx
import redis

from service.queue.keys import Keys
from testkit.images import dark_scene, encode
from testkit.stack import wait_until
from tests.conftest import TritonPorts, listening_addresses, start_triton
from tests.integration.conftest import StackFactory

PNG = encode(dark_scene(64, 96), "PNG")


def test_local_triton_listens_on_loopback_only(triton_ports: TritonPorts) -> None:
    for port in (triton_ports.grpc, triton_ports.http, triton_ports.metrics):
        assert listening_addresses(port) == {"127.0.0.1"}, port


def test_local_triton_refuses_to_unload_its_model(triton_ports: TritonPorts) -> None:
    base = f"http://127.0.0.1:{triton_ports.http}"
    unload = httpx.post(f"{base}/v2/repository/models/sllen/unload", timeout=10)
    assert unload.status_code >= 400, unload.text
    assert httpx.get(f"{base}/v2/models/sllen/ready", timeout=5).status_code == 200


def test_unloaded_model_gives_503_and_queued_jobs_finish_once_it_is_back(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    ports = TritonPorts()
    triton = start_triton(tmp_path / "triton", ports, model_control=True)
    base = f"http://127.0.0.1:{ports.http}"
    # One consume loop: the sync job and the async ones below go to Triton as one batch.
    s = stack_factory(
        workers=0,
        worker_concurrency=1,
        triton_grpc_url=ports.grpc_url,
        request_deadline_s=12.0,
        retry_backoff_s=0.2,
        retry_backoff_max_s=1.0,
    )
    keys = Keys(s.settings.key_prefix)
    r = redis.Redis.from_url(s.settings.redis_url)
    try:
        assert httpx.post(f"{base}/v2/repository/models/sllen/unload").status_code == 200
        wait_until(
            lambda: httpx.get(f"{base}/v2/models/sllen/ready").status_code != 200, 20, "unload"
        )
        jobs = [s.client.post("/v1/jobs", files={"image": ("j.png", PNG)}) for _ in range(3)]
        assert [j.status_code for j in jobs] == [202] * 3
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            started = time.monotonic()
            sync = pool.submit(s.client.post, "/enhance", files={"image": ("x.png", PNG)})
            wait_until(lambda: r.xlen(keys.stream) == 4, 10, "four jobs queued")
            s.add_worker()
            missing = sync.result(timeout=30)
        assert missing.status_code == 503, missing.text
        assert missing.json()["code"] == "model_unavailable"
        assert int(missing.headers["retry-after"]) >= 1
        assert time.monotonic() - started < 12.0 + 2.0  # answered by the request deadline

        # A sync request sent while the model is away finishes when it comes back in time.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiting = pool.submit(s.client.post, "/enhance", files={"image": ("x.png", PNG)})
            time.sleep(1.0)
            assert httpx.post(f"{base}/v2/repository/models/sllen/load", timeout=60).is_success
            assert waiting.result(timeout=30).status_code == 200

        # The async jobs that shared a batch with the failed sync one were retried, not failed.
        for job in jobs:
            url = job.json()["status_url"]
            wait_until(lambda u=url: s.client.get(u).json()["status"] != "queued", 30, "job")
            assert s.client.get(url).json()["status"] in ("running", "done")
            wait_until(lambda u=url: s.client.get(u).json()["status"] == "done", 30, "job done")
    finally:
        r.close()
        triton.stop()
