"""Blending two checkpoints of one network, weight by weight."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from sllen.export import load_checkpoint
from sllen.model import build
from sllen.studies.blend import BlendError, blend
from sllen.train import save_atomic

from .conftest import TINY_CONFIGS


def write(path: Path, seed: int, name: str = "tiny_gate") -> Path:
    torch.manual_seed(seed)
    net = build(TINY_CONFIGS[name])
    cfg = {"net": asdict(TINY_CONFIGS[name]), "variant": "tiny"}
    save_atomic({"config": cfg, "model": net.state_dict(), "ema": None, "step": seed}, path)
    return path


def test_blend_is_the_weighted_mean_and_loads_for_export(tmp_path: Path) -> None:
    a, b = write(tmp_path / "a.pt", 1), write(tmp_path / "b.pt", 2)
    sa = torch.load(a, weights_only=False)["model"]
    sb = torch.load(b, weights_only=False)["model"]
    out = blend(a, b, 0.25, {"gate": 1.0})
    for name, t in out["ema"].items():
        w = 1.0 if name.startswith("gate.") else 0.25
        assert torch.allclose(t, (1 - w) * sa[name] + w * sb[name], atol=1e-6), name
    save_atomic(out, tmp_path / "blend.pt")
    loaded = load_checkpoint(tmp_path / "blend.pt")
    assert loaded.weights == "ema" and loaded.step == 2
    x = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        y, _ = loaded.net(x)
    assert torch.isfinite(y).all()


def test_different_networks_or_weights_out_of_range_are_refused(tmp_path: Path) -> None:
    a = write(tmp_path / "a.pt", 1)
    other = write(tmp_path / "b.pt", 2, "tiny_deblock")  # another head: another network
    with pytest.raises(BlendError):
        blend(a, other, 0.5)
    with pytest.raises(BlendError):
        blend(a, a, 1.5)
