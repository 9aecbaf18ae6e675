"""Idempotency-Key through the real stack: a retry gets the first job, never a second model run."""

from __future__ import annotations

import concurrent.futures
import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis

from service.api.access import hash_key
from testkit.images import dark_scene, encode
from testkit.stack import Stack, wait_until
from tests.integration.conftest import start_stack

pytestmark = pytest.mark.integration

PHOTO = encode(dark_scene(60, 80), "JPEG", quality=90)
OTHER = encode(dark_scene(60, 80, seed=5), "JPEG", quality=90)
ALICE, BOB = "alice-key-0123456789", "bob-key-9876543210"


def _results(s: Stack) -> set[bytes]:
    """The result keys in Redis: one per job a worker ran."""
    r = redis.Redis.from_url(s.settings.redis_url)
    try:
        return set(r.scan_iter(f"{s.settings.key_prefix}:result:*"))
    finally:
        r.close()


def _results_when_idle(s: Stack) -> set[bytes]:
    """``_results`` once every job queued so far has finished (entries leave the stream when
    their result is written), so earlier tests' jobs are not counted as this test's."""
    r = redis.Redis.from_url(s.settings.redis_url)
    try:
        wait_until(lambda: r.xlen(f"{s.settings.key_prefix}:jobs") == 0, 60, "an idle queue")
    finally:
        r.close()
    return _results(s)


def _submit(s: Stack, key: str, photo: bytes = PHOTO, **params: str):  # type: ignore[no-untyped-def]
    return s.client.post(
        "/v1/jobs",
        params=params,
        files={"image": ("p.jpg", photo)},
        headers={"Idempotency-Key": key},
    )


def _wait_done(s: Stack, job_id: str) -> dict:  # type: ignore[type-arg]
    seen: dict = {}  # type: ignore[type-arg]

    def done() -> bool:
        seen.update(s.client.get(f"/v1/jobs/{job_id}").json())
        return seen["status"] in ("done", "failed")

    wait_until(done, 60, "job")
    return seen


def test_a_retried_job_is_the_first_job(stack: Stack) -> None:
    before = _results_when_idle(stack)
    key = str(uuid.uuid4())
    first = _submit(stack, key)
    assert first.status_code == 202 and "idempotent-replayed" not in first.headers
    job_id = first.json()["id"]
    assert _wait_done(stack, job_id)["status"] == "done"
    again = _submit(stack, key)  # after it finished: within the result's lifetime
    assert again.status_code == 202, again.text
    assert again.json()["id"] == job_id and again.headers["idempotent-replayed"] == "true"
    assert len(_results(stack) - before) == 1  # one model run


def test_concurrent_identical_requests_make_one_job(stack: Stack) -> None:
    before = _results_when_idle(stack)
    key = str(uuid.uuid4())
    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: _submit(stack, key), range(6)))
    assert [a.status_code for a in answers] == [202] * 6
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    assert sum(a.headers.get("idempotent-replayed") == "true" for a in answers) == 5
    _wait_done(stack, ids.pop())
    assert len(_results(stack) - before) == 1


@pytest.mark.parametrize(
    ("photo", "params"),
    [(OTHER, {}), (PHOTO, {"strength": "0.5"}), (PHOTO, {"format": "png"})],
    ids=["other-photo", "other-strength", "other-format"],
)
def test_the_same_key_with_another_body_is_422(stack: Stack, photo: bytes, params: dict) -> None:  # type: ignore[type-arg]
    key = str(uuid.uuid4())
    assert _submit(stack, key).status_code == 202
    reused = _submit(stack, key, photo, **params)
    assert reused.status_code == 422, reused.text
    assert reused.json()["code"] == "idempotency_key_reused"


def test_a_retried_enhance_returns_the_first_answer_without_a_second_run(stack: Stack) -> None:
    before = _results_when_idle(stack)
    key = str(uuid.uuid4())
    headers = {"Idempotency-Key": key}
    first = stack.client.post("/enhance", files={"image": ("p.jpg", PHOTO)}, headers=headers)
    again = stack.client.post("/enhance", files={"image": ("p.jpg", PHOTO)}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content and again.headers["idempotent-replayed"] == "true"
    assert len(_results(stack) - before) == 1
    other = stack.client.post("/enhance", files={"image": ("p.jpg", OTHER)}, headers=headers)
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"


def test_a_keyed_enhance_result_outlives_the_short_sync_ttl(stack: Stack) -> None:
    # An unkeyed sync result lives until the request's deadline plus SLLEN_SYNC_RESULT_TTL_S; a
    # keyed one SLLEN_RESULT_TTL_S, for a retry whose answer was lost.
    before = _results_when_idle(stack)
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    first = stack.client.post("/enhance", files={"image": ("p.jpg", PHOTO)}, headers=headers)
    assert first.status_code == 200, first.text
    (key,) = _results(stack) - before
    settings = stack.settings
    short_ms = (settings.request_deadline_s + settings.sync_result_ttl_s) * 1000
    r = redis.Redis.from_url(settings.redis_url)
    try:
        assert short_ms < r.pttl(key) <= settings.result_ttl_s * 1000
    finally:
        r.close()


def test_a_key_longer_than_255_is_422(stack: Stack) -> None:
    r = _submit(stack, "k" * 256)
    assert r.status_code == 422


@pytest.fixture(scope="module")
def keyed(redis_url: str, triton_url: str) -> Iterator[Stack]:
    s = start_stack(redis_url, triton_url, api_key_hashes=[hash_key(ALICE), hash_key(BOB)])
    yield s
    s.close()


def test_keys_are_scoped_to_the_api_key(keyed: Stack) -> None:
    key = str(uuid.uuid4())

    def submit(api_key: str) -> str:
        r = keyed.client.post(
            "/v1/jobs",
            files={"image": ("p.jpg", PHOTO)},
            headers={"Idempotency-Key": key, "Authorization": f"Bearer {api_key}"},
        )
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    alice = submit(ALICE)
    bob = submit(BOB)
    assert alice != bob  # Bob's request is not Alice's retry
    assert submit(ALICE) == alice
    bob_reads_alice = keyed.client.get(
        f"/v1/jobs/{alice}", headers={"Authorization": f"Bearer {BOB}"}
    )
    assert bob_reads_alice.status_code == 404


def _send_and_hang_up(s: Stack, request: httpx.Request) -> None:
    """Send a whole request and close the connection without reading the answer."""
    url = httpx.URL(s.url)
    head = [f"{request.method} {request.url.raw_path.decode()} HTTP/1.1"]
    head += [f"{k}: {v}" for k, v in request.headers.items()]
    with socket.create_connection((url.host, url.port or 80)) as conn:
        conn.sendall("\r\n".join(head).encode() + b"\r\n\r\n" + request.read())
        time.sleep(0.05)


def test_a_retry_after_the_first_answer_was_lost_gets_a_photo(stack: Stack) -> None:
    # The phone's first request is sent but its answer lost (the gateway then cancels the job, or
    # the worker has already run it): the retry gets the photo either way, never "cancelled".
    headers = {"Idempotency-Key": str(uuid.uuid4())}
    files = {"image": ("p.jpg", PHOTO)}
    _send_and_hang_up(
        stack, stack.client.build_request("POST", "/enhance", files=files, headers=headers)
    )
    retry = stack.client.post("/enhance", files=files, headers=headers)
    assert retry.status_code == 200, retry.text
    assert retry.headers["content-type"] == "image/jpeg"
