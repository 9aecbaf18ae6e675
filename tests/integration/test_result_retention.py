"""What Redis holds after delivery, and how much it may hold: results do not pile up."""

from __future__ import annotations

from pathlib import Path

import redis

from service.queue.jobs import EnhanceOptions, Job, new_job_id, now_ms
from service.queue.keys import Keys
from testkit.images import dark_scene, encode
from testkit.stack import Stack, wait_until
from tests.conftest import start_redis
from tests.integration.conftest import StackFactory

PNG = encode(dark_scene(64, 96), "PNG")


def _result_keys(r: redis.Redis, stack: Stack) -> list[bytes]:
    return list(r.scan_iter(Keys(stack.settings.key_prefix).result("*")))


def test_delivered_sync_result_is_deleted_once_read(stack_factory: StackFactory) -> None:
    s = stack_factory()
    r = redis.Redis.from_url(s.settings.redis_url)
    try:
        for _ in range(3):
            assert s.client.post("/enhance", files={"image": ("x.png", PNG)}).status_code == 200
        assert _result_keys(r, s) == []
    finally:
        r.close()


def test_unread_sync_result_expires_in_seconds(stack_factory: StackFactory) -> None:
    s = stack_factory()
    keys = Keys(s.settings.key_prefix)
    r = redis.Redis.from_url(s.settings.redis_url)
    try:
        # A sync job whose gateway is gone: nobody will read its result.
        job = Job(
            id=new_job_id(),
            reply_to=keys.notify_channel("gone"),
            options=EnhanceOptions(),
            width=96,
            height=64,
            enqueued_at_ms=now_ms(),
            deadline_at_ms=now_ms() + 5_000,
        )
        r.set(keys.upload(job.id), PNG, ex=60)
        r.xadd(keys.stream, {"job": job.model_dump_json()})
        wait_until(lambda: r.exists(keys.result(job.id)) == 1, 30, "result")
        # Kept until the request's deadline and a few seconds more, not SLLEN_RESULT_TTL_S.
        assert 0 < r.ttl(keys.result(job.id)) <= 5 + s.settings.sync_result_ttl_s
    finally:
        r.close()


def test_async_result_keeps_its_ttl(stack_factory: StackFactory) -> None:
    s = stack_factory()
    keys = Keys(s.settings.key_prefix)
    r = redis.Redis.from_url(s.settings.redis_url)
    try:
        created = s.client.post("/v1/jobs", files={"image": ("j.png", PNG)}).json()
        url = created["status_url"]
        wait_until(lambda: s.client.get(url).json()["status"] == "done", 30, "job done")
        for _ in range(2):  # read as often as the client likes
            assert s.client.get(f"{url}/image").status_code == 200
        ttl = r.ttl(keys.result(created["id"]))
        assert s.settings.result_ttl_s - 60 < ttl <= s.settings.result_ttl_s
    finally:
        r.close()


def test_local_redis_has_a_memory_cap_and_never_evicts(tmp_path: Path) -> None:
    proc, url = start_redis(tmp_path / "r")
    r = redis.Redis.from_url(url)
    try:
        assert int(r.config_get("maxmemory")["maxmemory"]) > 0
        assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    finally:
        r.close()
        proc.stop()


def test_admission_refuses_new_work_before_redis_memory_cap(
    stack_factory: StackFactory, tmp_path: Path
) -> None:
    proc, url = start_redis(tmp_path / "r")
    r = redis.Redis.from_url(url)
    try:
        s = stack_factory(redis_url=url, redis_admit_memory_fraction=0.8)
        assert s.client.post("/enhance", files={"image": ("x.png", PNG)}).status_code == 200
        # A cap that the memory in use already fills to 85%: under the cap, over the fraction.
        used = int(r.info("memory")["used_memory"])
        r.config_set("maxmemory", int(used / 0.85))
        for path in ("/enhance", "/v1/jobs"):
            refused = s.client.post(path, files={"image": ("x.png", PNG)})
            assert refused.status_code == 503, refused.text
            assert refused.json()["code"] == "overloaded"
            assert int(refused.headers["retry-after"]) >= 1
        assert r.xlen(Keys(s.settings.key_prefix).stream) == 0  # nothing half-queued
        r.config_set("maxmemory", used * 4)  # room again: admitted again
        assert s.client.post("/enhance", files={"image": ("x.png", PNG)}).status_code == 200
    finally:
        r.close()
        proc.stop()
