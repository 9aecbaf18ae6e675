"""Async jobs through the real stack."""

from __future__ import annotations

import time

import httpx

from testkit.images import dark_scene, decode, encode
from testkit.stack import Stack, wait_until
from tests.integration.conftest import StackFactory


def _poll_done(client: httpx.Client, url: str, timeout_s: float = 30) -> dict:  # type: ignore[type-arg]
    seen: dict = {}  # type: ignore[type-arg]

    def done() -> bool:
        seen.update(client.get(url).json())
        return seen["status"] in ("done", "failed")

    wait_until(done, timeout_s, "job")
    return seen


def test_job_lifecycle_with_mask(stack: Stack) -> None:
    data = encode(dark_scene(70, 90), "PNG")
    created = stack.client.post(
        "/v1/jobs", params={"mask": "true"}, files={"image": ("j.png", data)}
    )
    assert created.status_code == 202, created.text
    body = created.json()
    assert created.headers["location"] == body["status_url"] == f"/v1/jobs/{body['id']}"
    assert len(body["id"]) >= 22  # 128 random bits, URL-safe
    status = _poll_done(stack.client, body["status_url"])
    assert status["status"] == "done" and (status["width"], status["height"]) == (90, 70)
    assert status["model"]["name"] == "sllen"
    image = stack.client.get(status["image_url"])
    assert image.headers["content-type"] == "image/png" and decode(image.content).shape == (
        70,
        90,
        3,
    )
    mask = stack.client.get(status["mask_url"])
    assert mask.status_code == 200 and decode(mask.content).shape == (70, 90)


def test_job_without_mask_has_no_mask(stack: Stack) -> None:
    created = stack.client.post(
        "/v1/jobs", files={"image": ("j.png", encode(dark_scene(40, 40), "PNG"))}
    )
    status = _poll_done(stack.client, created.json()["status_url"])
    assert status["mask_url"] is None
    assert stack.client.get(f"/v1/jobs/{status['id']}/mask").status_code == 404


def test_unknown_job_is_404(stack: Stack) -> None:
    r = stack.client.get("/v1/jobs/AAAAAAAAAAAAAAAAAAAAAA")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def test_failed_job_reports_its_error(stack: Stack) -> None:
    truncated = encode(dark_scene(300, 300), "PNG")[:900]
    created = stack.client.post("/v1/jobs", files={"image": ("t.png", truncated)})
    status = _poll_done(stack.client, created.json()["status_url"])
    assert status["status"] == "failed"
    assert status["error"]["status"] == 400 and status["error"]["code"] == "undecodable_image"
    image = stack.client.get(f"/v1/jobs/{status['id']}/image")
    assert image.status_code == 400


def test_queued_job_is_visible_then_expires(stack_factory: StackFactory) -> None:
    s = stack_factory(workers=0, result_ttl_s=1)
    created = s.client.post(
        "/v1/jobs", files={"image": ("j.png", encode(dark_scene(40, 40), "PNG"))}
    )
    url = created.json()["status_url"]
    assert s.client.get(url).json()["status"] == "queued"
    assert s.client.get(f"{url}/image").status_code == 409
    s.add_worker()
    assert _poll_done(s.client, url)["status"] == "done"
    time.sleep(1.5)
    assert s.client.get(url).status_code == 404
