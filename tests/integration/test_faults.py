"""Faults against real processes: dead workers, poison jobs, deadlines, Triton down."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest
import redis

from service.queue.jobs import EnhanceOptions, Job, JobResult, new_job_id, now_ms
from service.queue.keys import GROUP, Keys
from testkit.images import dark_scene, encode
from testkit.machine import free_port
from testkit.stack import wait_until
from tests.integration.conftest import StackFactory, inferences

PNG = encode(dark_scene(64, 96), "PNG")
PHOTO = encode(dark_scene(400, 600), "JPEG", quality=90)


def _enqueue_directly(
    r: redis.Redis,
    keys: Keys,
    *,
    enqueued_at_ms: int,
    deadline_at_ms: int,
    attempts_so_far: int = 0,
) -> Job:
    """Put a job on the stream as the gateway would, with a history the test chooses."""
    job = Job(
        id=new_job_id(),
        reply_to="",
        options=EnhanceOptions(),
        width=96,
        height=64,
        enqueued_at_ms=enqueued_at_ms,
        deadline_at_ms=deadline_at_ms,
    )
    r.set(keys.upload(job.id), PNG, ex=60)
    if attempts_so_far:
        r.set(keys.attempts(job.id), attempts_so_far)
    r.xadd(keys.stream, {"job": job.model_dump_json()})
    return job


def _post(client, **kw):  # type: ignore[no-untyped-def]
    return client.post("/enhance", files={"image": ("x.png", PNG)}, **kw)


def test_no_worker_means_504_at_the_deadline(stack_factory: StackFactory) -> None:
    s = stack_factory(workers=0, request_deadline_s=1.0)
    started = time.monotonic()
    response = _post(s.client)
    assert response.status_code == 504 and response.json()["code"] == "deadline_exceeded"
    assert 0.9 < time.monotonic() - started < 5


def test_job_held_by_a_dead_worker_is_reclaimed(stack_factory: StackFactory) -> None:
    s = stack_factory(workers=0, claim_idle_ms=500, claim_interval_s=0.2)
    keys = Keys(s.settings.key_prefix)
    r = redis.Redis.from_url(s.settings.redis_url)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(_post, s.client)
        taken: list = []  # type: ignore[type-arg]

        def dead_worker_takes_it() -> bool:
            taken.extend(r.xreadgroup(GROUP, "dead", {keys.stream: ">"}, count=1) or [])
            return bool(taken)

        wait_until(dead_worker_takes_it, 10, "job in stream")
        s.add_worker("rescuer")
        response = pending.result(timeout=30)
    assert response.status_code == 200, response.text
    assert r.xlen(keys.stream) == 0  # acked and deleted
    r.close()


def test_sigkill_of_every_worker_loses_no_accepted_job(stack_factory: StackFactory) -> None:
    s = stack_factory(workers=1, claim_idle_ms=800, claim_interval_s=0.3, batch_max_size=2)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(_post, s.client) for _ in range(8)]
        time.sleep(0.4)
        for proc in s.workers:
            proc.kill()
        s.add_worker("after-crash")
        responses = [f.result(timeout=60) for f in futures]
    assert [r.status_code for r in responses] == [200] * 8


def test_poison_job_fails_after_max_attempts_and_the_queue_moves_on(
    stack_factory: StackFactory,
) -> None:
    s = stack_factory(workers=0, max_attempts=2)
    keys = Keys(s.settings.key_prefix)
    r = redis.Redis.from_url(s.settings.redis_url)
    job = _enqueue_directly(
        r, keys, enqueued_at_ms=now_ms(), deadline_at_ms=now_ms() + 60_000, attempts_so_far=2
    )  # two workers already died on it
    s.add_worker()
    wait_until(lambda: r.exists(keys.result(job.id)) == 1, 20, "poison result")
    result = JobResult.unpack(r.get(keys.result(job.id)))  # type: ignore[arg-type]
    assert result.status == "failed" and "gave up after 2 attempts" in (result.error_detail or "")
    assert _post(s.client).status_code == 200
    r.close()


def test_triton_down_gives_503_readiness_and_no_hang(stack_factory: StackFactory) -> None:
    s = stack_factory(
        triton_grpc_url=f"127.0.0.1:{free_port()}", request_deadline_s=2.0, retry_backoff_s=0.2
    )
    ready = s.client.get("/readyz")
    assert ready.status_code == 503 and ready.json()["checks"]["triton"] is False
    assert "retry-after" in ready.headers
    started = time.monotonic()
    response = _post(s.client)
    assert response.status_code in (503, 504) and time.monotonic() - started < 6


def test_expired_job_is_not_run(stack_factory: StackFactory) -> None:
    s = stack_factory(workers=0)
    keys = Keys(s.settings.key_prefix)
    r = redis.Redis.from_url(s.settings.redis_url)
    job = _enqueue_directly(r, keys, enqueued_at_ms=now_ms() - 5000, deadline_at_ms=now_ms() - 1)
    s.add_worker()
    wait_until(lambda: r.exists(keys.result(job.id)) == 1, 20, "expired result")
    result = JobResult.unpack(r.get(keys.result(job.id)))  # type: ignore[arg-type]
    assert result.status == "failed" and result.error_code == "deadline_exceeded"
    assert result.inference_ms == 0
    r.close()


def test_worker_stops_cleanly_on_sigterm(stack_factory: StackFactory) -> None:
    s = stack_factory(workers=1)
    assert _post(s.client).status_code == 200
    proc = s.workers[0]
    proc.popen.terminate()
    assert proc.popen.wait(timeout=10) == 0
    assert "stopped" in proc.tail()


def test_job_whose_client_gave_up_is_not_run(stack_factory: StackFactory) -> None:
    s = stack_factory(workers=0)
    keys = Keys(s.settings.key_prefix)
    r = redis.Redis.from_url(s.settings.redis_url)
    with pytest.raises(httpx.ReadTimeout), httpx.Client(base_url=s.url, timeout=0.7) as impatient:
        _post(impatient)
    wait_until(lambda: len(r.keys(keys.cancelled("*"))) == 1, 5, "cancel mark")
    job_id = r.keys(keys.cancelled("*"))[0].decode().rsplit(":", 1)[1]
    s.add_worker()
    wait_until(lambda: r.exists(keys.result(job_id)) == 1, 20, "cancelled result")
    result = JobResult.unpack(r.get(keys.result(job_id)))  # type: ignore[arg-type]
    assert result.error_code == "cancelled" and result.inference_ms == 0
    r.close()


@pytest.mark.parametrize(
    "comes_back_as", ["worker-0", "worker-1"], ids=["same-name", "another-worker"]
)
def test_worker_killed_mid_load_costs_sync_requests_no_504(
    stack_factory: StackFactory, comes_back_as: str
) -> None:
    """Default settings: the jobs of a SIGKILLed worker are taken again within seconds, by the
    worker restarted under its name (as sllen run does) or by another one (reclaim)."""
    s = stack_factory(workers=1)
    keys = Keys(s.settings.key_prefix)
    r = redis.Redis.from_url(s.settings.redis_url)
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            futures = [
                pool.submit(s.client.post, "/enhance", files={"image": ("p.jpg", PHOTO)})
                for _ in range(18)
            ]
            wait_until(lambda: r.xpending(keys.stream, GROUP)["pending"] > 0, 30, "jobs taken")
            s.workers[0].kill()
            time.sleep(1.0)  # sllen run restarts a dead child after 1 s
            s.add_worker(comes_back_as)
            responses = [f.result(timeout=60) for f in futures]
        statuses = [resp.status_code for resp in responses]
        assert statuses == [200] * 18, [resp.text for resp in responses if resp.status_code != 200]
    finally:
        r.close()


def test_live_worker_keeps_its_slow_jobs_from_being_reclaimed(
    stack_factory: StackFactory, triton_url: str
) -> None:
    """With a reclaim idle time shorter than each job, the holder's touches keep them its own:
    a second worker reclaims nothing and no photo is computed twice."""
    # A long deadline: three 3-megapixel photos take a while on two shared cores.
    s = stack_factory(workers=1, claim_idle_ms=1000, claim_interval_s=0.2, request_deadline_s=120.0)
    big = encode(dark_scene(1536, 2048), "JPEG", quality=90)  # seconds each on this CPU
    before = inferences(triton_url)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        futures = [
            pool.submit(s.client.post, "/enhance", files={"image": ("b.jpg", big)})
            for _ in range(3)
        ]
        time.sleep(0.5)
        other = s.add_worker("other")
        statuses = [f.result(timeout=150).status_code for f in futures]
    assert statuses == [200] * 3
    assert inferences(triton_url) - before == 3
    assert "reclaimed" not in other.tail(200)
