"""The 8x8 deblocking filter: removes JPEG block steps, leaves real edges and texture."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest
import torch

from sllen import data as D
from sllen.deblock import (
    ALPHA,
    ALPHA_STRONG,
    BETA,
    BETA_STRONG,
    GRID_GENTLE,
    GRID_STRONG,
    deblock,
    deblock_adaptive,
    deblock_axis,
    grid_blockiness,
)
from sllen.evaluate import blockiness
from sllen.export import export_bytes
from sllen.model import build

from .conftest import TINY_CONFIGS


def to_image(t: torch.Tensor) -> np.ndarray:
    return np.round(t[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8)


def block_levels(h: int = 64, w: int = 96, spread: float = 0.03, seed: int = 0) -> torch.Tensor:
    """A flat dark sky as JPEG codes it: one level per 8x8 block, levels a few steps apart."""
    gen = torch.Generator().manual_seed(seed)
    levels = 0.25 + spread * torch.rand(1, 1, h // 8, w // 8, generator=gen)
    return levels.repeat_interleave(8, 2).repeat_interleave(8, 3).expand(1, 3, h, w).clone()


def test_block_steps_are_spread_into_ramps() -> None:
    y = block_levels()
    out = deblock(y)
    step, step_out = y.diff(dim=3).abs(), out.diff(dim=3).abs()
    # A step of s becomes a ramp whose largest step is s / 4 (attenuated a little by alpha).
    assert step_out.amax() < 0.35 * step.amax()
    assert step_out.sum() < 1.01 * step.sum()  # spread out, not added
    # On a textured image the same steps stand out far less.
    gen = torch.Generator().manual_seed(2)
    noisy = y + 0.004 * torch.randn(y.shape, generator=gen)
    before, after = blockiness(to_image(noisy)), blockiness(to_image(deblock(noisy)))
    assert before > 1.5 and after < 0.75 * before, (before, after)
    # Only the two columns either side of a boundary move; the mean level is kept.
    moved = (deblock_axis(y, vertical=False) - y).abs().amax(dim=(0, 1, 2)).reshape(-1, 8).amax(0)
    assert torch.all(moved[2:6] == 0) and torch.all(moved[[0, 1, 6, 7]] > 0)
    assert torch.allclose(deblock(y).mean(), y.mean(), atol=1e-6)


def test_smooth_gradients_pass_unchanged() -> None:
    ramp = torch.linspace(0.1, 0.6, 96).view(1, 1, 1, 96).expand(1, 3, 64, 96)
    ramp = ramp + torch.linspace(0.0, 0.2, 64).view(1, 1, 64, 1)
    assert torch.allclose(deblock(ramp), ramp, atol=1e-6)


def test_real_edges_and_texture_are_kept() -> None:
    edge = torch.full((1, 3, 32, 48), 0.2)
    edge[..., 16:] += 1.2 * ALPHA  # a step larger than any block artefact
    assert torch.equal(deblock(edge), edge)
    # Fine texture: every pixel differs from its neighbours by more than beta.
    checker = (torch.arange(32).view(32, 1) + torch.arange(48).view(1, 48)) % 2
    texture = (0.5 + 1.2 * BETA * (2.0 * checker - 1.0)).expand(1, 3, 32, 48).clone()
    assert torch.equal(deblock(texture), texture)


def test_the_filter_runs_before_the_exposure_gate() -> None:
    """Switched on, it changes what a dark photo gets, and it has no parameters."""
    filtered = build(TINY_CONFIGS["tiny_deblock"]).eval()
    plain = build(dataclasses.replace(TINY_CONFIGS["tiny_deblock"], deblock="off")).eval()
    filtered.load_state_dict(plain.state_dict())  # same parameters: the filter adds none
    x = block_levels(spread=0.02) * 0.3
    with torch.no_grad():
        a, la = plain(x)
        b, lb = filtered(x)
    assert torch.equal(la, lb)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("mode", ["fixed", "adaptive"])
def test_the_exported_filter_adds_only_plain_ops(mode: str) -> None:
    """Strided Conv / ConvTranspose, Abs and Max, all in TensorRT's ONNX parser: no ScatterND."""

    def ops(deblock: str) -> set[str]:
        net = build(dataclasses.replace(TINY_CONFIGS["tiny_deblock"], deblock=deblock)).eval()
        return {n.op_type for n in onnx.load_from_string(export_bytes(net)).graph.node}

    assert ops(mode) - ops("off") <= {"Abs", "ConvTranspose", "Max"}


def test_grid_blockiness_matches_the_reported_metric() -> None:
    """The in-graph measure is the one `make eval` reports, up to its 1-in-8 approximation
    (which grows with the ratio, where the clamp to the strong thresholds hides it)."""
    gen = torch.Generator().manual_seed(3)
    for spread, noise in ((0.0, 0.01), (0.01, 0.006), (0.02, 0.008)):
        y = block_levels(spread=spread, seed=4) + noise * torch.randn(1, 3, 64, 96, generator=gen)
        image = to_image(y)
        lum = luma_of(torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0)
        measured = float(grid_blockiness(lum))
        assert abs(measured - blockiness(image)) < 0.03 * blockiness(image), (spread, noise)


def luma_of(x: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] -> [N, 1, H, W]."""
    return D.luma(x.permute(0, 2, 3, 1))[:, None]


def test_adaptive_filter_follows_the_input_s_blocks() -> None:
    """A photo without a block grid gets the gentle filter; a hard-compressed one the strong."""
    gen = torch.Generator().manual_seed(5)
    # Blocks under texture whose gradients reach past the gentle beta.
    y = block_levels(spread=0.15) + 0.02 * torch.randn(1, 3, 64, 96, generator=gen)
    textured = 0.3 + 0.03 * torch.randn(1, 3, 64, 96, generator=gen)  # no grid: ratio ~1
    assert float(grid_blockiness(luma_of(textured))) < GRID_GENTLE
    assert torch.equal(deblock_adaptive(textured, luma_of(textured)), deblock(textured))
    assert float(grid_blockiness(luma_of(y))) > GRID_STRONG
    strong = deblock_adaptive(y, luma_of(y))
    assert torch.allclose(strong, deblock(y, ALPHA_STRONG, BETA_STRONG))
    assert blockiness(to_image(strong)) < 0.8 * blockiness(to_image(deblock(y)))
    # Per image: in a batch each gets its own thresholds.
    both = deblock_adaptive(torch.cat([textured, y]), luma_of(torch.cat([textured, y])))
    assert torch.allclose(both, torch.cat([deblock(textured), strong]), atol=1e-6)
