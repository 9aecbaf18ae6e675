"""The client's retry policy, against a scripted transport (the server side is tested for real)."""

from __future__ import annotations

import httpx
import pytest

from service.client import RetryPolicy, SllenClient, SllenError


def _scripted(*responses: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return queue.pop(0)

    return httpx.MockTransport(handler), seen


def test_retry_after_is_honoured() -> None:
    policy = RetryPolicy(attempts=3, backoff_s=10, backoff_max_s=60)
    assert policy.delay_s(1, httpx.Response(503, headers={"Retry-After": "2"})) == 2.0
    assert policy.delay_s(1, httpx.Response(400)) is None
    assert policy.delay_s(3, httpx.Response(503)) is None  # attempts used up
    assert 5.0 <= policy.delay_s(1, None) <= 10.0  # type: ignore[operator]


def test_client_retries_transient_answers_then_succeeds() -> None:
    transport, seen = _scripted(
        httpx.Response(503, headers={"Retry-After": "0"}, json={"code": "overloaded"}),
        httpx.Response(429, headers={"Retry-After": "0"}, json={"code": "rate_limited"}),
        httpx.Response(200, content=b"PNG", headers={"content-type": "image/png"}),
    )
    with SllenClient("http://svc", transport=transport, api_key="k") as client:
        result = client.enhance(b"photo-bytes", format="png")
    assert result.image == b"PNG" and len(seen) == 3
    assert seen[0].headers["authorization"] == "Bearer k"


def test_client_raises_the_problem_of_a_permanent_error() -> None:
    transport, seen = _scripted(
        httpx.Response(415, json={"code": "unsupported_media_type", "detail": "not an image"})
    )
    with (
        SllenClient("http://svc", transport=transport) as client,
        pytest.raises(SllenError) as info,
    ):
        client.enhance(b"x")
    assert info.value.status == 415 and info.value.problem["code"] == "unsupported_media_type"
    assert len(seen) == 1


def test_retries_of_one_call_share_one_idempotency_key() -> None:
    transport, seen = _scripted(
        httpx.Response(503, headers={"Retry-After": "0"}, json={"code": "overloaded"}),
        httpx.Response(202, json={"id": "job-1"}),
        httpx.Response(202, json={"id": "job-2"}),
    )
    with SllenClient("http://svc", transport=transport) as client:
        assert client.submit(b"photo", strength=0.4) == "job-1"
        assert client.submit(b"photo") == "job-2"
    keys = [r.headers["idempotency-key"] for r in seen]
    assert keys[0] == keys[1] != keys[2]  # the retry repeats it; a new call gets a new one
    assert seen[0].url.params["strength"] == "0.4" and seen[0].url.params["format"] == "auto"


def test_a_given_idempotency_key_is_sent_as_is() -> None:
    transport, seen = _scripted(httpx.Response(200, content=b"J", headers={"content-type": "x"}))
    with SllenClient("http://svc", transport=transport) as client:
        client.enhance(b"photo", idempotency_key="order-17-photo-3")
    assert seen[0].headers["idempotency-key"] == "order-17-photo-3"
