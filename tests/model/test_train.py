"""Training functions on synthetic in-memory data: steps, schedule, checkpoint, resume."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sllen import data as D
from sllen import train as T
from sllen.export import load_checkpoint
from sllen.model import build

from .conftest import TINY


def fake_data() -> T.Data:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    labels = rng.integers(0, 12, (4, 64, 64), dtype=np.uint8)
    sice = D.SicePairs(images, np.array([0, 1]), np.array([2, 3]))
    cam = D.CamVid(["0001TP_x.png", "a.png", "b.png", "c.png"], images, labels)
    return T.Data(sice=sice, sice_val=sice, camvid=cam, weights=D.class_weights())


@pytest.fixture
def fake_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """Training runs read fake_data() instead of the datasets."""
    data = fake_data()
    monkeypatch.setattr(T, "load_data", lambda _cfg: data)


def tiny_cfg(**kw: object) -> T.TrainConfig:
    base = T.TrainConfig(
        net=TINY,
        crop=32,
        batch_size=2,
        steps=6,
        log_every=2,
        eval_every=3,
        warmup_steps=2,
        camvid_enh_prob=0.5,
    )
    return dataclasses.replace(base, **kw)  # type: ignore[arg-type]


def test_config_from_json_resolves_variant_and_rejects_typos() -> None:
    cfg = T.TrainConfig.from_json({"variant": "large", "net": {"curve_maps": 8}, "lr": 0.01})
    assert cfg.net.enc_widths == (32, 64, 128, 192) and cfg.net.curve_maps == 8
    with pytest.raises(ValueError, match="unknown"):
        T.TrainConfig.from_json({"variant": "small", "learning_rate": 1})


@pytest.mark.parametrize("path", sorted(Path("configs").rglob("*.json")))
def test_shipped_configs_parse(path: Path) -> None:
    T.TrainConfig.from_json(json.loads(path.read_text()))


def test_lr_schedule_warms_up_then_decays() -> None:
    cfg = tiny_cfg(steps=100, warmup_steps=10)
    lrs = [T.lr_at(s, T.progress(s, 0.0, cfg), cfg) for s in range(100)]
    assert lrs[0] < lrs[9] <= cfg.lr
    assert lrs[-1] < 0.05 * cfg.lr
    assert T.progress(1, 30.0, dataclasses.replace(cfg, minutes=1.0)) == pytest.approx(0.5)


@pytest.mark.parametrize("step", [0, 1, 2, 4])
def test_train_step_moves_only_the_right_weights(step: int) -> None:
    cfg = tiny_cfg()
    model, _ema, opt, _, _, rng = T.resume_or_init(Path("/nonexistent"), cfg)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    kind, loss = T.train_step(model, opt, fake_data(), cfg, step, rng, torch.Generator())
    assert torch.isfinite(loss) and loss.ndim == 0 and not loss.requires_grad
    moved = {n for n, p in model.named_parameters() if not torch.equal(before[n], p)}
    ssan = {n for n in moved if n.startswith("ssan.")}
    if kind == "seg":
        assert ssan and not any(n.startswith("llemn.") for n in moved)
    else:
        assert not ssan and any(n.startswith("llemn.") for n in moved)


def test_run_saves_and_resumes(tmp_path: Path, fake_loader: None) -> None:
    cfg = tiny_cfg(steps=4)
    T.run(cfg, tmp_path)
    ck = torch.load(tmp_path / "last.pt", weights_only=False)
    assert ck["step"] == 4 and "ema" in ck and "optimizer" in ck["resume"]
    T.run(dataclasses.replace(cfg, steps=6), tmp_path)
    assert torch.load(tmp_path / "last.pt", weights_only=False)["step"] == 6
    loaded = load_checkpoint(tmp_path / "last.pt")
    assert loaded.weights == "ema" and loaded.step == 6 and loaded.config == cfg.net


def test_failed_save_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the checkpoint folder should be")
    with pytest.raises(OSError):
        T.save_atomic({"x": 1}, blocker / "last.pt")


def test_meter_averages_and_refuses_a_non_finite_loss() -> None:
    m = T.Meter()
    m.add("sice", torch.tensor(1.0))
    m.add("sice", torch.tensor(3.0))
    assert m.line(2) == "sice=2.0000"
    m.add("seg", torch.tensor(float("nan")))
    with pytest.raises(FloatingPointError, match="seg"):
        m.line(3)


def test_llemn_finetune_starts_from_a_run_and_moves_only_llemn(
    tmp_path: Path, fake_loader: None
) -> None:
    T.run(tiny_cfg(steps=2), tmp_path / "base")
    base = torch.load(tmp_path / "base" / "last.pt", weights_only=False)["ema"]
    cfg = tiny_cfg(steps=3, init_from=str(tmp_path / "base" / "last.pt"), finetune_llemn=True)
    T.run(cfg, tmp_path / "ft")
    tuned = torch.load(tmp_path / "ft" / "last.pt", weights_only=False)["model"]
    assert tuned.keys() == base.keys()
    for name, value in tuned.items():
        same = torch.equal(value, base[name])
        if name.startswith(("encoder.", "ssan.")):
            assert same, name  # frozen: the mask cannot change
    assert any(not torch.equal(v, base[n]) for n, v in tuned.items() if n.startswith("llemn."))


def test_mask_finetune_starts_as_ssan_and_moves_only_the_mask_head(
    tmp_path: Path, fake_loader: None
) -> None:
    T.run(tiny_cfg(steps=2), tmp_path / "base")
    init = str(tmp_path / "base" / "last.pt")
    base = torch.load(init, weights_only=False)["ema"]
    cfg = tiny_cfg(
        steps=3,
        init_from=init,
        finetune_mask=True,
        net=dataclasses.replace(TINY, mask_head=True, mask_refine=1),
    )
    start, *_ = T.resume_or_init(tmp_path / "nothing-yet", cfg)
    T.run(cfg, tmp_path / "ft")
    x = torch.rand(2, 3, 64, 64)
    start.eval()
    with torch.no_grad():
        feats = start.encode(x)
        seg = start.segment(feats)
        # Copied from SSaN, refine blocks at the identity: the same mask to the bit.
        assert torch.equal(start.mask_logits(feats, seg), seg.logits)
    tuned = torch.load(tmp_path / "ft" / "last.pt", weights_only=False)["model"]
    assert set(tuned) - set(base) == {n for n in tuned if n.startswith("mask_head.")}
    for name, value in base.items():
        assert torch.equal(value, tuned[name]), name  # the enhancement cannot change
    assert any(not torch.equal(v, start.state_dict()[n]) for n, v in tuned.items())
    with pytest.raises(ValueError, match="mask_head"):
        T.resume_or_init(tmp_path / "x", tiny_cfg(init_from=init, finetune_mask=True))


def test_enhancement_batches_mix_every_paired_source_in_its_share() -> None:
    data = fake_data()
    lol_images = np.stack([np.full((48, 64, 3), 10, np.uint8), np.full((48, 64, 3), 200, np.uint8)])
    data.lol = D.SicePairs(lol_images, np.array([0]), np.array([1]))
    data.exposure = D.identity_pairs(np.full((1, 40, 40, 3), 120, np.uint8))
    cfg = tiny_cfg(batch_size=8, lol_share=0.25, exposure_share=0.25, degrade_prob=1.0)
    assert T.batch_split(cfg) == {
        "lol": 2,
        "lol_identity": 0,
        "exposure": 2,
        "camvid_identity": 0,
        "sice": 4,
    }
    low, high = T.paired_batch(data, cfg, np.random.default_rng(0))
    assert low.shape == high.shape == (8, 3, 32, 32)
    # Sources come in batch_split's order: LOL, then the exposure identity pairs (no degradation).
    assert float(high[:2].mean()) == pytest.approx(200 / 255, abs=1e-6)
    assert torch.equal(low[2:4], high[2:4])
    with pytest.raises(ValueError, match="exceed"):
        T.batch_split(tiny_cfg(lol_share=0.8, exposure_share=0.8))


def test_seg_batches_include_mildly_dim_frames() -> None:
    cfg = tiny_cfg(batch_size=64, seg_dark_prob=0.0, seg_mild_prob=1.0)
    data = fake_data()
    data.camvid.dusk[:] = False
    x, _ = T.seg_batch(data, cfg, np.random.default_rng(0), torch.Generator().manual_seed(0))
    ratio = float(x.mean()) / (float(data.camvid.images.mean()) / 255)
    assert 0.25 < ratio < 0.65


def test_lol_identity_pairs_map_our485_references_to_themselves() -> None:
    data = fake_data()
    lol_images = np.stack([np.full((48, 64, 3), 10, np.uint8), np.full((48, 64, 3), 90, np.uint8)])
    data.lol = D.SicePairs(lol_images, np.array([0]), np.array([1]))
    data.lol_identity = D.identity_pairs(data.lol.images[data.lol.high_idx])
    cfg = tiny_cfg(batch_size=4, lol_identity_share=0.5, degrade_prob=1.0)
    low, high = T.paired_batch(data, cfg, np.random.default_rng(0))
    # The identity pairs are never degraded: the reference is already a finished photo.
    assert torch.equal(low[:2], high[:2])
    assert float(high[:2].mean()) == pytest.approx(90 / 255, abs=1e-6)


def test_dark_expert_starts_as_llemn_then_trains_apart_from_its_router(
    tmp_path: Path, fake_loader: None
) -> None:
    dark_net = dataclasses.replace(TINY, dark_expert=True)
    T.run(tiny_cfg(steps=2), tmp_path / "base")
    init = str(tmp_path / "base" / "last.pt")
    cfg = tiny_cfg(steps=3, init_from=init, finetune_dark=True, net=dark_net)
    start, *_ = T.resume_or_init(tmp_path / "nothing-yet", cfg)
    T.run(cfg, tmp_path / "dark")
    routed = tiny_cfg(
        steps=3,
        init_from=str(tmp_path / "dark" / "last.pt"),
        finetune_router=True,
        net=dark_net,
    )
    T.run(routed, tmp_path / "router")
    base = torch.load(init, weights_only=False)["ema"]
    base_model = build(TINY).to(memory_format=torch.channels_last)  # as start: same kernels
    base_model.load_state_dict(base)
    x = torch.rand(2, 3, 64, 64)
    start.eval()
    base_model.eval()
    start.force_route = None
    with torch.no_grad():
        # A copy of LLEmN: whatever the router says, the same enhancement to the bit.
        assert torch.equal(start(x)[0], base_model(x)[0])
    dark = torch.load(tmp_path / "dark" / "last.pt", weights_only=False)["model"]
    routed_sd = torch.load(tmp_path / "router" / "last.pt", weights_only=False)["model"]
    for name, value in base.items():
        assert torch.equal(value, dark[name]), name
    moved = {
        n
        for n, v in dark.items()
        if n in start.state_dict() and not torch.equal(v, start.state_dict()[n])
    }
    assert moved and all(n.startswith("dark.") for n in moved)
    dark_ema = torch.load(tmp_path / "dark" / "last.pt", weights_only=False)["ema"]
    moved = {n for n, v in routed_sd.items() if not torch.equal(v, dark_ema[n])}
    assert moved and all(n.startswith("router.") for n in moved)
    with pytest.raises(ValueError, match="dark_expert"):
        T.resume_or_init(tmp_path / "x", tiny_cfg(init_from=init, finetune_dark=True))
