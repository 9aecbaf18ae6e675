"""Evaluation metrics, classical baselines and the held-out dusk block."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sllen import data as D
from sllen import evaluate as E
from sllen.deploy import UNKNOWN_ID
from sllen.model import IGNORE_INDEX, build
from sllen.studies import baselines as B

from .conftest import TINY


def dark_image(seed: int = 0, h: int = 45, w: int = 61) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 40, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", sorted(B.BASELINES))
def test_baselines_keep_shape_and_dtype(name: str) -> None:
    im = dark_image()
    out = B.BASELINES[name](im)
    assert out.shape == im.shape and out.dtype == np.uint8


def test_brightening_baselines_brighten_dark_images() -> None:
    im = dark_image()
    for fn in (B.auto_gamma, B.hist_eq, B.clahe):
        assert fn(im).mean() > im.mean() + 5
    assert abs(B.auto_gamma(im).astype(float) @ B.LUMA).mean() - 127.5 < 25


def test_clahe_of_a_constant_image_is_constant() -> None:
    y = np.full((40, 50), 30, np.uint8)
    out = B.clahe_luma(y)
    assert np.ptp(out) < 1e-6


def test_psnr_ssim_and_mean_matching() -> None:
    a = dark_image(1)
    assert E.psnr_u8(a, a) > 90.0
    assert E.ssim_u8(a, a) == pytest.approx(1.0)
    half = (a // 2).astype(np.uint8)
    assert E.psnr_u8(E.mean_matched(half, a), a) > E.psnr_u8(half, a)


def test_miou_ignores_void_and_absent_classes() -> None:
    label = np.array([[0, 0, 1, IGNORE_INDEX]])
    pred = np.array([[0, 1, 1, 5]])
    conf = E.confusion(pred, label)
    assert conf.sum() == 3
    # class 0: 1/2, class 1: 1/2; class 5 only predicted on void -> not counted
    assert E.miou(conf) == pytest.approx(0.5)


def test_unknown_predictions_count_as_misses_not_as_a_class() -> None:
    label = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, UNKNOWN_ID, 1, 1]])
    iou = E.class_iou(E.confusion(pred, label))
    assert iou[0] == pytest.approx(0.5) and iou[1] == pytest.approx(1.0)
    assert np.isnan(iou[2])


def test_blockiness_sees_8px_blocks_only() -> None:
    rng = np.random.default_rng(0)
    noise = rng.integers(100, 140, (64, 64, 3)).astype(np.uint8)
    assert E.blockiness(noise) == pytest.approx(1.0, abs=0.1)
    blocks = np.kron(rng.integers(0, 255, (8, 8, 1)), np.ones((8, 8, 1))).astype(np.uint8)
    assert E.blockiness(np.clip(blocks.astype(int) + noise - 120, 0, 255).astype(np.uint8)) > 3
    yy, xx = np.mgrid[0:64, 0:64]
    ramp = np.repeat((20 + 0.3 * xx + 0.2 * yy + 3 * np.sin(xx / 3.0))[..., None], 3, -1)
    smooth = ramp.astype(np.uint8)
    assert E.blockiness(D.jpeg(smooth, 15)) > 1.3 * E.blockiness(smooth)


def test_lol_scores_follow_skimage_and_gt_mean_undoes_a_gain() -> None:
    high = dark_image(4, 40, 50) * 4 + 1  # odd: halving is not an exact gain
    near = high.copy()
    near[0, 0, 0] += 1
    psnr, ssim, _ = E.lol_scores(near, high)
    assert psnr == pytest.approx(E.psnr_u8(near, high))
    assert ssim == pytest.approx(1.0, abs=1e-3)
    half = (high // 2).astype(np.uint8)
    p, _, g = E.lol_scores(half, high)
    assert g > p + 3


def test_exposure_metrics_report_the_largest_gain() -> None:
    a = np.full((8, 8, 3), 100, np.uint8)
    m = E.exposure_metrics([(a, a), (a, (a * 1.5).astype(np.uint8))], "well")
    assert m["well_gain_max"] == pytest.approx(1.5) and m["well_brightened"] == 1


def test_dusk_holdout_is_a_contiguous_tail_block() -> None:
    names = [f"0001TP_{i:06d}.png" for i in range(0, 900, 30)] + ["0006R0_f00930.png"]
    held = D.dusk_holdout(names)
    dusk = sorted(n for n in names if n.startswith(D.DUSK_PREFIX))
    assert held == set(dusk[-D.DUSK_HOLDOUT :])
    assert "0006R0_f00930.png" not in held


def test_normalised_input_brightens_dark_images_only() -> None:
    net = build(TINY).eval()
    dark = torch.full((1, 3, 16, 16), 0.05)
    bright = torch.full((1, 3, 16, 16), 0.7)
    assert net.normalise(dark).mean().item() == pytest.approx(0.45, abs=0.01)
    assert torch.equal(net.normalise(bright), bright)


def test_numpy_ssim_matches_the_training_ssim() -> None:
    from sllen.losses import ssim

    a, b = dark_image(2, 40, 50), dark_image(3, 40, 50)

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).permute(2, 0, 1)[None].double() / 255.0

    assert E.ssim_u8(a, b) == pytest.approx(float(ssim(t(a), t(b))), abs=1e-5)


def test_parse_models(tmp_path: object) -> None:
    models = E.parse_models(["a=x.onnx", "b=y/z.onnx"], defaults=False)
    assert {k: str(v) for k, v in models.items()} == {"a": "x.onnx", "b": "y/z.onnx"}
    with pytest.raises(ValueError):
        E.parse_models(["no-path"], defaults=False)


def test_oracle_lut_inverts_any_monotonic_tone_curve_and_no_more() -> None:
    from sllen.studies.ceiling import oracle_lut

    rng = np.random.default_rng(0)
    image = rng.integers(0, 64, (32, 32, 3), dtype=np.uint8)
    curve = np.round(255 * (np.arange(256) / 255) ** 0.4).astype(np.uint8)  # brightening
    target = curve[image]
    assert np.array_equal(oracle_lut(image, target), target)
    # A global curve cannot restore local detail: a shuffled target is not reached.
    shuffled = rng.permutation(target.reshape(-1, 3)).reshape(target.shape)
    assert E.psnr_u8(oracle_lut(image, shuffled), shuffled) < 20
