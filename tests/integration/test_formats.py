"""Phone formats and answers in the upload's own format, through the real stack: HEIC and AVIF
uploads, ``format=auto`` and forced formats, and ``strength``."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from testkit.images import dark_scene, decode, encode, encode_avif, encode_heic
from testkit.stack import Stack

pytestmark = pytest.mark.integration


def _luma(rgb: np.ndarray) -> float:
    return float((rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).mean())


def _format_of(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as im:
        return str(im.format)


@pytest.mark.parametrize(("make", "answer"), [(encode_heic, "JPEG"), (encode_avif, "AVIF")])
def test_rotated_phone_photo_comes_back_upright_brighter_in_its_family(
    stack: Stack, make, answer: str
) -> None:  # type: ignore[no-untyped-def]
    dark = dark_scene(120, 200, peak=50)
    data = make(dark, 6)  # a portrait photo stored sideways, as phones do: irot in the container
    r = stack.client.post("/enhance", files={"image": ("IMG_0001.HEIC", data)})
    assert r.status_code == 200, r.text
    assert _format_of(r.content) == answer
    assert r.headers["content-type"] == f"image/{answer.lower()}"
    out = decode(r.content)
    assert out.shape == (200, 120, 3)  # upright
    assert _luma(out) > _luma(dark) + 20


@pytest.mark.parametrize("make", [encode_heic, encode_avif])
def test_truncated_phone_photo_is_400_never_5xx(stack: Stack, make) -> None:  # type: ignore[no-untyped-def]
    data = make(dark_scene(300, 400))
    for cut in (len(data) // 3, len(data) - 50):
        r = stack.client.post("/enhance", files={"image": ("t.heic", data[:cut])})
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "undecodable_image"


@pytest.mark.parametrize(
    ("upload", "answer"),
    [
        (lambda a: encode(a, "JPEG", quality=90), "JPEG"),
        (lambda a: encode(a, "PNG"), "PNG"),
        (lambda a: encode(a, "WEBP", quality=80), "WEBP"),
        (lambda a: encode(a, "BMP"), "PNG"),
        (encode_avif, "AVIF"),
        (encode_heic, "JPEG"),
    ],
    ids=["jpeg", "png", "webp", "bmp", "avif", "heic"],
)
def test_auto_answers_in_the_uploads_family(stack: Stack, upload, answer: str) -> None:  # type: ignore[no-untyped-def]
    data = upload(dark_scene(48, 64))
    for params in ({}, {"format": "auto"}):  # auto is the default
        r = stack.client.post("/enhance", params=params, files={"image": ("x", data)})
        assert r.status_code == 200, r.text
        assert _format_of(r.content) == answer


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "avif"])
def test_a_named_format_is_forced(stack: Stack, fmt: str) -> None:
    data = encode_heic(dark_scene(48, 64))
    r = stack.client.post("/enhance", params={"format": fmt}, files={"image": ("x", data)})
    assert r.status_code == 200, r.text
    assert _format_of(r.content) == fmt.upper() and r.headers["content-type"] == f"image/{fmt}"


def _enhance_png(stack: Stack, data: bytes, strength: float | None) -> np.ndarray:
    params = {"format": "png"} | ({} if strength is None else {"strength": str(strength)})
    r = stack.client.post("/enhance", params=params, files={"image": ("s.png", data)})
    assert r.status_code == 200, r.text
    return decode(r.content).astype(np.int16)


def test_strength_zero_is_the_upright_input_and_between_is_a_blend(stack: Stack) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    dark = dark_scene(60, 90, peak=50)
    jpeg = encode(dark, "JPEG", quality=95, exif=exif.tobytes())
    upright = decode(encode(decode(jpeg), "PNG"))  # Pillow's decode, before any transpose
    original = _enhance_png(stack, jpeg, 0)
    assert original.shape == (90, 60, 3)
    assert np.abs(original - np.rot90(upright, -1)).max() <= 1  # the same pixels, turned upright
    full = _enhance_png(stack, jpeg, None)
    assert np.array_equal(full, _enhance_png(stack, jpeg, 1))
    half = _enhance_png(stack, jpeg, 0.5)
    assert np.abs(half - (original + full) / 2).max() <= 1
    assert _luma(original) < _luma(half) < _luma(full)


@pytest.mark.parametrize("strength", ["-0.1", "1.5", "strong"])
def test_strength_out_of_range_is_422(stack: Stack, strength: str) -> None:
    data = encode(dark_scene(20, 20), "PNG")
    r = stack.client.post("/enhance", params={"strength": strength}, files={"image": ("x", data)})
    assert r.status_code == 422, r.text


def test_async_job_records_the_options_it_was_asked_for(stack: Stack) -> None:
    data = encode_heic(dark_scene(40, 60))
    created = stack.client.post(
        "/v1/jobs", data={"strength": "0.25"}, files={"image": ("j.heic", data)}
    )
    assert created.status_code == 202, created.text
    url = created.json()["status_url"]
    for _ in range(300):
        status = stack.client.get(url).json()
        if status["status"] in ("done", "failed"):
            break
        time.sleep(0.1)
    assert status["status"] == "done", status
    assert status["options"]["format"] == "auto" and status["options"]["strength"] == 0.25
    image = stack.client.get(status["image_url"])
    assert image.headers["content-type"] == "image/jpeg"
    assert decode(image.content).shape == (40, 60, 3)


def test_openapi_describes_formats_strength_and_idempotency(stack: Stack) -> None:
    spec = stack.client.get("/openapi.json").json()
    for path in ("/v1/enhance", "/v1/jobs"):
        op = spec["paths"][path]["post"]
        params = {p["name"]: p for p in op["parameters"]}
        assert (
            "avif" in str(params["format"]["schema"]) and "auto" in params["format"]["description"]
        )
        assert "strength" in params and params["Idempotency-Key"]["in"] == "header"
        assert "idempotency_key_reused" in op["description"]
        assert {"image/heic", "image/avif"} <= set(op["requestBody"]["content"])
