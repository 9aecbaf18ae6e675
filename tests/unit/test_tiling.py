from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service import tiling


@given(
    st.integers(1, 3000), st.integers(1, 3000), st.sampled_from([(256, 32), (512, 64), (1024, 0)])
)
def test_tiles_cover_the_image_with_one_shape(
    h: int, w: int, tile_overlap: tuple[int, int]
) -> None:
    tile, overlap = tile_overlap
    tiles = tiling.plan(h, w, tile, overlap)
    covered = np.zeros((h, w), bool)
    for t in tiles:
        assert (t.h, t.w) == (tiles[0].h, tiles[0].w)
        for side, got in ((h, t.h), (w, t.w)):
            assert got == side if side <= tile else tile - 7 <= got <= tile
        assert t.y >= 0 and t.y + t.h <= h and t.x >= 0 and t.x + t.w <= w
        # On the JPEG grid, so the model's deblocking filter sees the photo's blocks.
        assert t.y % 8 == 0 and t.x % 8 == 0
        covered[t.y : t.y + t.h, t.x : t.x + t.w] = True
    assert covered.all()
    # Neighbours overlap by at least what was asked.
    ys, xs = sorted({t.y for t in tiles}), sorted({t.x for t in tiles})
    for starts, extent in ((ys, tiles[0].h), (xs, tiles[0].w)):
        assert all(b - a <= extent - overlap for a, b in pairwise(starts))


def test_stitching_identity_tiles_gives_back_the_image() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (700, 900, 3), dtype=np.uint8)
    labels = rng.integers(0, 11, (700, 900), dtype=np.uint8)
    tiles = tiling.plan(700, 900, 256, 48)
    out, mask = tiling.stitch(
        tiling.cut(image, tiles),
        np.stack([labels[t.y : t.y + t.h, t.x : t.x + t.w] for t in tiles]),
        tiles,
        700,
        900,
        48,
    )
    assert (out == image).all() and (mask == labels).all()
    # Without masks (the client asked for none) the image is the same and no mask comes back.
    bare, no_mask = tiling.stitch(tiling.cut(image, tiles), None, tiles, 700, 900, 48)
    assert (bare == out).all() and no_mask is None


def test_overlap_must_be_smaller_than_the_tile() -> None:
    with pytest.raises(ValueError):
        tiling.plan(100, 100, 64, 64)
