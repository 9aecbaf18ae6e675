"""Classical enhancement baselines on uint8 RGB [H, W, 3] (numpy only, no OpenCV).

* ``identity``: the input itself.
* ``auto_gamma``: one gamma per image that maps its mean luma to 0.5.
* ``hist_eq``: global histogram equalisation of luma (BT.601 Y), chroma kept.
* ``clahe``: contrast-limited adaptive HE of luma, 8x8 tiles, clip limit 2.0 (OpenCV's
  usual settings), bilinear interpolation between the tiles' mappings.

Luma-only methods rebuild RGB by scaling each pixel's RGB with Y_new / Y_old, which keeps
hue and saturation of dark pixels (YCbCr round trips would leave them grey).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LUMA = np.array([0.299, 0.587, 0.114])
CLAHE_TILES = 8
CLAHE_CLIP = 2.0


def identity(rgb: np.ndarray) -> np.ndarray:
    return rgb


def auto_gamma(rgb: np.ndarray) -> np.ndarray:
    x = rgb.astype(np.float64) / 255.0
    m = float(np.clip((x @ LUMA).mean(), 1e-3, 0.999))
    gamma = np.log(0.5) / np.log(m)
    return to_u8(x**gamma * 255.0)


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _apply_luma(rgb: np.ndarray, new_y: np.ndarray) -> np.ndarray:
    """Scale RGB by new_y / old_y (both 0..255 floats [H, W])."""
    x = rgb.astype(np.float64)
    y = x @ LUMA
    ratio = (new_y + 0.5) / (y + 0.5)
    return to_u8(x * ratio[..., None])


def _equalise_lut(hist: np.ndarray) -> np.ndarray:
    """CDF mapping of a 256-bin histogram (or [..., 256] histograms) to 0..255."""
    cdf = np.cumsum(hist, axis=-1).astype(np.float64)
    lo = cdf[..., :1]
    return np.clip((cdf - lo) / np.maximum(cdf[..., -1:] - lo, 1.0) * 255.0, 0, 255)


def hist_eq(rgb: np.ndarray) -> np.ndarray:
    y = to_u8(rgb.astype(np.float64) @ LUMA)
    lut = _equalise_lut(np.bincount(y.ravel(), minlength=256))
    return _apply_luma(rgb, lut[y])


def _clip_hist(hist: np.ndarray, limit: float) -> np.ndarray:
    """Clip [..., 256] histograms at ``limit`` and spread the excess evenly."""
    excess = np.maximum(hist - limit, 0).sum(axis=-1, keepdims=True)
    return np.minimum(hist, limit) + excess / 256.0


def _tile_coords(n: int, tile: int, tiles: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For pixel positions 0..n-1: the two neighbouring tile ids and the weight of the 2nd."""
    f = (np.arange(n) + 0.5) / tile - 0.5
    i0 = np.clip(np.floor(f).astype(int), 0, tiles - 1)
    i1 = np.minimum(i0 + 1, tiles - 1)
    w = np.clip(f - i0, 0.0, 1.0)
    return i0, i1, w


def clahe_luma(y: np.ndarray, tiles: int = CLAHE_TILES, clip: float = CLAHE_CLIP) -> np.ndarray:
    """y: uint8 [H, W] -> float [H, W] in 0..255."""
    h, w = y.shape
    th, tw = -(-h // tiles), -(-w // tiles)
    padded = np.pad(y, ((0, th * tiles - h), (0, tw * tiles - w)), mode="reflect")
    blocks = padded.reshape(tiles, th, tiles, tw).transpose(0, 2, 1, 3).reshape(tiles, tiles, -1)
    hist = np.stack([np.bincount(b, minlength=256) for b in blocks.reshape(-1, th * tw)])
    hist = _clip_hist(hist.reshape(tiles, tiles, 256).astype(np.float64), clip * th * tw / 256)
    luts = _equalise_lut(hist)  # [tiles, tiles, 256]
    y0, y1, wy = _tile_coords(h, th, tiles)
    x0, x1, wx = _tile_coords(w, tw, tiles)
    wy, wx = wy[:, None], wx[None, :]

    def at(ty: np.ndarray, tx: np.ndarray) -> np.ndarray:
        return luts[ty[:, None], tx[None, :], y]

    top = at(y0, x0) * (1 - wx) + at(y0, x1) * wx
    bottom = at(y1, x0) * (1 - wx) + at(y1, x1) * wx
    return top * (1 - wy) + bottom * wy


def clahe(rgb: np.ndarray) -> np.ndarray:
    y = to_u8(rgb.astype(np.float64) @ LUMA)
    return _apply_luma(rgb, clahe_luma(y))


BASELINES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "input": identity,
    "auto gamma": auto_gamma,
    "HE": hist_eq,
    "CLAHE": clahe,
}
