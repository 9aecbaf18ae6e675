"""Tiled inference for large photos: equal-size overlapping tiles, feathered back together.

Whole-image inference of a 12 MP photo needs gigabytes of activations; tiles bound memory by the
tile size, and because every tile has the same shape they batch together in one Triton call.
Overlaps are blended with linear ramps so seams do not show; the mask takes, at every pixel, the
tile whose centre is nearest (argmax labels cannot be averaged).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Tile:
    y: int
    x: int
    h: int
    w: int


# Every tile starts on the 8x8 JPEG grid, so that inside a tile the grid starts at (0, 0) as
# in a whole photo: the model's deblocking filter works on that grid and measures from it how
# blocky the photo is. A tile starting elsewhere would be filtered on the wrong lines.
BLOCK = 8


def _extent(length: int, tile: int) -> int:
    """The tile's length on one axis: ``tile`` or up to 7 px less, so that the last tile,
    which ends at the edge, starts on the grid too."""
    if length <= tile:
        return length
    return tile - (-(length - tile)) % BLOCK


def _starts(length: int, extent: int, overlap: int) -> list[int]:
    if length <= extent:
        return [0]
    step = (extent - overlap) // BLOCK * BLOCK  # rounded down: the overlap only grows
    starts = list(range(0, length - extent, step))
    starts.append(length - extent)  # the last tile ends at the edge: all tiles keep one shape
    return starts


def plan(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Tiles of one shape (per axis min(tile, side), or up to 7 px less), each starting at a
    multiple of 8, overlapping by at least ``overlap``."""
    if not 0 <= overlap <= tile - 2 * BLOCK:
        raise ValueError(f"overlap must be in [0, tile - {2 * BLOCK}]")
    th, tw = _extent(height, tile), _extent(width, tile)
    return [
        Tile(y, x, th, tw)
        for y in _starts(height, th, overlap)
        for x in _starts(width, tw, overlap)
    ]


def cut(image: U8, tiles: list[Tile]) -> U8:
    """[H, W, 3] -> [T, th, tw, 3]."""
    return np.stack([image[t.y : t.y + t.h, t.x : t.x + t.w] for t in tiles])


def _ramp(length: int, overlap: int) -> F32:
    """1 in the middle, falling linearly to a small floor over ``overlap`` px at each end."""
    if overlap == 0:
        return np.ones(length, np.float32)
    pos = np.arange(length, dtype=np.float32)
    edge = np.minimum(pos + 1, length - pos) / (overlap + 1)
    return np.clip(edge, 1e-3, 1.0).astype(np.float32)


def stitch(
    enhanced: U8, masks: U8 | None, tiles: list[Tile], height: int, width: int, overlap: int
) -> tuple[U8, U8 | None]:
    """Blend tile outputs [T, th, tw, 3] and [T, th, tw] into [H, W, 3] and [H, W]
    (no masks in, no mask out)."""
    th, tw = tiles[0].h, tiles[0].w
    weight = np.outer(_ramp(th, overlap), _ramp(tw, overlap))
    acc = np.zeros((height, width, 3), np.float32)
    total = np.zeros((height, width), np.float32)
    for i, t in enumerate(tiles):
        ys, xs = slice(t.y, t.y + th), slice(t.x, t.x + tw)
        acc[ys, xs] += enhanced[i].astype(np.float32) * weight[..., None]
        total[ys, xs] += weight
    out = np.clip(np.rint(acc / total[..., None]), 0, 255).astype(np.uint8)
    return out, (None if masks is None else _pick_mask(masks, tiles, weight, height, width))


def _pick_mask(masks: U8, tiles: list[Tile], weight: F32, height: int, width: int) -> U8:
    """Class ids can't be blended: each pixel takes the tile with the highest weight there,
    i.e. the one whose centre is nearest."""
    th, tw = weight.shape
    best = np.full((height, width), -1.0, np.float32)
    mask = np.zeros((height, width), np.uint8)
    for i, t in enumerate(tiles):
        ys, xs = slice(t.y, t.y + th), slice(t.x, t.x + tw)
        better = weight > best[ys, xs]
        mask[ys, xs][better] = masks[i][better]
        best[ys, xs] = np.maximum(best[ys, xs], weight)
    return mask
