"""The table of odd and hostile uploads: each case builds its bytes in code and names its outcome.

Shared by the integration test that sends every case through the real stack and by the check
that the table in docs/robustness.md lists every case.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageCms

from testkit.images import dark_scene, encode, encode_avif, encode_heic


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[], bytes]
    status: int
    size: tuple[int, int] | None = None  # (width, height) expected back on 200


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png16_rgb(h: int = 24, w: int = 40) -> bytes:
    """A 16-bit-per-channel RGB PNG (Pillow cannot write one), written by hand."""
    samples = (dark_scene(h, w).astype(np.uint16) * 257).astype(">u2")
    raw = b"".join(b"\0" + samples[y].tobytes() for y in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw))
        + _png_chunk(b"IEND", b"")
    )


def png_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", idat)
        + _png_chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG whose SOF header is rewritten to claim a huge size."""
    data = bytearray(encode(dark_scene(16, 16), "JPEG"))
    sof = data.find(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    return bytes(data)


def png_bad_crc() -> bytes:
    data = bytearray(encode(dark_scene(20, 20), "PNG"))
    data[29] ^= 0xFF  # last byte of the IHDR chunk's CRC
    return bytes(data)


def _save(im: Image.Image, fmt: str, **params: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def _rgb(h: int, w: int) -> Image.Image:
    return Image.fromarray(dark_scene(h, w))


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return _save(_rgb(30, 50), "JPEG", exif=exif.tobytes())


def icc_jpeg() -> bytes:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return _save(_rgb(30, 50), "JPEG", icc_profile=profile)


def animated(fmt: str) -> bytes:
    frames = [_rgb(30, 40), Image.fromarray(dark_scene(30, 40, seed=9))]
    return _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def heif_claiming(make: Callable[..., bytes], width: int, height: int) -> bytes:
    """A real small HEIC or AVIF whose image size box (ispe) is rewritten to claim ``width`` x
    ``height``: 64x64 is coded without a crop box, so that ispe is the only size there is."""
    data = bytearray(make(dark_scene(64, 64)))
    struct.pack_into(">II", data, data.find(b"ispe") + 8, width, height)
    return bytes(data)


def heif_garbled(make: Callable[..., bytes]) -> bytes:
    """The boxes after ftyp (meta: the item list and locations) overwritten with zeros."""
    data = make(dark_scene(60, 80))
    ftyp = int.from_bytes(data[:4], "big")
    return data[:ftyp] + bytes(200) + data[ftyp + 200 :]


CASES: list[Case] = [
    # valid but odd: enhanced, at the upright size
    Case("png-16bit-rgb", png16_rgb, 200, (40, 24)),
    Case(
        "png-16bit-gray",
        lambda: _save(Image.fromarray(dark_scene(20, 30)[..., 0].astype(np.uint16) * 257), "PNG"),
        200,
        (30, 20),
    ),
    Case("png-grayscale", lambda: _save(_rgb(20, 30).convert("L"), "PNG"), 200, (30, 20)),
    Case("png-palette", lambda: _save(_rgb(20, 30).convert("P"), "PNG"), 200, (30, 20)),
    Case("png-rgba", lambda: _save(_rgb(20, 30).convert("RGBA"), "PNG"), 200, (30, 20)),
    Case("png-gray-alpha", lambda: _save(_rgb(20, 30).convert("LA"), "PNG"), 200, (30, 20)),
    Case("png-animated", lambda: animated("PNG"), 200, (40, 30)),
    Case("jpeg-cmyk", lambda: _save(_rgb(20, 30).convert("CMYK"), "JPEG"), 200, (30, 20)),
    Case("jpeg-grayscale", lambda: _save(_rgb(20, 30).convert("L"), "JPEG"), 200, (30, 20)),
    Case("jpeg-progressive", lambda: _save(_rgb(20, 30), "JPEG", progressive=True), 200, (30, 20)),
    Case("jpeg-exif-rotated", exif_rotated_jpeg, 200, (30, 50)),
    Case("jpeg-icc-profile", icc_jpeg, 200, (50, 30)),
    Case(
        "jpeg-trailing-junk",
        lambda: encode(dark_scene(20, 30), "JPEG") + os.urandom(500),
        200,
        (30, 20),
    ),
    Case("webp-lossy", lambda: _save(_rgb(20, 30), "WEBP", quality=60), 200, (30, 20)),
    Case("webp-lossless", lambda: _save(_rgb(20, 30), "WEBP", lossless=True), 200, (30, 20)),
    Case("webp-animated", lambda: animated("WEBP"), 200, (40, 30)),
    Case("bmp-24bit", lambda: _save(_rgb(20, 30), "BMP"), 200, (30, 20)),
    Case("bmp-8bit-palette", lambda: _save(_rgb(20, 30).convert("P"), "BMP"), 200, (30, 20)),
    Case("heic", lambda: encode_heic(dark_scene(30, 50)), 200, (50, 30)),
    Case("heic-rotated-irot", lambda: encode_heic(dark_scene(30, 50), 6), 200, (30, 50)),
    Case("heic-mirrored-imir", lambda: encode_heic(dark_scene(30, 50), 2), 200, (50, 30)),
    Case(
        "heic-rgba",
        lambda: encode_heic(np.dstack([dark_scene(30, 50), np.full((30, 50), 128, np.uint8)])),
        200,
        (50, 30),
    ),
    Case("heic-odd-size-cropped", lambda: encode_heic(dark_scene(17, 23)), 200, (23, 17)),
    Case("avif", lambda: encode_avif(dark_scene(30, 50)), 200, (50, 30)),
    Case("avif-rotated-irot", lambda: encode_avif(dark_scene(30, 50), 8), 200, (30, 50)),
    Case("avif-lossless", lambda: encode_avif(dark_scene(30, 50), lossless=True), 200, (50, 30)),
    Case("tiny-1x1", lambda: encode(dark_scene(1, 1), "PNG"), 200, (1, 1)),
    Case("thin-4000x8", lambda: encode(dark_scene(8, 4000), "PNG"), 200, (4000, 8)),
    Case("tall-8x4000", lambda: encode(dark_scene(4000, 8), "PNG"), 200, (8, 4000)),
    # broken or hostile: a clear 4xx, quickly
    Case("empty", lambda: b"", 415),
    Case("text", lambda: b"hello, this is not a photo\n" * 10, 415),
    Case(
        "svg",
        lambda: (
            b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg' width='9' height='9'/>"
        ),
        415,
    ),
    Case("pdf", lambda: b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n", 415),
    Case("gif", lambda: _save(_rgb(20, 30), "GIF"), 415),
    Case("tiff", lambda: _save(_rgb(20, 30), "TIFF"), 415),
    Case(
        "random-bytes",
        lambda: np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        415,
    ),
    Case("jpeg-soi-only", lambda: b"\xff\xd8\xff", 400),
    Case("jpeg-truncated", lambda: encode(dark_scene(200, 300), "JPEG")[:1500], 400),
    Case("png-truncated", lambda: encode(dark_scene(200, 300), "PNG")[:2000], 400),
    Case("png-bad-crc", png_bad_crc, 400),
    Case("png-bomb-30000x30000", lambda: png_claiming(30000, 30000), 413),
    Case("jpeg-bomb-65000x65000", lambda: jpeg_claiming(65000, 65000), 413),
    Case("png-side-over-4096", lambda: png_claiming(5000, 10), 413),
    Case("heic-ftyp-only", lambda: struct.pack(">I", 24) + b"ftypheic\0\0\0\0mif1heic", 400),
    Case("heic-truncated", lambda: encode_heic(dark_scene(200, 300))[:3000], 400),
    Case("heic-garbled-meta", lambda: heif_garbled(encode_heic), 400),
    Case("avif-truncated", lambda: encode_avif(dark_scene(200, 300))[:1500], 400),
    Case("avif-garbled-meta", lambda: heif_garbled(encode_avif), 400),
    Case("heic-bomb-60000x60000", lambda: heif_claiming(encode_heic, 60000, 60000), 413),
    Case("avif-bomb-60000x60000", lambda: heif_claiming(encode_avif, 60000, 60000), 413),
    Case("heic-side-over-4096", lambda: heif_claiming(encode_heic, 5000, 64), 413),
]
