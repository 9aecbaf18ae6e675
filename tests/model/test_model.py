"""Every configured variant: shapes, finiteness, gradients, and the deploy contract."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sllen.deploy import UNKNOWN_ID, DeployWrapper
from sllen.losses import brightness, charbonnier, semantic_kl, ssim
from sllen.model import IGNORE_INDEX, NUM_CLASSES, VARIANTS, NetConfig, ResBlock, build, up
from sllen.studies.unet_baseline import PlainUNet, enhancer

from .conftest import ALL_CONFIGS

NAMES = sorted(ALL_CONFIGS)


@pytest.mark.parametrize("name", NAMES)
def test_forward_shapes_and_finite(name: str) -> None:
    net = build(ALL_CONFIGS[name]).eval()
    s = net.stride
    x = torch.rand(2, 3, 3 * s, 5 * s)  # [B, 3, H, W], H != W, odd multiples of the stride
    with torch.no_grad():
        feats = net.encode(x)
        seg = net.segment(feats)
        y = net.enhance(x, feats, seg)
    assert y.shape == x.shape
    assert seg.logits.shape == (2, NUM_CLASSES, 3 * s // 4, 5 * s // 4)
    assert seg.ief.shape[-2:] == (3 * s // 8, 5 * s // 8)
    assert torch.isfinite(y).all() and torch.isfinite(seg.logits).all()
    if ALL_CONFIGS[name].output_mode == "curve":
        assert y.min() >= 0.0 and y.max() <= 1.0


@pytest.mark.parametrize("name", NAMES)
def test_every_parameter_gets_a_gradient(name: str) -> None:
    net = build(ALL_CONFIGS[name]).train()
    if net.gate is not None:  # zero-initialised last layer: nothing flows past it at step 0
        torch.nn.init.normal_(net.gate.mlp[-1].weight, std=0.1)
    if net.mask_head is not None:  # refine blocks start as the identity: the same
        for block in net.mask_head.refine.modules():
            if isinstance(block, ResBlock):
                torch.nn.init.normal_(block.conv2.weight, std=0.1)
    s = net.stride
    x = torch.rand(2, 3, 2 * s, 3 * s) * 0.2
    target = torch.rand_like(x)
    labels = torch.randint(0, NUM_CLASSES + 1, (2, 2 * s, 3 * s))  # includes void (11)
    y, logits = net(x)
    seg = F.cross_entropy(up(logits, 4), labels, ignore_index=IGNORE_INDEX)
    enh = charbonnier(y, target) + (1 - ssim(y.clamp(0, 1), target))
    sem = semantic_kl(net.segment(net.encode(y)).logits, logits)
    (seg + enh + 0.1 * sem).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("size", [(33, 47), (32, 32), (50, 17 + 32)])
def test_deploy_contract(name: str, size: tuple[int, int]) -> None:
    wrapper = DeployWrapper(build(ALL_CONFIGS[name])).eval()
    image = torch.randint(0, 256, (2, *size, 3), dtype=torch.uint8)
    with torch.no_grad():
        enhanced, mask = wrapper(image)
    assert enhanced.dtype == torch.uint8 and enhanced.shape == image.shape
    assert mask.dtype == torch.uint8 and mask.shape == image.shape[:3]
    assert int(mask.max()) <= UNKNOWN_ID


def test_batch_items_are_independent() -> None:
    wrapper = DeployWrapper(build(ALL_CONFIGS["tiny"])).eval()
    images = torch.randint(0, 256, (3, 40, 56, 3), dtype=torch.uint8)
    with torch.no_grad():
        batch_e, batch_m = wrapper(images)
        one_e, one_m = wrapper(images[1:2])
    assert (batch_e[1:2].int() - one_e.int()).abs().max() <= 1
    assert (batch_m[1:2] == one_m).float().mean() > 0.99


def test_brightness_loss_sees_exposure_not_layout() -> None:
    x = torch.rand(2, 3, 16, 16)
    shuffled = x.flatten(2)[..., torch.randperm(256)].view_as(x)
    assert float(brightness(shuffled, x)) < 1e-6  # same means: no penalty, however arranged
    darker = brightness(0.8 * x, x)
    expected = (0.2 * x.mean(dim=(2, 3))).mean()
    assert torch.allclose(darker, expected, atol=1e-6)


def test_variant_configs_round_trip() -> None:
    for cfg in VARIANTS.values():
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in cfg.__dict__.items()}
        assert NetConfig.from_dict(d) == cfg


def test_default_variant_is_cpu_sized() -> None:
    params = sum(p.numel() for p in build(VARIANTS["small"]).parameters())
    assert params < 2_000_000


def test_bad_constructor_args() -> None:
    with pytest.raises(ValueError):
        build(NetConfig(output_mode="residual"))
    with pytest.raises(ValueError):
        build(NetConfig(curve_iters=8, curve_maps=3))


def test_unsure_pixels_come_back_unknown() -> None:
    net = build(ALL_CONFIGS["tiny"]).eval()
    image = torch.randint(0, 256, (1, 40, 56, 3), dtype=torch.uint8)
    with torch.no_grad():
        _, sure = DeployWrapper(net, unknown_below=0.0)(image)
        _, unsure = DeployWrapper(net, unknown_below=1.01)(image)
        _, some = DeployWrapper(net)(image)
    assert int(sure.max()) < UNKNOWN_ID
    assert bool((unsure == UNKNOWN_ID).all())
    # Where the threshold keeps a label it is the plain argmax label.
    kept = some != UNKNOWN_ID
    assert torch.equal(some[kept], sure[kept])


def test_exposure_gate_starts_near_the_ungated_model_and_can_return_the_input() -> None:
    cfg = ALL_CONFIGS["tiny_gate"]
    gated = build(cfg).eval()
    plain = build(dataclasses.replace(cfg, exposure_gate=False)).eval()
    plain.load_state_dict(
        {k: v for k, v in gated.state_dict().items() if not k.startswith("gate.")}
    )
    x = torch.rand(1, 3, 32, 48) * 0.2
    with torch.no_grad():
        assert (gated(x)[0] - plain(x)[0]).abs().max() < 0.02
        assert gated.gate is not None
        torch.nn.init.constant_(gated.gate.mlp[-1].bias, -30.0)  # gate shut: the input itself
        assert torch.allclose(gated(x)[0], x, atol=1e-6)


def test_unet_baseline_is_the_reference_size_and_keeps_any_frame_shape() -> None:
    model = PlainUNet().eval()
    assert 200_000 < sum(p.numel() for p in model.parameters()) < 300_000
    frame = np.random.default_rng(0).integers(0, 40, (37, 50, 3), dtype=np.uint8)
    out = enhancer(model)(frame)
    assert out.shape == frame.shape and out.dtype == np.uint8
