"""Requests the gateway refuses before anything is queued: no Redis or Triton needed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config import Settings
from testkit.images import dark_scene, encode
from testkit.machine import free_port


@pytest.fixture
def client() -> Iterator[TestClient]:
    dead = free_port()  # nothing listens: these requests must not need Redis or Triton
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{dead}/0",
        triton_grpc_url=f"127.0.0.1:{dead}",
        max_upload_bytes=200_000,
        max_image_pixels=1_000_000,
        redis_socket_timeout_s=0.5,
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        yield c


def _problem(response, status: int) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["type"].startswith("https://") and body["detail"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def test_text_upload_is_415(client: TestClient) -> None:
    _problem(
        client.post("/enhance", files={"image": ("x.jpg", b"not an image", "image/jpeg")}), 415
    )


def test_declared_type_and_name_are_not_trusted(client: TestClient) -> None:
    svg = b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>"
    _problem(client.post("/enhance", files={"image": ("x.png", svg, "image/png")}), 415)


def test_too_many_pixels_is_413(client: TestClient) -> None:
    data = encode(dark_scene(1100, 1000), "JPEG", quality=20)
    _problem(client.post("/enhance", files={"image": ("x.jpg", data)}), 413)


def test_body_over_the_byte_limit_is_413(client: TestClient) -> None:
    _problem(
        client.post("/enhance", files={"image": ("x.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 400_000)}),
        413,
    )


@pytest.mark.parametrize("query", ["format=gif", "quality=0", "quality=101", "mask=perhaps"])
def test_bad_options_are_422(client: TestClient, query: str) -> None:
    data = encode(dark_scene(40, 40), "PNG")
    body = _problem(client.post(f"/enhance?{query}", files={"image": ("x.png", data)}), 422)
    assert body["errors"]


def test_missing_file_field_is_422(client: TestClient) -> None:
    data = encode(dark_scene(40, 40), "PNG")
    _problem(client.post("/enhance", files={"photo": ("x.png", data)}), 422)


def test_redis_down_is_503_with_retry_after(client: TestClient) -> None:
    data = encode(dark_scene(40, 40), "PNG")
    response = client.post("/enhance", files={"image": ("x.png", data)})
    _problem(response, 503)
    assert int(response.headers["retry-after"]) >= 1


def test_readyz_is_503_when_dependencies_are_down(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"redis": False, "triton": False}
    assert client.get("/healthz").status_code == 200


def test_request_id_is_echoed_or_minted(client: TestClient) -> None:
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    minted = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}).headers[
        "x-request-id"
    ]
    assert minted != "bad id with spaces" and len(minted) == 32


def test_unknown_route_is_problem_json(client: TestClient) -> None:
    _problem(client.get("/nope"), 404)


def test_cors_is_off_by_default_and_configurable() -> None:
    dead = free_port()
    base = {"redis_url": f"redis://127.0.0.1:{dead}/0", "triton_grpc_url": f"127.0.0.1:{dead}"}
    preflight = {"origin": "https://app.example", "access-control-request-method": "POST"}
    with TestClient(create_app(Settings(**base))) as c:  # type: ignore[arg-type]
        assert "access-control-allow-origin" not in c.options("/enhance", headers=preflight).headers
    allowed = Settings(**base, cors_origins=["https://app.example"])  # type: ignore[arg-type]
    with TestClient(create_app(allowed)) as c:
        r = c.options("/enhance", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "https://app.example"
