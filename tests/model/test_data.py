"""Data pipeline on synthetic fixtures (real data only where present, else skipped)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from sllen import data as D


def scene(seed: int, n: int = 64) -> np.ndarray:
    """A smooth random grayscale 'scene' (no shared block grid between seeds)."""
    rng = np.random.default_rng(seed)
    base = Image.fromarray(rng.random((7, 7)).astype(np.float32), mode="F")
    return np.asarray(base.resize((n, n), Image.Resampling.BICUBIC)) * 200 + 10


def test_grad_corr_separates_exposures_from_scenes() -> None:
    a = scene(1)
    assert D.grad_corr(a, 0.1 * a) > 0.95  # same scene, darker exposure
    assert D.grad_corr(a, scene(2)) < 0.3


def test_segment_runs_breaks_at_scene_change_and_id_gap() -> None:
    s1, s2, s3 = scene(1), scene(2), scene(3)
    ids = [1, 2, 3, 4, 5, 9, 10]
    thumbs = [0.1 * s1, 0.5 * s1, s1, 0.2 * s2, s2, s2 * 0.3, s3]
    runs = D._segment_runs(ids, thumbs)
    # 5 -> 9 is an id gap even though the frames match; 9 -> 10 is a scene change.
    assert runs == [[1, 2, 3], [4, 5], [9], [10]]


def test_pairs_take_low_frames_and_the_target_nearest_120() -> None:
    s = scene(4)
    run = [1, 2, 3, 4]
    lumas = {1: 10.0, 2: 40.0, 3: 100.0, 4: 125.0}
    thumbs = {i: s * lumas[i] / 100 for i in run}
    assert D._pairs([run], lumas, thumbs) == [(1, 4), (2, 4)]


def test_split_is_by_run_and_deterministic() -> None:
    runs = [[i * 10 + k for k in range(5)] for i in range(200)]
    pairs = [(r[0], r[-1]) for r in runs]
    index = D.SiceIndex(ids=[i for r in runs for i in r], lumas=[], runs=runs, pairs=pairs)
    val = D.split_pairs(index, 0.12, val=True)
    train = D.split_pairs(index, 0.12, val=False)
    assert set(val).isdisjoint(train) and len(val) + len(train) == len(pairs)
    assert 0.05 < len(val) / len(pairs) < 0.2
    assert val == D.split_pairs(index, 0.12, val=True)


def test_darken_is_dark_noisy_and_quantised() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.full((4, 3, 32, 32), 0.6)
    y = D.darken(x, gen)
    assert y.shape == x.shape and float(y.min()) >= 0 and float(y.max()) <= 1
    assert float(y.mean()) < 0.25
    assert torch.allclose(y * 255, torch.round(y * 255), atol=1e-4)
    light = D.darken(x, gen, strength=0.0)
    assert abs(float(light.mean()) - 0.6) < 0.02


def test_samplers_give_aligned_crops() -> None:
    rng = np.random.default_rng(0)
    images = np.random.default_rng(1).integers(0, 256, (3, 40, 48, 3), dtype=np.uint8)
    pairs = D.SicePairs(images, low_idx=np.array([0, 1]), high_idx=np.array([0, 1]))
    low, high = pairs.sample(rng, 4, 16)
    assert low.shape == (4, 3, 16, 16) and torch.equal(low, high)
    labels = images[..., 0] % 12
    cam = D.CamVid(["0001TP_a.png", "b.png", "c.png"], images, labels)
    x, y, dusk = cam.sample(rng, 5, 16, daylight_only=True)
    assert x.shape == (5, 3, 16, 16) and y.shape == (5, 16, 16) and y.dtype == torch.int64
    assert not dusk.any()
    assert torch.equal((x[:, 0] * 255).round().long() % 12, y)  # label crop matches image crop


@pytest.mark.skipif(not (D.DEFAULT_DATA_ROOT / "sice").is_dir(), reason="no SICE data")
def test_real_sice_index_has_clean_pairs() -> None:
    index = D.scan_sice(D.DEFAULT_DATA_ROOT / "sice")
    lumas = dict(zip(index.ids, index.lumas, strict=True))
    assert len(index.pairs) > 100
    for low, high in index.pairs:
        assert D.LOW_LUMA[0] <= lumas[low] <= D.LOW_LUMA[1]
        assert D.HIGH_LUMA[0] <= lumas[high] <= D.HIGH_LUMA[1]
    assert D.split_pairs(index, 0.12, val=True)


def test_dihedral_samples_stay_aligned_and_cover_all_orientations() -> None:
    rng = np.random.default_rng(0)
    image = np.arange(16 * 16 * 3, dtype=np.int64).reshape(16, 16, 3) % 251
    images = np.stack([image, image]).astype(np.uint8)
    pairs = D.SicePairs(images, low_idx=np.array([0]), high_idx=np.array([1]))
    low, high = pairs.sample(rng, 64, 16, dihedral=True)
    assert torch.equal(low, high)  # the same orientation for both frames of a pair
    seen = {tuple(low[i, 0].flatten()[:3].tolist()) for i in range(64)}
    assert len(seen) == 8  # 8 distinct corners/directions: every flip and transpose


def test_whole_frame_samples_are_shrunk_once() -> None:
    images = np.random.default_rng(2).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    pairs = D.SicePairs(images, low_idx=np.array([0]), high_idx=np.array([1]))
    rng = np.random.default_rng(0)
    low, _high = pairs.sample(rng, 3, 16, whole_prob=1.0)
    assert low.shape == (3, 3, 16, 16)
    expect = torch.from_numpy(D._shrink(images[0], 16).copy()).permute(2, 0, 1).float() / 255
    assert torch.allclose(low[0], expect) or torch.allclose(low[0], expect.flip(-1))
    assert len(pairs._shrunk) == 2  # one cached shrink per frame, reused by all 3 samples


def test_darker_than_keeps_pairs_by_their_input_s_luma() -> None:
    levels = [20, 49, 51, 80]  # four inputs, then their targets
    images = np.stack([np.full((8, 8, 3), v, np.uint8) for v in levels + [120] * 4])
    pairs = D.SicePairs(images, low_idx=np.arange(4), high_idx=np.arange(4, 8))
    kept = D.darker_than(pairs, 50.0)
    assert kept.low_idx.tolist() == [0, 1] and kept.high_idx.tolist() == [4, 5]
    assert kept.images is images  # a view of the same frames, not a copy


def test_packed_copy_keeps_the_pairs_and_labels(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from sllen import pack

    src = tmp_path / "src"
    (src / "sice").mkdir(parents=True)
    for i, (seed, gain) in enumerate([(1, 0.1), (1, 1.0), (2, 0.1), (2, 1.0)]):
        s = np.clip(scene(seed, 128) * gain * 1.1, 0, 255).astype(np.uint8)
        Image.fromarray(np.stack([s] * 3, -1)).save(src / "sice" / f"{i + 1}.jpg", quality=95)
    for split in ("train", "trainannot"):
        (src / "camvid" / split).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for k, name in enumerate(("0001TP_1.png", "0001TP_2.png", "b.png")):
        photo = np.stack([scene(10 * k + c, 32) for c in range(3)], -1)[:24]
        Image.fromarray(photo.astype(np.uint8)).save(src / "camvid" / "train" / name)
        Image.fromarray(rng.integers(0, 12, (24, 32), dtype=np.uint8)).save(
            src / "camvid" / "trainannot" / name
        )
    out = tmp_path / "packed"
    pack.main(["--src", str(src), "--out", str(out), "--val-fraction", "0.0"])
    full = D.scan_sice(src / "sice")
    assert full.pairs and D.scan_sice(out / "sice") == full
    a = D.CamVid.load(src / "camvid", "train", dusk="all")
    b = D.CamVid.load(out / "camvid", "train", dusk="all")
    assert a.names == b.names and np.array_equal(a.labels, b.labels)  # labels stay lossless
    assert np.abs(a.images.astype(int) - b.images.astype(int)).mean() < 12  # JPEG, 4:2:0
    assert list(b.dusk) == [True, True, False]
    exposure_full = D.load_exposure_pairs(src / "sice", 0.0, val=False)
    exposure_packed = D.load_exposure_pairs(out / "sice", 0.0, val=False)
    assert len(exposure_packed) == len(exposure_full)
    assert np.array_equal(exposure_packed.images, exposure_full.images)

    for part in ("low", "high"):  # LOL packs as a part of its own, bytes unchanged
        (src / "lol" / "our485" / part).mkdir(parents=True)
        Image.fromarray(np.stack([scene(7, 32)] * 3, -1).astype(np.uint8)).save(
            src / "lol" / "our485" / part / "1.png"
        )
    pack.main(["--src", str(src), "--out", str(tmp_path / "lol_part"), "--sources", "lol"])
    lol = D.load_lol(tmp_path / "lol_part" / "lol", "our485")
    assert np.array_equal(lol.images, D.load_lol(src / "lol", "our485").images)
    assert not (tmp_path / "lol_part" / "sice").exists()


def test_exposure_shrink_pulls_target_brightness_to_one_level() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(20, 120, (64, 64, 3)).astype(np.float32)
    # Pair 0's target is darker than the level, pair 1's brighter; inputs are irrelevant here.
    images = np.stack([base * 0.2, base * 0.9, base * 1.6]).clip(0, 255).astype(np.uint8)
    pairs = D.SicePairs(images, low_idx=np.array([0, 0]), high_idx=np.array([1, 2]))
    level = 0.4

    def mean_luma(t: torch.Tensor) -> list[float]:
        return [float(D.luma(x.permute(1, 2, 0)).mean()) for x in t]

    for shrink, spread in ((0.0, 0.1), (1.0, 0.02)):
        _, high = pairs.sample(
            np.random.default_rng(1),
            16,
            64,
            whole_prob=0.0,
            exposure_shrink=shrink,
            exposure_luma=level,
        )
        lumas = mean_luma(high)
        if shrink == 0:  # untouched: the two targets keep their own brightness
            assert max(lumas) - min(lumas) > spread
        else:  # every target at the level (whole 64 px crops of 64 px frames)
            assert all(abs(v - level) < spread for v in lumas)


def test_exposure_pairs_keep_good_frames_and_pull_bad_ones_to_the_target() -> None:
    runs = [[1, 2, 3, 4, 5]]
    lumas = [10.0, 60.0, 100.0, 125.0, 220.0]
    index = D.SiceIndex(ids=[1, 2, 3, 4, 5], lumas=lumas, runs=runs, pairs=[])
    val = D.is_val_run(runs[0], 0.12)
    pairs = D.exposure_pairs(index, 0.12, val=val)
    # Normal frames map to themselves; half- and over-exposed ones to the frame nearest 120;
    # dark frames are the ordinary pairs' business.
    assert sorted(pairs) == [(2, 4), (3, 3), (4, 4), (5, 4)]
    assert D.exposure_pairs(index, 0.12, val=not val) == []
    # Below half_max only: a frame at luma 60 may pass for well exposed (CamVid's daylight).
    assert sorted(D.exposure_pairs(index, 0.12, val=val, half_max=50)) == [(3, 3), (4, 4), (5, 4)]
    assert D.sice_frames(index, 0.12, val, 90, 170) == [3, 4]


def test_degrade_adds_jpeg_blocks_and_noise_but_keeps_the_picture() -> None:
    rng = np.random.default_rng(0)
    image = np.repeat(np.repeat(scene(5, 64)[..., None], 3, -1) * 0.2, 1, 0).astype(np.uint8)
    out = D.degrade(image, rng, quality=(30, 30))
    assert out.shape == image.shape and out.dtype == np.uint8
    assert not np.array_equal(out, image)
    assert np.abs(out.astype(float) - image).mean() < 4
    assert np.array_equal(D.jpeg(image, 95).shape, image.shape)


def test_dim_is_a_mild_gain() -> None:
    x = torch.full((64, 3, 16, 16), 0.8)
    y = D.dim(x, torch.Generator().manual_seed(0))
    per_image = y.mean(dim=(1, 2, 3)) / 0.8
    assert float(per_image.min()) > 0.27 and float(per_image.max()) < 0.63
