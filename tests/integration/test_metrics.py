"""Prometheus metrics scraped from the real gateway and worker processes."""

from __future__ import annotations

import httpx

from testkit.images import dark_scene, encode
from testkit.machine import free_port
from testkit.prometheus import metric_value
from testkit.stack import wait_until
from tests.integration.conftest import StackFactory


def test_gateway_and_worker_metrics(stack_factory: StackFactory) -> None:
    port = free_port()
    s = stack_factory(worker_metrics_port=port, claim_interval_s=0.5, worker_heartbeat_ttl_s=3)
    photo = encode(dark_scene(48, 64), "PNG")
    for _ in range(3):
        assert s.client.post("/enhance", files={"image": ("m.png", photo)}).status_code == 200
    assert s.client.post("/enhance", files={"image": ("t.txt", b"text")}).status_code == 415

    gateway = s.client.get("/metrics").text
    assert (
        metric_value(
            gateway, 'sllen_http_requests_total{method="POST",route="/enhance",status="200"}'
        )
        == 3
    )
    assert metric_value(gateway, 'sllen_errors_total{code="unsupported_media_type"}') == 1
    assert "sllen_http_request_duration_seconds_bucket" in gateway
    assert "sllen_queue_wait_seconds_count" in gateway

    worker_url = f"http://127.0.0.1:{port}/metrics"
    wait_until(
        lambda: metric_value(httpx.get(worker_url).text, "sllen_queue_depth") == 0,
        10,
        "queue gauge",
    )
    worker = httpx.get(worker_url).text
    assert metric_value(worker, 'sllen_jobs_total{outcome="done"}') == 3
    assert metric_value(worker, "sllen_batch_size_count") >= 1
    assert metric_value(worker, "sllen_inference_duration_seconds_count") >= 1
    for gauge in ("sllen_queue_pending", "sllen_queue_oldest_age_seconds"):
        assert metric_value(worker, gauge) >= 0
