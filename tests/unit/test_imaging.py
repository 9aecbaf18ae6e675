from __future__ import annotations

import io
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from service import imaging
from service.errors import PayloadTooLarge, UndecodableImage, UnsupportedMediaType
from testkit.images import dark_scene, decode, encode


def decode_rgb(data: bytes) -> np.ndarray:
    return imaging.decode(data).rgb


LIMITS = {"max_pixels": 4096 * 4096, "max_side_px": 4096}


@pytest.mark.parametrize(
    ("fmt", "expected"), [("PNG", "PNG"), ("JPEG", "JPEG"), ("WEBP", "WEBP"), ("BMP", "BMP")]
)
def test_sniff_reads_magic_bytes(fmt: str, expected: str) -> None:
    assert imaging.sniff_format(encode(dark_scene(40, 60), fmt)) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello world",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"%PDF-1.7\n",
        b"GIF89a" + b"\0" * 20,
    ],
)
def test_sniff_refuses_non_images(data: bytes) -> None:
    with pytest.raises(UnsupportedMediaType):
        imaging.sniff_format(data)


def test_inspect_reports_size_without_decoding() -> None:
    info = imaging.inspect(encode(dark_scene(40, 60), "PNG"), **LIMITS)
    assert (info.width, info.height, info.content_type) == (60, 40, "image/png")


def test_inspect_applies_exif_rotation_to_dimensions() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    data = encode(dark_scene(40, 60), "JPEG", exif=exif.tobytes())
    info = imaging.inspect(data, **LIMITS)
    assert (info.width, info.height) == (40, 60)
    assert decode_rgb(data).shape == (60, 40, 3)


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims a huge size (a decompression bomb's calling card)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def test_bomb_is_refused_from_the_header_quickly() -> None:
    started = time.perf_counter()
    with pytest.raises(PayloadTooLarge):
        imaging.inspect(_png_claiming(30000, 30000), **LIMITS)
    assert time.perf_counter() - started < 0.1


def test_pixel_limit_is_enforced() -> None:
    with pytest.raises(PayloadTooLarge):
        imaging.inspect(encode(dark_scene(100, 100), "PNG"), max_pixels=5000, max_side_px=4096)


def test_truncated_image_passes_header_but_fails_decode() -> None:
    data = encode(dark_scene(200, 300), "PNG")[:600]
    imaging.inspect(data, **LIMITS)
    with pytest.raises(UndecodableImage):
        decode_rgb(data)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I;16"])
def test_decode_normalises_modes_to_rgb(mode: str) -> None:
    rgb = dark_scene(20, 30)
    if mode == "I;16":
        im = Image.fromarray(rgb[..., 1].astype(np.uint16) * 257)
    else:
        im = Image.fromarray(rgb).convert(mode)
    buf = io.BytesIO()
    im.save(buf, format="JPEG" if mode == "CMYK" else "PNG")
    out = decode_rgb(buf.getvalue())
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8
    if mode == "I;16":
        assert np.abs(out[..., 0].astype(int) - rgb[..., 1]).max() <= 1


def test_pad_for_model_replicates_edges() -> None:
    tiny = np.arange(6, dtype=np.uint8).reshape(1, 2, 3)
    padded = imaging.pad_for_model(tiny, 32)
    assert padded.shape == (32, 32, 3)
    assert (padded[:1, :2] == tiny).all() and (padded[31, 31] == tiny[0, 1]).all()


@pytest.mark.parametrize(
    ("shape", "bucket", "expected"),
    [
        ((400, 600), 0, (400, 600)),
        ((400, 600), 128, (512, 640)),
        ((512, 640), 128, (512, 640)),
        ((20, 700), 256, (256, 768)),
        ((401, 599), 64, (448, 640)),
    ],
)
def test_pad_for_model_rounds_up_to_buckets(
    shape: tuple[int, int], bucket: int, expected: tuple[int, int]
) -> None:
    image = dark_scene(*shape, peak=255)
    padded = imaging.pad_for_model(image, 32, bucket)
    assert padded.shape[:2] == expected
    assert (padded[: shape[0], : shape[1]] == image).all()  # the photo itself is untouched


ENCODE_DEFAULTS = {"png_compress_level": 1, "jpeg_quality": 90, "webp_quality": 85}


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "avif"])
def test_encode_roundtrip(fmt: imaging.OutputFormat) -> None:
    rgb = dark_scene(30, 50, peak=255)
    data = imaging.encode_image(rgb, fmt, quality=95, avif_quality=75, **ENCODE_DEFAULTS)
    back = decode(data)
    assert back.shape == rgb.shape
    if fmt == "png":
        assert (back == rgb).all()


def test_mask_png_keeps_class_ids() -> None:
    mask = (np.arange(33 * 47).reshape(33, 47) % 11).astype(np.uint8)
    back = decode(imaging.encode_mask(mask, png_compress_level=1))
    assert back.dtype == np.uint8 and (back == mask).all()


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise_anything_but_our_errors(data: bytes) -> None:
    try:
        imaging.inspect(data, **LIMITS)
        decode_rgb(data)
    except (UnsupportedMediaType, UndecodableImage, PayloadTooLarge):
        pass


@settings(max_examples=30, deadline=None)
@given(
    st.integers(1, 64),
    st.integers(1, 64),
    st.sampled_from(["PNG", "JPEG", "WEBP", "BMP"]),
    st.integers(0, 2**32 - 1),
)
def test_any_small_image_decodes_to_its_size(h: int, w: int, fmt: str, seed: int) -> None:
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    out = decode_rgb(encode(rgb, fmt))
    assert out.shape == (h, w, 3)


def _jpeg_with_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[0x0112] = 6  # orientation
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.0)}  # GPS IFD
    return encode(dark_scene(30, 50), "JPEG", exif=exif.tobytes())


def _exif_of(data: bytes) -> Image.Exif:
    with Image.open(io.BytesIO(data)) as im:
        return im.getexif()


@pytest.mark.parametrize(
    ("policy", "make", "gps"),
    [("strip", None, False), ("keep", "TestCam", False), ("keep-all", "TestCam", True)],
)
def test_metadata_policy(policy: imaging.MetadataPolicy, make: str | None, gps: bool) -> None:
    decoded = imaging.decode(_jpeg_with_exif(), policy)
    assert decoded.rgb.shape == (50, 30, 3)  # upright
    out = imaging.encode_image(
        decoded.rgb,
        "jpeg",
        quality=90,
        exif=decoded.exif,
        png_compress_level=1,
        jpeg_quality=90,
        webp_quality=80,
        avif_quality=75,
    )
    exif = _exif_of(out)
    assert exif.get(0x010F) == make
    assert (0x8825 in exif) is gps
    if make:
        assert exif.get(0x0112) == 1  # pixels are upright: no stale rotation


def test_icc_profile_is_converted_to_srgb() -> None:
    from PIL import ImageCms

    rgb = dark_scene(20, 30, peak=200)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    out = decode_rgb(encode(rgb, "PNG", icc_profile=srgb))
    assert np.abs(out.astype(int) - rgb).max() <= 3


def test_broken_icc_profile_is_ignored() -> None:
    rgb = dark_scene(20, 30)
    out = decode_rgb(encode(rgb, "PNG", icc_profile=b"not a profile"))
    assert (out == rgb).all()


def pillow_pixels(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


@pytest.mark.parametrize(
    ("mode", "options"),
    [
        ("RGB", {"quality": 90}),
        ("RGB", {"quality": 95, "subsampling": 0}),
        ("RGB", {"quality": 80, "progressive": True}),
        ("L", {"quality": 90}),
    ],
)
def test_upright_jpeg_decodes_to_the_pixels_pillow_gives(mode: str, options: dict) -> None:
    im = Image.fromarray(dark_scene(61, 97, seed=3, peak=180)).convert(mode)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", **options)
    assert np.array_equal(decode_rgb(buf.getvalue()), pillow_pixels(buf.getvalue()))


def test_a_jpeg_with_an_icc_profile_is_converted_on_the_fast_path_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from PIL import ImageCms

    from service import colour

    seen: list[bytes | None] = []
    convert = colour.to_srgb
    monkeypatch.setattr(
        colour, "to_srgb", lambda a, icc, nclx=None: seen.append(icc) or convert(a, icc, nclx)
    )

    rgb = dark_scene(20, 30, peak=200)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    data = encode(rgb, "JPEG", quality=95, icc_profile=srgb)
    assert np.array_equal(decode_rgb(data), convert(pillow_pixels(data), srgb))
    assert seen == [srgb]


def test_a_truncated_jpeg_fails_as_undecodable() -> None:
    data = encode(dark_scene(200, 300, peak=200), "JPEG", quality=90)
    for cut in (len(data) // 2, len(data) - 10):
        with pytest.raises(UndecodableImage):
            decode_rgb(data[:cut])
