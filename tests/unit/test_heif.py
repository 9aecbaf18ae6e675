"""HEIC and AVIF uploads: sniffing, limits from the header, orientation, colour, broken files."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service import heif, imaging
from service.errors import PayloadTooLarge, UndecodableImage, UnsupportedMediaType
from testkit.images import dark_scene, encode_avif, encode_heic

LIMITS = {"max_pixels": 4096 * 4096, "max_side_px": 4096}


def _marked(h: int = 40, w: int = 64) -> np.ndarray:
    """Mid-grey with a bright band along the top rows, to see where the top ends up."""
    rgb = np.full((h, w, 3), 90, np.uint8)
    rgb[:8] = 230
    return rgb


@pytest.mark.parametrize(("make", "fmt"), [(encode_heic, "HEIF"), (encode_avif, "AVIF")])
def test_sniffed_from_the_bytes(make, fmt: str) -> None:  # type: ignore[no-untyped-def]
    data = make(dark_scene(20, 30, peak=200))
    assert imaging.sniff_format(data) == fmt
    info = imaging.inspect(data, **LIMITS)
    assert (info.format, info.width, info.height) == (fmt, 30, 20)


def test_other_iso_media_files_are_not_taken_for_photos() -> None:
    mp4 = struct.pack(">I", 24) + b"ftypisom" + b"\0\0\2\0" + b"isomiso2"
    assert heif.sniff(mp4 + b"\0" * 64) is None


@pytest.mark.parametrize(("make", "fmt"), [(encode_heic, "HEIF"), (encode_avif, "AVIF")])
@pytest.mark.parametrize(
    ("orientation", "band"),
    [(1, "top"), (6, "right"), (3, "bottom"), (8, "left")],
)
def test_orientation_is_applied(make, fmt: str, orientation: int, band: str) -> None:  # type: ignore[no-untyped-def]
    data = make(_marked(), orientation)
    info = imaging.inspect(data, **LIMITS)
    rgb = imaging.decode(data).rgb
    sideways = orientation in (6, 8)
    assert rgb.shape[:2] == ((64, 40) if sideways else (40, 64))
    assert (info.height, info.width) == rgb.shape[:2]  # the header's size is the answer's
    edges = {
        "top": rgb[:4].mean(),
        "bottom": rgb[-4:].mean(),
        "left": rgb[:, :4].mean(),
        "right": rgb[:, -4:].mean(),
    }
    assert max(edges, key=lambda k: edges[k]) == band


def test_heic_declaring_a_huge_size_is_refused_from_its_header() -> None:
    data = bytearray(encode_heic(dark_scene(64, 64, peak=200)))  # coded as is: no crop box
    ispe = data.find(b"ispe")
    struct.pack_into(">II", data, ispe + 8, 60000, 60000)
    with pytest.raises(PayloadTooLarge):
        imaging.inspect(bytes(data), **LIMITS)


@pytest.mark.parametrize("make", [encode_heic, encode_avif])
def test_truncated_or_corrupt_files_are_undecodable(make) -> None:  # type: ignore[no-untyped-def]
    data = make(dark_scene(120, 160, peak=200))
    ftyp = int.from_bytes(data[:4], "big")
    garbled_meta = data[:ftyp] + bytes(200) + data[ftyp + 200 :]
    for broken in (data[: len(data) // 2], data[:40], garbled_meta):
        with pytest.raises(UndecodableImage):
            imaging.inspect(broken, **LIMITS)
            imaging.decode(broken)


def test_heic_with_display_p3_primaries_is_converted_to_srgb() -> None:
    # A flat colour in Display P3 (nclx primaries 12, sRGB transfer), as iPhones tag their photos.
    p3 = np.zeros((32, 32, 3), np.uint8)
    p3[:] = (200, 120, 60)
    data = encode_heic(p3, quality=-1, chroma=444, color_primaries=12, transfer_characteristics=13)
    got = imaging.decode(data).rgb[16, 16].astype(float)

    def lin(v: np.ndarray) -> np.ndarray:
        v = v / 255
        return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)

    # Display P3 -> sRGB in linear light (the matrix published with the DCI-P3 D65 definition).
    m = np.array([[1.2249, -0.2247, 0.0], [-0.0420, 1.0419, 0.0], [-0.0197, -0.0786, 1.0979]])
    linear = np.clip(m @ lin(np.array([200.0, 120.0, 60.0])), 0, 1)
    want = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055) * 255
    assert np.abs(got - want).max() <= 3, (got, want)
    assert np.abs(got - [200, 120, 60]).max() >= 10  # the conversion did something


def test_heic_metadata_is_kept_only_when_asked() -> None:
    data = encode_heic(_marked(), 6)
    assert imaging.decode(data, "strip").exif is None
    kept = imaging.decode(data, "keep").exif
    assert kept is not None
    from PIL import Image

    exif = Image.Exif()
    exif.load(kept)
    assert exif.get(0x0112) == 1  # the pixels are upright: no stale rotation


@pytest.mark.parametrize(
    ("upload", "requested", "answer"),
    [
        ("JPEG", "auto", "jpeg"),
        ("PNG", "auto", "png"),
        ("WEBP", "auto", "webp"),
        ("AVIF", "auto", "avif"),
        ("HEIF", "auto", "jpeg"),
        ("BMP", "auto", "png"),
        ("HEIF", "png", "png"),
        ("JPEG", "avif", "avif"),
    ],
)
def test_answer_format(upload: imaging.InputFormat, requested, answer: str) -> None:  # type: ignore[no-untyped-def]
    assert imaging.answer_format(requested, upload) == answer


_SAMPLES = {
    "heic": encode_heic(dark_scene(48, 64, peak=200)),
    "avif": encode_avif(dark_scene(48, 64)),
}


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(sorted(_SAMPLES)),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(20, 10**6),
)
def test_damaged_files_raise_only_our_errors(kind: str, flips: list, cut: int) -> None:  # type: ignore[type-arg]
    data = bytearray(_SAMPLES[kind][:cut])
    for at, value in flips:
        data[at % len(data)] = value
    try:
        imaging.inspect(bytes(data), **LIMITS)
        imaging.decode(bytes(data))
    except (UnsupportedMediaType, UndecodableImage, PayloadTooLarge):
        pass
