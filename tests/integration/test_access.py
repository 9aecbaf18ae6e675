"""API keys, per-key rate limits and job ownership, through the real stack."""

from __future__ import annotations

import pytest

from service.api.access import hash_key
from testkit.images import dark_scene, encode
from testkit.stack import Stack
from tests.integration.conftest import StackFactory

PNG = encode(dark_scene(40, 40), "PNG")
ALICE, BOB = "alice-key-0123456789", "bob-key-9876543210"


@pytest.fixture(scope="module")
def keyed(redis_url: str, triton_url: str):  # type: ignore[no-untyped-def]
    from tests.integration.conftest import start_stack

    s = start_stack(redis_url, triton_url, api_key_hashes=[hash_key(ALICE), hash_key(BOB)])
    yield s
    s.close()


def _post(s: Stack, path: str = "/enhance", **headers: str):  # type: ignore[no-untyped-def]
    return s.client.post(path, files={"image": ("k.png", PNG)}, headers=headers)


def test_missing_or_wrong_key_is_401(keyed: Stack) -> None:
    r = _post(keyed)
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert _post(keyed, authorization="Bearer not-a-key").status_code == 401


def test_bearer_and_x_api_key_both_work(keyed: Stack) -> None:
    assert _post(keyed, authorization=f"Bearer {ALICE}").status_code == 200
    assert _post(keyed, **{"x-api-key": BOB}).status_code == 200


def test_jobs_are_readable_only_by_their_owner(keyed: Stack) -> None:
    created = _post(keyed, "/v1/jobs", authorization=f"Bearer {ALICE}")
    url = created.json()["status_url"]
    assert keyed.client.get(url, headers={"authorization": f"Bearer {ALICE}"}).status_code == 200
    assert keyed.client.get(url, headers={"authorization": f"Bearer {BOB}"}).status_code == 404
    assert keyed.client.get(url).status_code == 401


def test_health_stays_open(keyed: Stack) -> None:
    assert keyed.client.get("/healthz").status_code == 200


def test_rate_limit_per_key_answers_429_with_retry_after(stack_factory: StackFactory) -> None:
    s = stack_factory(api_key_hashes=[hash_key(ALICE), hash_key(BOB)], rate_limit_per_minute=3)
    statuses = [_post(s, **{"x-api-key": ALICE}).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = _post(s, **{"x-api-key": ALICE})
    assert limited.status_code == 429 and 1 <= int(limited.headers["retry-after"]) <= 60
    assert _post(s, **{"x-api-key": BOB}).status_code == 200  # limits are per key


def test_settings_refuse_a_raw_key_where_a_digest_belongs() -> None:
    from pydantic import ValidationError

    from service.config import Settings

    with pytest.raises(ValidationError):
        Settings(api_key_hashes=[ALICE])


def test_keys_and_image_bytes_never_reach_the_logs(keyed: Stack) -> None:
    marker = b"\x89PNG"
    assert _post(keyed, authorization=f"Bearer {ALICE}").status_code == 200
    assert _post(keyed, authorization="Bearer wrong-secret-key-123").status_code == 401
    logs = b"".join(p.log_path.read_bytes() for p in keyed.procs.values())
    assert b"alice-key" not in logs and b"wrong-secret-key" not in logs
    assert marker not in logs and b"iVBORw0KGgo" not in logs  # raw or base64 PNG
