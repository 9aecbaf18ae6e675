"""A photo through the real stack: gateway -> Redis -> worker -> Triton -> back."""

from __future__ import annotations

import base64
import concurrent.futures
import io

import numpy as np
import pytest
from PIL import Image

from service.labels import CLASSES
from testkit.images import dark_scene, decode, encode
from testkit.stack import Stack

pytestmark = pytest.mark.integration


def _luma(rgb: np.ndarray) -> float:
    return float((rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).mean())


def test_dark_photo_comes_back_brighter_at_the_same_size(stack: Stack) -> None:
    dark = dark_scene(400, 600, peak=50)
    response = stack.client.post("/enhance", files={"image": ("dark.png", encode(dark, "PNG"))})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    out = decode(response.content)
    assert out.shape == (400, 600, 3)
    assert _luma(out) > _luma(dark) + 20


def test_mask_response_carries_everything_a_client_needs(stack: Stack) -> None:
    data = encode(dark_scene(90, 130, seed=3), "JPEG", quality=92)
    response = stack.client.post(
        "/v1/enhance",
        params={"mask": "true", "format": "jpeg", "quality": 80},
        files={"image": ("x.jpg", data)},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (130, 90)
    assert body["image"]["content_type"] == "image/jpeg"
    assert decode(base64.b64decode(body["image"]["data"])).shape == (90, 130, 3)
    with Image.open(io.BytesIO(base64.b64decode(body["mask"]["data"]))) as mask_im:
        assert mask_im.format == "PNG" and mask_im.mode == "L" and mask_im.size == (130, 90)
        mask = np.asarray(mask_im)
    assert mask.max() <= 11  # 11: "unknown"
    assert [c["id"] for c in body["classes"]] == [c.id for c in CLASSES]
    assert body["model"]["name"] == "sllen" and body["model"]["version"] == "1"
    timing = body["timing_ms"]
    assert 0 <= timing["queue"] <= timing["total"] and 0 < timing["inference"] <= timing["total"]


@pytest.mark.parametrize(("fmt", "content_type"), [("jpeg", "image/jpeg"), ("webp", "image/webp")])
def test_output_format_as_form_field(stack: Stack, fmt: str, content_type: str) -> None:
    data = encode(dark_scene(64, 48), "WEBP")
    response = stack.client.post(
        "/enhance", data={"format": fmt, "quality": "70"}, files={"image": ("x", data)}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == content_type
    assert decode(response.content).shape == (64, 48, 3)


def test_exif_rotated_jpeg_comes_back_upright(stack: Stack) -> None:
    exif = Image.Exif()
    exif[0x0112] = 8
    data = encode(dark_scene(40, 100), "JPEG", exif=exif.tobytes())
    response = stack.client.post("/enhance", files={"image": ("r.jpg", data)})
    assert response.status_code == 200
    assert decode(response.content).shape == (100, 40, 3)


@pytest.mark.parametrize(("h", "w"), [(1, 1), (8, 300), (33, 47)])
def test_small_and_odd_sizes_are_enhanced(stack: Stack, h: int, w: int) -> None:
    response = stack.client.post(
        "/enhance", files={"image": ("s.bmp", encode(dark_scene(h, w), "BMP"))}
    )
    assert response.status_code == 200, response.text
    assert decode(response.content).shape[:2] == (h, w)


def test_truncated_image_is_400_from_the_worker(stack: Stack) -> None:
    data = encode(dark_scene(300, 300), "PNG")[:900]
    response = stack.client.post("/enhance", files={"image": ("t.png", data)})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "undecodable_image"


def test_concurrent_requests_all_answered_correctly(stack: Stack) -> None:
    sizes = [
        (120, 160),
        (120, 160),
        (80, 60),
        (120, 160),
        (80, 60),
        (200, 100),
        (120, 160),
        (80, 60),
    ]

    def send(i: int) -> tuple[int, tuple[int, ...], tuple[int, int]]:
        h, w = sizes[i]
        r = stack.client.post(
            "/enhance", files={"image": ("c.png", encode(dark_scene(h, w, seed=i), "PNG"))}
        )
        return r.status_code, decode(r.content).shape if r.status_code == 200 else (), (h, w)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(len(sizes))))
    for status, shape, (h, w) in results:
        assert status == 200 and shape == (h, w, 3)


def test_health_readiness_metrics_and_docs(stack: Stack) -> None:
    assert stack.client.get("/healthz").json()["status"] == "ok"
    ready = stack.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {"redis": True, "triton": True}
    stack.client.post("/enhance", files={"image": ("m.png", encode(dark_scene(32, 32), "PNG"))})
    text = stack.client.get("/metrics").text
    assert 'sllen_http_requests_total{method="POST",route="/enhance",status="200"}' in text
    assert stack.client.get("/docs").status_code == 200
    assert "/v1/enhance" in stack.client.get("/openapi.json").json()["paths"]


def test_request_id_round_trip(stack: Stack) -> None:
    r = stack.client.post(
        "/enhance",
        headers={"X-Request-ID": "client-req-7"},
        files={"image": ("m.png", encode(dark_scene(32, 32), "PNG"))},
    )
    assert r.headers["x-request-id"] == "client-req-7"


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png", "application/octet-stream"])
def test_raw_body_upload(stack: Stack, content_type: str) -> None:
    data = encode(dark_scene(50, 70), "PNG")  # declared type is ignored; the bytes decide
    r = stack.client.post(
        "/v1/enhance?format=webp", content=data, headers={"content-type": content_type}
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "image/webp" and decode(r.content).shape == (50, 70, 3)


def test_raw_body_of_another_type_is_422(stack: Stack) -> None:
    r = stack.client.post("/enhance", content=b"{}", headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["code"] == "missing_image"


def test_web_page_is_served_without_external_assets(stack: Stack) -> None:
    page = stack.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "http://" not in page.text and "https://" not in page.text
    for asset in ("/static/app.js", "/static/style.css"):
        assert stack.client.get(asset).status_code == 200


def test_twelve_megapixel_photo_comes_back_full_size(stack: Stack) -> None:
    data = encode(dark_scene(3000, 4000, seed=12), "JPEG", quality=90)
    r = stack.client.post("/enhance?format=jpeg&mask=true", files={"image": ("big.jpg", data)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["width"], body["height"]) == (4000, 3000)
    assert decode(base64.b64decode(body["image"]["data"])).shape == (3000, 4000, 3)
    assert decode(base64.b64decode(body["mask"]["data"])).shape == (3000, 4000)


def test_metadata_is_stripped_unless_asked(stack: Stack) -> None:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}
    data = encode(dark_scene(40, 60), "JPEG", exif=exif.tobytes())

    def exif_back(metadata: str) -> Image.Exif:
        r = stack.client.post(
            f"/enhance?format=jpeg&metadata={metadata}", files={"image": ("m.jpg", data)}
        )
        assert r.status_code == 200
        with Image.open(io.BytesIO(r.content)) as im:
            return im.getexif()

    assert len(exif_back("strip")) == 0
    kept = exif_back("keep")
    assert kept.get(0x010F) == "TestCam" and 0x8825 not in kept
    assert 0x8825 in exif_back("keep-all")
