"""A fixed deblocking filter on the 8x8 JPEG grid, for the enhanced image.

Brightening a dark JPEG brightens its block edges with it: each 8x8 block was coded with
its own DC level, and in a flat dark sky those level steps become a visible patchwork.
Trained on JPEG-compressed inputs, the network still kept them (it is translation
equivariant and cannot tell where the grid lies; a block edge looks like any other edge).
The grid itself is known, though: a decoded JPEG's blocks start at pixel (0, 0).

At every boundary between column 8k-1 (p0) and 8k (q0), with p1 and q1 one pixel further
out, the step's excess over the neighbouring gradients

    d = (q0 - p0) - ((p0 - p1) + (q1 - q0)) / 2

is spread over the four pixels as a ramp (+1/8, +3/8 | -3/8, -1/8 of d), then the same
along rows. As in H.264's loop filter it only acts where an edge is an artefact, not a
feature: its weight falls linearly to 0 as the larger luma gradient beside the boundary
reaches ``beta`` (texture hides blocks and must stay sharp) and as the step itself
reaches ``alpha`` (a real edge). Thresholds on the 0-1 scale; chosen on v5's outputs for
dark JPEG inputs, the SICE validation pairs and LOL (docs/model-card.md).

How strongly to filter depends on how hard the photo was compressed, and the photo says so
itself: ``deblock_adaptive`` measures the input's own block structure (the ratio that
``sllen.evaluate.blockiness`` reports: luma steps across the 8-pixel grid over steps inside
blocks) and moves the thresholds from the gentle ``ALPHA``/``BETA`` (ratio up to
``GRID_GENTLE``) to the strong ``ALPHA_STRONG``/``BETA_STRONG`` (from ``GRID_STRONG``). A
camera JPEG at high quality, a PNG or a resized JPEG (its grid no longer at (0, 0)) measures
near 1 and gets the gentle filter at most, so its texture is kept; a night dashcam frame at
quality 40-60 measures 1.5-14 and gets the strong one. The fixed thresholds had to stay
gentle for the first kind and so left most of the second kind's blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

BLOCK = 8
ALPHA = 64.0 / 255.0
BETA = 16.0 / 255.0
ALPHA_STRONG = 1.0
BETA_STRONG = 64.0 / 255.0
GRID_GENTLE = 1.4
GRID_STRONG = 2.0
_LUMA = (0.299, 0.587, 0.114)


# Taps p1, p0, q0, q1 of a boundary sit at offsets 6-9 from a block's start.
_EXCESS = (0.5, -1.5, 1.5, -0.5)  # d, per channel
_RAMP = (0.125, 0.375, -0.375, -0.125)  # how d is spread back
# Luma of p0 - p1 and q1 - q0 (either side) and of q0 - p0 (the step).
_DIFFS = ((-1.0, 1.0, 0.0, 0.0), (0.0, 0.0, -1.0, 1.0), (0.0, -1.0, 1.0, 0.0))


def _kernels(like: Tensor, vertical: bool) -> tuple[Tensor, Tensor]:
    """(read [6, 3, 1, 10]: d per channel, then the three luma differences;
    write [3, 1, 1, 16]: the ramp at offsets 6-9), as [.., 10, 1] / [.., 16, 1] if vertical.

    The read kernel starts at a block's start and the write kernel spans two blocks, so with
    stride 8 neither needs a slice or a pad of the full-resolution image (each of those is a
    copy: the first version, slicing blocks apart, cost 15% of the 600x400 run).
    """
    # Built from Python lists, not by assignment into zeros: the exporter traces item
    # assignment as ScatterND on a constant, which TensorRT's parser rejects.
    pad = [0.0] * 6
    rows = [[pad + list(_EXCESS) if i == c else [0.0] * 10 for i in range(3)] for c in range(3)]
    rows += [[pad + [t * _LUMA[i] for t in diff] for i in range(3)] for diff in _DIFFS]
    read = torch.tensor(rows).view(6, 3, 1, 10)
    write = torch.tensor([pad + list(_RAMP) + [0.0] * 6] * 3).view(3, 1, 1, 16)
    read, write = read.to(like), write.to(like)
    if vertical:
        return read.transpose(2, 3), write.transpose(2, 3)
    return read, write


Threshold = float | Tensor  # a Tensor: one per image, [N, 1, 1, 1]


def deblock_axis(
    y: Tensor, vertical: bool, alpha: Threshold = ALPHA, beta: Threshold = BETA
) -> Tensor:
    """Filter the block boundaries of y [N, 3, H, W] (H and W multiples of 8) that cross
    the rows (``vertical`` False: boundaries between columns 8k-1 and 8k) or the columns."""
    read, write = _kernels(y, vertical)
    stride = (BLOCK, 1) if vertical else (1, BLOCK)
    taps = F.conv2d(y, read, stride=stride)  # [N, 6, H, W/8 - 1] (or [N, 6, H/8 - 1, W])
    d, g = taps[:, :3], taps[:, 3:].abs()
    flat = torch.maximum(g[:, 0:1], g[:, 1:2])
    weight = torch.clamp(1.0 - flat / beta, 0.0, 1.0) * torch.clamp(
        1.0 - g[:, 2:3] / alpha, 0.0, 1.0
    )
    return y + F.conv_transpose2d(d * weight, write, stride=stride, groups=3)


def deblock(y: Tensor, alpha: Threshold = ALPHA, beta: Threshold = BETA) -> Tensor:
    """Columns, then rows, of y [N, 3, H, W] with H and W multiples of 8."""
    return deblock_axis(deblock_axis(y, False, alpha, beta), True, alpha, beta)


def grid_blockiness(lum: Tensor) -> Tensor:
    """Mean absolute luma step across the 8-pixel grid over the mean step inside blocks,
    both directions together, of lum [N, 1, H, W] (H and W multiples of 8) -> [N, 1, 1, 1].

    1.0 means no block structure. The inside mean is taken as (all - across / 8) * 8 / 7,
    1 in 8 steps being a boundary; counting exactly would put shape arithmetic in the graph
    for a difference of 1% at 600x400.
    """
    step = torch.tensor([0.0] * 7 + [-1.0, 1.0]).to(lum)  # columns 8k+7 -> 8k+8
    across_x = F.conv2d(lum, step.view(1, 1, 1, 9), stride=(1, BLOCK)).abs().mean(dim=(2, 3))
    across_y = F.conv2d(lum, step.view(1, 1, 9, 1), stride=(BLOCK, 1)).abs().mean(dim=(2, 3))
    all_x = (lum[..., :, 1:] - lum[..., :, :-1]).abs().mean(dim=(2, 3))
    all_y = (lum[..., 1:, :] - lum[..., :-1, :]).abs().mean(dim=(2, 3))
    inside = (all_x + all_y - (across_x + across_y) / BLOCK) * (BLOCK / (BLOCK - 1))
    return ((across_x + across_y) / (inside + 1e-4)).view(-1, 1, 1, 1)


def deblock_adaptive(y: Tensor, lum: Tensor) -> Tensor:
    """``deblock`` of y with thresholds set, per image, by the block structure of the input
    whose luma is lum [N, 1, H, W]: gentle up to GRID_GENTLE, strong from GRID_STRONG."""
    s = torch.clamp((grid_blockiness(lum) - GRID_GENTLE) / (GRID_STRONG - GRID_GENTLE), 0.0, 1.0)
    return deblock(y, ALPHA + s * (ALPHA_STRONG - ALPHA), BETA + s * (BETA_STRONG - BETA))
