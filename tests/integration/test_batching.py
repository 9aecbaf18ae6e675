"""Batching through the real worker and Triton: shape buckets let different sizes share a call."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest
import redis

from service.queue.keys import Keys
from testkit.images import dark_scene, decode, encode
from testkit.machine import free_port
from testkit.prometheus import metric_value
from testkit.stack import wait_until
from tests.integration.conftest import StackFactory

pytestmark = pytest.mark.integration

# All different, all padded to 128x128 by a 128 px bucket.
SIZES = [(100, 120), (90, 128), (128, 70), (110, 100)]


@pytest.mark.parametrize(("bucket", "calls"), [(128, 1), (0, len(SIZES))])
def test_different_sizes_share_a_triton_call_only_with_buckets(
    stack_factory: StackFactory, redis_url: str, bucket: int, calls: int
) -> None:
    port = free_port()
    s = stack_factory(workers=0, batch_bucket_px=bucket, batch_max_size=8, worker_metrics_port=port)
    r = redis.Redis.from_url(redis_url)
    stream = Keys(s.settings.key_prefix).stream

    def send(i: int) -> tuple[int, tuple[int, ...]]:
        h, w = SIZES[i]
        photo = encode(dark_scene(h, w, seed=i), "PNG")
        response = s.client.post("/enhance", files={"image": ("b.png", photo)})
        shape = decode(response.content).shape if response.status_code == 200 else ()
        return response.status_code, shape

    with concurrent.futures.ThreadPoolExecutor(len(SIZES)) as pool:
        futures = [pool.submit(send, i) for i in range(len(SIZES))]
        # Every job is queued before the worker starts, so it reads them in one go.
        wait_until(lambda: r.xlen(stream) == len(SIZES), 10, "jobs queued")
        s.add_worker()
        results = [f.result(timeout=60) for f in futures]
    for (status, shape), (h, w) in zip(results, SIZES, strict=True):
        assert status == 200 and shape == (h, w, 3)  # padding cropped back off
    metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert metric_value(metrics, "sllen_batch_size_sum") == len(SIZES)
    assert metric_value(metrics, "sllen_batch_size_count") == calls
