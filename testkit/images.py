"""Synthetic test images, generated in code (no real data is ever committed)."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def dark_scene(height: int = 400, width: int = 600, seed: int = 0, peak: int = 60) -> np.ndarray:
    """A dim scene with structure: gradients, a few rectangles and noise. uint8 [H, W, 3]."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 0.4 + 0.3 * np.sin(x / max(width, 1) * 6.0) * np.cos(y / max(height, 1) * 4.0)
    img = np.stack([base * 0.9, base, base * 1.1], axis=-1)
    for _ in range(6):
        y0, x0 = rng.integers(0, max(height - 8, 1)), rng.integers(0, max(width - 8, 1))
        img[y0 : y0 + height // 5, x0 : x0 + width // 5] = rng.uniform(0.1, 1.0, size=3)
    img = img + rng.normal(0, 0.02, size=img.shape)
    return (np.clip(img, 0, 1) * peak).astype(np.uint8)


def encode(array: np.ndarray, fmt: str = "PNG", **params: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt, **params)
    return buf.getvalue()


def decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im)
