"""HEIF containers: HEIC photos from phones and AVIF. Sniffing, header reading, HEIC decoding.

libheif, through pi-heif (a decode-only build: libheif and libde265, both LGPL, no HEVC
encoder), parses both containers without decoding pixels, so the limits are checked from the
declared size before any decode; it reports that size after the container's rotation and mirror
(irot, imir), which it also applies when decoding. It decodes HEIC; AVIF pixels are decoded by
Pillow's own libavif (dav1d), as pi-heif carries no AV1 decoder.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Literal

import pi_heif
from PIL import Image

from service.errors import UndecodableImage

# The brands of the ISO base media file format's ftyp box (ISO/IEC 23008-12, AV1 Image File Format).
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIF_BRANDS = frozenset(
    {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"}
)
# Every failure pi-heif documents for bad input (ValueError: invalid data; EOFError: truncated;
# SyntaxError: unsupported feature; RuntimeError: other libheif errors; OSError: out of memory;
# IndexError: a container without images).
_LIBHEIF_ERRORS = (ValueError, EOFError, SyntaxError, RuntimeError, OSError, IndexError)


@dataclass(frozen=True, slots=True)
class Header:
    width: int  # after irot/imir: the size the client gets back
    height: int
    icc: bytes | None
    nclx: dict[str, Any] | None  # CICP colour signalling (primaries, transfer, matrix)
    exif: bytes | None


@dataclass(frozen=True, slots=True)
class HeicImage:
    image: Image.Image  # upright (irot/imir applied), 8-bit
    icc: bytes | None
    nclx: dict[str, Any] | None
    exif: bytes | None


def sniff(data: bytes) -> Literal["HEIF", "AVIF"] | None:
    """HEIF or AVIF from the ftyp box's major and compatible brands; None if neither."""
    if len(data) < 16 or data[4:8] != b"ftyp":
        return None
    size = int.from_bytes(data[:4], "big")
    brands = [data[8:12]] + [data[i : i + 4] for i in range(16, min(size, len(data)) - 3, 4)]
    if any(b in _AVIF_BRANDS for b in brands):
        return "AVIF"
    if any(b in _HEIF_BRANDS for b in brands):
        return "HEIF"
    return None


def _open(data: bytes) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pi_heif.open_heif(data, convert_hdr_to_8bit=True)


def _colour(info: dict[str, Any]) -> tuple[bytes | None, dict[str, Any] | None]:
    return info.get("icc_profile") or None, info.get("nclx_profile") or None


def read_header(data: bytes) -> Header:
    """The primary image's size and colour signalling, from the container alone (lazy: no pixel
    is decoded, whatever size the header claims)."""
    try:
        heif_file = _open(data)
        width, height = heif_file.size
        info = heif_file.info
    except _LIBHEIF_ERRORS as exc:
        raise UndecodableImage(f"the HEIF container does not parse: {exc}") from exc
    icc, nclx = _colour(info)
    return Header(int(width), int(height), icc, nclx, info.get("exif") or None)


def decode_heic(data: bytes) -> HeicImage:
    """Decode the primary image, upright. Corrupt or truncated data raises UndecodableImage."""
    try:
        heif_file = _open(data)
        image = heif_file.to_pillow()
        info = heif_file.info
    except _LIBHEIF_ERRORS as exc:
        raise UndecodableImage(f"the HEIF data does not decode: {exc}") from exc
    icc, nclx = _colour(info)
    return HeicImage(image, icc, nclx, info.get("exif") or None)
