"""Synthetic test images, generated in code (no real data is ever committed)."""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image

U8 = npt.NDArray[np.uint8]


def dark_scene(height: int = 400, width: int = 600, seed: int = 0, peak: int = 60) -> U8:
    """A dim scene with structure: gradients, a few rectangles and noise. uint8 [H, W, 3]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 0.4 + 0.3 * np.sin(x / max(width, 1) * 6.0) * np.cos(y / max(height, 1) * 4.0)
    img = np.stack([base * 0.9, base, base * 1.1], axis=-1)
    for _ in range(6):
        y0, x0 = rng.integers(0, max(height - 8, 1)), rng.integers(0, max(width - 8, 1))
        img[y0 : y0 + height // 5, x0 : x0 + width // 5] = rng.uniform(0.1, 1.0, size=3)
    img = img + rng.normal(0, 0.02, size=img.shape)
    scene: U8 = (np.clip(img, 0, 1) * peak).astype(np.uint8)
    return scene


def encode(array: U8, fmt: str = "PNG", **params: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **params)
    return buf.getvalue()


def decode(data: bytes) -> U8:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)


def encode_heic(array: U8, orientation: int = 1, **params: object) -> bytes:
    """A HEIC written by pillow-heif's x265 (a test-only dependency: the service only decodes).
    ``orientation`` (EXIF values 1-8) becomes the container's irot/imir, as phones write it."""
    import pillow_heif

    heif_file = pillow_heif.from_pillow(Image.fromarray(array))
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        heif_file.info["exif"] = exif.tobytes()
    buf = io.BytesIO()
    heif_file.save(buf, **{"quality": 90, **params})
    return buf.getvalue()


def encode_avif(array: U8, orientation: int = 1, **params: object) -> bytes:
    """An AVIF from Pillow's libavif; ``orientation`` becomes the container's irot/imir."""
    extra: dict[str, object] = {}
    if orientation != 1:
        exif = Image.Exif()
        exif[0x0112] = orientation
        extra["exif"] = exif.tobytes()
    return encode(array, "AVIF", **{"quality": 90, **extra, **params})
