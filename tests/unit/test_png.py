"""service.png against Pillow's PNG decoder, which checks every chunk's CRC."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from service import png
from testkit.images import dark_scene


def read(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data), formats=["PNG"])
    im.load()
    return im


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    level=st.integers(0, 9),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_image_decodes_to_its_pixels(h: int, w: int, level: int, seed: int) -> None:
    rgb = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    im = read(png.encode_rgb(rgb, level))
    assert im.mode == "RGB" and im.size == (w, h)
    assert np.array_equal(np.asarray(im), rgb)


def test_a_view_with_strides_encodes_its_own_pixels() -> None:
    big = dark_scene(60, 90, seed=4, peak=255)
    crop = big[5:45, 7:70]
    assert np.array_equal(np.asarray(read(png.encode_rgb(crop, 1))), crop)


def test_chunks_are_well_formed() -> None:
    data = png.encode_rgb(dark_scene(20, 30, peak=255), 1)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body)
        kinds.append(kind)
        pos += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
    rows = zlib.decompress(data[8 + 25 + 8 : -12 - 4])  # IDAT body: after IHDR's 25 bytes
    assert set(rows[:: 1 + 3 * 30]) == {1}  # every row: the Sub filter


def test_a_damaged_file_is_refused_by_a_checking_decoder() -> None:
    data = bytearray(png.encode_rgb(dark_scene(20, 30, peak=255), 1))
    data[60] ^= 0xFF  # inside IDAT
    with pytest.raises((SyntaxError, OSError, zlib.error)):
        read(bytes(data))


def test_exif_travels_in_an_exif_chunk() -> None:
    exif = Image.Exif()
    exif[0x010F] = "TestCam"
    data = png.encode_rgb(dark_scene(20, 30), 1, exif=exif.tobytes())
    assert read(data).getexif().get(0x010F) == "TestCam"


def test_enhanced_photos_stay_about_as_small_as_pillows_choice() -> None:
    noisy = np.clip(dark_scene(200, 300, seed=9).astype(np.int16) * 3 + 20, 0, 255)
    rgb = noisy.astype(np.uint8)
    pillow = io.BytesIO()
    Image.fromarray(rgb).save(pillow, format="PNG", compress_level=1)
    assert len(png.encode_rgb(rgb, 1)) < 1.1 * len(pillow.getvalue())


def test_only_rgb_bytes_are_accepted() -> None:
    with pytest.raises(ValueError, match="uint8"):
        png.encode_rgb(np.zeros((4, 4, 4), np.uint8), 1)
    with pytest.raises(ValueError, match="uint8"):
        png.encode_rgb(np.zeros((4, 4, 3), np.float32), 1)  # type: ignore[arg-type]
