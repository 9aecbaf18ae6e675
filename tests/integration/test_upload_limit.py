"""The upload byte limit holds exactly, enforced once while the body streams in: a body of
``max_upload_bytes`` is served, one byte more is 413, declared or chunked, raw or multipart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.images import dark_scene, encode
from testkit.stack import Stack
from tests.integration.conftest import StackFactory

LIMIT = 200_000
PNG = encode(dark_scene(48, 64, seed=4), "PNG")


@pytest.fixture
def small(stack_factory: StackFactory) -> Stack:
    return stack_factory(max_upload_bytes=LIMIT)


def _padded(size: int) -> bytes:
    return PNG + b"\0" * (size - len(PNG))  # after IEND: decoders ignore it


def _chunked(data: bytes) -> Iterator[bytes]:  # no Content-Length: counted as it arrives
    for i in range(0, len(data), 16_384):
        yield data[i : i + 16_384]


def test_raw_body_limit_is_exact(small: Stack) -> None:
    raw = {"content-type": "image/png"}
    assert small.client.post("/enhance", content=_padded(LIMIT), headers=raw).status_code == 200
    over = small.client.post("/enhance", content=_padded(LIMIT + 1), headers=raw)
    assert over.status_code == 413 and over.json()["code"] == "payload_too_large"
    streamed = small.client.post("/enhance", content=_chunked(_padded(LIMIT + 1)), headers=raw)
    assert streamed.status_code == 413
    ok = small.client.post("/enhance", content=_chunked(_padded(LIMIT)), headers=raw)
    assert ok.status_code == 200


def test_multipart_image_of_the_limit_fits_its_envelope(small: Stack) -> None:
    files = {"image": ("p.png", _padded(LIMIT))}
    assert small.client.post("/enhance", files=files).status_code == 200
    too_big = {"image": ("p.png", _padded(LIMIT + 70_000))}  # past the 64 KiB envelope
    assert small.client.post("/enhance", files=too_big).status_code == 413
