"""Every case of tests/hostile.py through the real stack: a right 200 or a quick 4xx, no 5xx."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from testkit.images import dark_scene, decode, encode
from testkit.stack import Stack
from tests.hostile import CASES, Case


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_upload(stack: Stack, case: Case) -> None:
    data = case.make()
    started = time.perf_counter()
    response = stack.client.post("/enhance", files={"image": ("upload.jpg", data, "image/jpeg")})
    elapsed_s = time.perf_counter() - started
    assert response.status_code == case.status, response.text
    if case.status == 200:
        h, w = decode(response.content).shape[:2]
        assert (w, h) == case.size
    else:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == case.status
        if case.status in (413, 415):
            assert elapsed_s < 0.5  # refused from the header, before any pixel is decoded


def test_body_over_the_limit_is_refused_while_streaming(stack: Stack) -> None:
    limit = stack.settings.max_upload_bytes
    sent = 0

    def chunks() -> Iterator[bytes]:  # chunked: no Content-Length to refuse it up front
        nonlocal sent
        head = b'--b\r\nContent-Disposition: form-data; name="image"; filename="x.png"\r\n\r\n'
        yield head + b"\x89PNG\r\n\x1a\n"
        while sent < limit * 4:
            sent += 1 << 20
            yield b"\0" * (1 << 20)

    response = stack.client.post(
        "/enhance", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


@pytest.mark.parametrize(
    ("files", "params"),
    [
        ({"photo": ("x.png", b"")}, {}),
        ({}, {}),
        ({"image": ("x.png", b"")}, {"format": "tiff"}),
        ({"image": ("x.png", b"")}, {"quality": "abc"}),
        ({"image": ("x.png", b"")}, {"mask": "maybe"}),
    ],
    ids=["misnamed-field", "no-file", "bad-format", "bad-quality", "bad-mask"],
)
def test_bad_requests_are_422(stack: Stack, files: dict, params: dict) -> None:  # type: ignore[type-arg]
    png = encode(dark_scene(20, 20), "PNG")
    files = {k: (v[0], png) for k, v in files.items()}
    if not files:
        response = stack.client.post("/enhance", params=params, data={"x": "1"})
    else:
        response = stack.client.post("/enhance", params=params, files=files)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
