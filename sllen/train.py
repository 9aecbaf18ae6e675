"""Alternating training of SLLEN on CPU (fp32, channels_last) or a CUDA GPU (``device``).

    python -m sllen.train --config configs/small.json --out runs/small [--minutes 35]

Every ``seg_every``-th step is a segmentation step (encoder + SSaN, weighted CE on CamVid,
mostly darkened); the others are enhancement steps (encoder + LLEmN fed with SSaN
features): Charbonnier + (1 - SSIM) on SICE pairs or, with ``camvid_enh_prob``, on
darkened CamVid with a semantic-consistency term (KL between SSaN's softmax on the
enhanced image and on the normal-light image). SSaN's own weights only move in
segmentation steps.

``runs/<name>/last.pt`` holds weights, EMA weights and the resume state; it is written
atomically every ``save_every_min`` minutes and at the end, and training resumes from it
automatically. The resolved config is saved as ``runs/<name>/config.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sllen import data as D
from sllen.files import write_atomic
from sllen.losses import brightness, charbonnier, semantic_kl, ssim
from sllen.model import IGNORE_INDEX, SLLEN, VARIANTS, NetConfig, build, up

log = logging.getLogger("sllen.train")


@dataclass(frozen=True)
class TrainConfig:
    variant: str = "small"
    net: NetConfig = field(default_factory=NetConfig)
    data_root: str = str(D.DEFAULT_DATA_ROOT)
    crop: int = 256
    batch_size: int = 8
    steps: int = 20000
    minutes: float = 0.0  # wall-clock budget; 0 = steps only. Whichever ends first.
    lr: float = 1e-3
    min_lr_ratio: float = 0.02
    warmup_steps: int = 150
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    ema_decay: float = 0.998
    seg_every: int = 3  # 1 in seg_every steps is a segmentation step
    camvid_enh_prob: float = 0.3
    whole_prob: float = 0.0  # SICE samples shown as the whole frame shrunk to ``crop``
    dihedral: bool = False  # SICE samples in all 8 orientations, not just mirrored
    exposure_shrink: float = 0.0  # SICE targets' brightness pulled towards exposure_luma
    exposure_luma: float = D.EXPOSURE_LUMA
    seg_dark_prob: float = 0.75  # daylight CamVid darkened in seg steps
    seg_mild_prob: float = 0.0  # ... or mildly dimmed (sRGB gain 0.3-0.6); the rest as shot
    # Shares of each paired enhancement batch beside SICE dark -> normal: LOL-v1 our485
    # pairs, SICE exposure pairs (normal -> itself, over- and half-exposed -> normal) and
    # CamVid daylight frames -> themselves. ``degrade_prob``: dark inputs (SICE, LOL) get
    # sensor noise and JPEG compression at quality 30-95, as phone and dashcam photos do.
    lol_share: float = 0.0
    lol_identity_share: float = 0.0  # our485 ``high`` frames -> themselves
    exposure_share: float = 0.0
    exposure_half_max: float = D.HIGH_LUMA[0]  # half-exposed pairs only below this luma
    lol_low_max: float = 256.0  # LOL pairs only where the low frame is below this luma
    camvid_identity_share: float = 0.0
    degrade_prob: float = 0.0
    gate_lr_mult: float = 10.0  # the exposure gate's learning rate over ``lr``
    w_charbonnier: float = 1.0
    w_ssim: float = 0.5
    w_semantic: float = 0.1
    w_brightness: float = 0.0
    val_fraction: float = 0.12
    threads: int = 2
    # Measured, training step of `small`: bf16 autocast 1.5x slower than fp32 on a Xeon with
    # AVX512-BF16 but no AMX, 7x slower on an EPYC without either. Worth trying only with AMX.
    bf16: bool = False
    seed: int = 0
    device: str = "cpu"  # "cuda" where a GPU is lent; the data stays in host memory
    # A fresh run may start from another run's EMA weights (fresh optimizer and schedule), and
    # may then train LLEmN alone: no segmentation steps, encoder and SSaN frozen, so the mask
    # stays exactly that of ``init_from``.
    init_from: str = ""
    finetune_llemn: bool = False
    # ... or the exposure gate alone: enhancement and mask stay those of ``init_from`` except
    # for how much of the enhancement each image gets.
    finetune_gate: bool = False
    # ... or the mask head alone (``net.mask_head``, copied from SSaN where ``init_from``
    # has none): every step a segmentation step on the frozen encoder; the enhancement stays
    # that of ``init_from`` bit for bit.
    finetune_mask: bool = False
    # ... or the dark expert alone (``net.dark_expert``, copied from LLEmN where
    # ``init_from`` has none), with every image routed to it; then ``finetune_router``
    # trains the router alone, with both decoders fixed.
    finetune_dark: bool = False
    finetune_router: bool = False
    log_every: int = 25
    eval_every: int = 400
    save_every_min: float = 3.0

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        d = dict(d)
        variant = d.get("variant", cls.variant)
        net = asdict(VARIANTS[variant]) | d.pop("net", {})
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        return cls(**d, net=NetConfig.from_dict(net))


# --------------------------------------------------------------------------- state


@dataclass
class Data:
    sice: D.SicePairs
    sice_val: D.SicePairs
    camvid: D.CamVid
    weights: Tensor
    lol: D.SicePairs | None = None
    lol_identity: D.SicePairs | None = None
    exposure: D.SicePairs | None = None
    camvid_identity: D.SicePairs | None = None


def load_data(cfg: TrainConfig) -> Data:
    root = Path(cfg.data_root)
    camvid = D.CamVid.load(root / "camvid", "train", dusk="drop_holdout")
    need_lol = cfg.lol_share > 0 or cfg.lol_identity_share > 0
    lol = D.load_lol(root / "lol", "our485") if need_lol else None
    return Data(
        sice=D.SicePairs.load(root / "sice", cfg.val_fraction, val=False),
        sice_val=D.SicePairs.load(root / "sice", cfg.val_fraction, val=True),
        camvid=camvid,
        weights=D.class_weights().to(cfg.device),
        lol=D.darker_than(lol, cfg.lol_low_max)
        if lol is not None and cfg.lol_low_max < 256
        else lol,
        lol_identity=(
            D.identity_pairs(lol.images[lol.high_idx])
            if lol is not None and cfg.lol_identity_share > 0
            else None
        ),
        exposure=(
            D.load_exposure_pairs(
                root / "sice", cfg.val_fraction, val=False, half_max=cfg.exposure_half_max
            )
            if cfg.exposure_share > 0
            else None
        ),
        camvid_identity=(
            D.identity_pairs(camvid.images[~camvid.dusk]) if cfg.camvid_identity_share > 0 else None
        ),
    )


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    # The exposure gate and the router start from zero weights beside converged ones: a
    # higher learning rate lets them learn in a fine-tune's few thousand steps.
    gate = [p for n, p in named if n.startswith(("gate.", "router."))]
    rest = [p for n, p in named if not n.startswith(("gate.", "router."))]
    decay = [p for p in rest if p.ndim > 1]
    no_decay = [p for p in rest if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay, "lr_mult": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "lr_mult": 1.0},
    ]
    if gate:
        groups.append({"params": gate, "weight_decay": 0.0, "lr_mult": cfg.gate_lr_mult})
    return torch.optim.AdamW(
        groups,
        lr=cfg.lr,
        # One kernel for all parameters: a small net's step is launch-bound on a GPU.
        fused=cfg.device.startswith("cuda") or None,
    )


def progress(step: int, elapsed_s: float, cfg: TrainConfig) -> float:
    p = step / cfg.steps
    if cfg.minutes > 0:
        p = max(p, elapsed_s / (cfg.minutes * 60.0))
    return min(p, 1.0)


def lr_at(step: int, prog: float, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine over the training progress (steps or time)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    floor = cfg.lr * cfg.min_lr_ratio
    return floor + 0.5 * (cfg.lr - floor) * (1.0 + math.cos(math.pi * prog))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, step: int, decay: float) -> None:
    d = min(decay, (1.0 + step) / (10.0 + step))
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - d)


def autocast(cfg: TrainConfig) -> contextlib.AbstractContextManager[Any]:
    if cfg.bf16:
        return torch.autocast(torch.device(cfg.device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def full_precision(x: Tensor) -> contextlib.AbstractContextManager[Any]:
    return torch.autocast(x.device.type, enabled=False)


# --------------------------------------------------------------------------- steps


def seg_loss(
    model: SLLEN, x: Tensor, labels: Tensor, weights: Tensor, mask_only: bool = False
) -> Tensor:
    """Class-weighted cross-entropy of SSaN and, where the net has one, of its mask head;
    ``mask_only``: of the mask head alone, on features computed without a graph."""
    if mask_only:
        if model.mask_head is None:
            raise ValueError("mask_only needs net.mask_head")
        with torch.no_grad():
            feats = model.encode(x)
        heads = [model.mask_head(feats).logits]
    else:
        feats = model.encode(x)
        heads = [model.segment(feats).logits]
        if model.mask_head is not None:
            heads.append(model.mask_head(feats).logits)
    with full_precision(x):
        return sum(
            F.cross_entropy(
                up(h.float(), 4), labels, weight=weights, ignore_index=IGNORE_INDEX
            )  # up: [B, 11, H, W]
            for h in heads
        )  # type: ignore[return-value]


def seg_batch(
    data: Data, cfg: TrainConfig, rng: np.random.Generator, gen: torch.Generator
) -> tuple[Tensor, Tensor]:
    x, labels, dusk = data.camvid.sample(rng, cfg.batch_size, cfg.crop, device=cfg.device)
    dark = D.darken(x, gen)
    light = D.darken(x, gen, strength=0.3)  # the dusk frames are dark already
    r = torch.rand(x.shape[0], 1, 1, 1, generator=gen, device=x.device)
    daylight = ~dusk.view(-1, 1, 1, 1)
    use_dark = (r < cfg.seg_dark_prob) & daylight
    use_mild = (r >= cfg.seg_dark_prob) & (r < cfg.seg_dark_prob + cfg.seg_mild_prob) & daylight
    x = torch.where(use_dark, dark, torch.where(dusk.view(-1, 1, 1, 1), light, x))
    if cfg.seg_mild_prob > 0:
        x = torch.where(use_mild, D.dim(x, gen), x)
    return x.contiguous(memory_format=torch.channels_last), labels


def frozen_encoder(cfg: TrainConfig) -> bool:
    return cfg.finetune_llemn or cfg.finetune_gate or cfg.finetune_dark or cfg.finetune_router


def enhanced(model: SLLEN, x: Tensor, cfg: TrainConfig) -> Tensor:
    """The enhanced image; with the encoder and SSaN frozen their features are computed
    without a graph, and the mask head, which no enhancement loss reaches, is not run."""
    if not frozen_encoder(cfg):
        return model(x)[0]
    with torch.no_grad():
        feats = model.encode(x)
        seg = model.segment(feats)
    return model.enhance(x, feats, seg)


def enh_loss(model: SLLEN, dark: Tensor, target: Tensor, cfg: TrainConfig) -> tuple[Tensor, Tensor]:
    out = enhanced(model, dark, cfg)
    with full_precision(out):  # SSIM's variances need fp32
        out = out.float()
        l_c = charbonnier(out, target)
        l_s = 1.0 - ssim(out.clamp(0, 1), target)
        loss = cfg.w_charbonnier * l_c + cfg.w_ssim * l_s
        if cfg.w_brightness > 0:
            loss = loss + cfg.w_brightness * brightness(out, target)
    return loss, out


def batch_split(cfg: TrainConfig) -> dict[str, int]:
    """How many samples of each paired source make one enhancement batch (SICE the rest)."""
    n = {
        "lol": round(cfg.batch_size * cfg.lol_share),
        "lol_identity": round(cfg.batch_size * cfg.lol_identity_share),
        "exposure": round(cfg.batch_size * cfg.exposure_share),
        "camvid_identity": round(cfg.batch_size * cfg.camvid_identity_share),
    }
    n["sice"] = cfg.batch_size - sum(n.values())
    if n["sice"] < 0:
        raise ValueError("the shares of the paired sources beside SICE exceed 1")
    return n


def paired_batch(data: Data, cfg: TrainConfig, rng: np.random.Generator) -> tuple[Tensor, Tensor]:
    """One enhancement batch mixed from the paired sources, in the shares of ``batch_split``."""
    lows, highs = [], []
    for name, n in batch_split(cfg).items():
        pairs = data.sice if name == "sice" else getattr(data, name)
        if n == 0 or pairs is None:
            continue
        dark_input = name in ("sice", "lol")
        low, high = pairs.sample(
            rng,
            n,
            cfg.crop,
            cfg.whole_prob,
            cfg.dihedral,
            device=cfg.device,
            exposure_shrink=cfg.exposure_shrink if name == "sice" else 0.0,
            exposure_luma=cfg.exposure_luma,
            degrade_prob=cfg.degrade_prob if dark_input else 0.0,
        )
        lows.append(low)
        highs.append(high)
    cat = torch.cat(lows).contiguous(memory_format=torch.channels_last)
    return cat, torch.cat(highs).contiguous(memory_format=torch.channels_last)


def enh_step_loss(
    model: SLLEN, data: Data, cfg: TrainConfig, rng: np.random.Generator, gen: torch.Generator
) -> tuple[str, Tensor]:
    if rng.random() >= cfg.camvid_enh_prob:
        low, high = paired_batch(data, cfg, rng)
        loss, _ = enh_loss(model, low, high, cfg)
        return "pairs", loss
    normal, _, _ = data.camvid.sample(
        rng, cfg.batch_size, cfg.crop, daylight_only=True, device=cfg.device
    )
    dark = D.darken(normal, gen).contiguous(memory_format=torch.channels_last)
    loss, out = enh_loss(model, dark, normal, cfg)
    with torch.no_grad():
        ref = model.segment(model.encode(normal)).logits.float()
    pred = model.segment(model.encode(out.clamp(0, 1))).logits.float()
    with full_precision(pred):
        return "camvid", loss + cfg.w_semantic * semantic_kl(pred, ref)


def train_step(
    model: SLLEN,
    opt: torch.optim.Optimizer,
    data: Data,
    cfg: TrainConfig,
    step: int,
    rng: np.random.Generator,
    gen: torch.Generator,
) -> tuple[str, Tensor]:
    """One step; the loss comes back as a detached tensor: reading it here would make
    the host wait for the GPU every step (the loop checks it at each log line)."""
    opt.zero_grad(set_to_none=True)
    with autocast(cfg):
        if cfg.finetune_mask:
            x, labels = seg_batch(data, cfg, rng, gen)
            kind, loss = "seg", seg_loss(model, x, labels, data.weights, mask_only=True)
        elif not frozen_encoder(cfg) and step % cfg.seg_every == 0:
            x, labels = seg_batch(data, cfg, rng, gen)
            kind, loss = "seg", seg_loss(model, x, labels, data.weights)
        else:
            kind, loss = enh_step_loss(model, data, cfg, rng, gen)
    loss.backward()
    if kind != "seg":
        for p in model.ssan.parameters():  # SSaN only learns from segmentation steps
            p.grad = None
    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    return kind, loss.detach()


# --------------------------------------------------------------------------- eval


def psnr(a: Tensor, b: Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return 10.0 * math.log10(1.0 / max(mse, 1e-10))


@torch.no_grad()
def evaluate(
    model: SLLEN, pairs: D.SicePairs, cfg: TrainConfig, limit: int = 1000
) -> dict[str, float]:
    """PSNR on full 512x512 SICE validation pairs (input PSNR for reference)."""
    model.eval()
    ps, ps_in = [], []
    for k in range(min(limit, len(pairs))):
        low, high = (D.to_tensor(a[None], cfg.device) for a in pairs.pair(k))
        with autocast(cfg):
            out, _ = model(low)
        out = torch.round(out.float().clamp(0, 1) * 255) / 255
        ps.append(psnr(out, high))
        ps_in.append(psnr(low, high))
    model.train()
    return {"psnr": float(np.mean(ps)), "psnr_input": float(np.mean(ps_in))}


# --------------------------------------------------------------------------- checkpoint


def inference_state(ckpt: dict[str, Any]) -> dict[str, Tensor]:
    """A checkpoint's EMA weights, or its raw ones where it has no EMA."""
    state = ckpt.get("ema")
    return dict(state if state is not None else ckpt["model"])


def save_atomic(obj: object, path: Path) -> None:
    """torch.save to a temp file, fsync, rename. Any failure raises."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_atomic(path, buf.getvalue())


def checkpoint(
    model: SLLEN,
    ema: SLLEN,
    opt: torch.optim.Optimizer,
    cfg: TrainConfig,
    step: int,
    elapsed_s: float,
    rng: np.random.Generator,
) -> dict[str, Any]:
    return {
        "config": json.loads(json.dumps(asdict(cfg))),
        "model": model.state_dict(),
        "ema": ema.state_dict(),
        "step": step,
        "resume": {
            "optimizer": opt.state_dict(),
            "elapsed_s": elapsed_s,
            "rng": rng.bit_generator.state,
        },
    }


# --------------------------------------------------------------------------- loop


@dataclass
class Meter:
    """Running loss sums per step kind, kept as tensors until a log line reads them."""

    sums: dict[str, Tensor] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, v: Tensor) -> None:
        self.sums[kind] = self.sums[kind] + v if kind in self.sums else v
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def line(self, step: int) -> str:
        means = {k: float(self.sums[k]) / self.counts[k] for k in sorted(self.sums)}
        bad = [k for k, v in means.items() if not math.isfinite(v)]
        if bad:
            raise FloatingPointError(f"before step {step}: {', '.join(bad)} loss is not finite")
        self.sums.clear()
        self.counts.clear()
        return " ".join(f"{k}={v:.4f}" for k, v in means.items())


def setup_logging(out: Path) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for h in (logging.StreamHandler(sys.stdout), logging.FileHandler(out / "train.log")):
        h.setFormatter(fmt)
        root.addHandler(h)


def load_initial(model: SLLEN, path: str) -> None:
    """Another run's EMA weights. A module they lack (e.g. a new exposure gate or router)
    starts fresh; a new mask head starts as a copy of SSaN (its extra blocks as the
    identity), a new dark expert as a copy of LLEmN."""
    init = torch.load(path, map_location="cpu", weights_only=False)
    missing, unexpected = model.load_state_dict(inference_state(init), strict=False)
    new_modules = ("gate.", "mask_head.", "dark.", "router.")
    if unexpected or any(not k.startswith(new_modules) for k in missing):
        raise ValueError(f"{path}: missing {missing}, unexpected {unexpected}")
    if model.dark is not None and any(k.startswith("dark.") for k in missing):
        model.dark.load_state_dict(model.llemn.state_dict())
    if model.mask_head is not None and any(k.startswith("mask_head.") for k in missing):
        copied = model.mask_head.load_state_dict(model.ssan.state_dict(), strict=False)
        if any(not k.startswith("hsf.") for k in copied.unexpected_keys):
            raise ValueError(f"mask head from SSaN: unexpected {copied.unexpected_keys}")
    log.info("initialised from %s (step %s; new: %s)", path, init.get("step"), missing)


def freeze(model: SLLEN, cfg: TrainConfig) -> None:
    """What a fine-tune leaves as it was (``finetune_llemn``, ``_gate``, ``_mask``,
    ``_dark``, ``_router``)."""
    if frozen_encoder(cfg) or cfg.finetune_mask:
        model.encoder.requires_grad_(False)
        model.ssan.requires_grad_(False)
    if cfg.finetune_dark or cfg.finetune_router:
        if model.dark is None or model.router is None:
            raise ValueError("finetune_dark and finetune_router need net.dark_expert")
        model.requires_grad_(False)
        (model.dark if cfg.finetune_dark else model.router).requires_grad_(True)
    if cfg.finetune_gate:
        if model.gate is None:
            raise ValueError("finetune_gate needs net.exposure_gate")
        model.llemn.requires_grad_(False)
    if cfg.finetune_mask:
        if model.mask_head is None:
            raise ValueError("finetune_mask needs net.mask_head")
        model.llemn.requires_grad_(False)
        if model.gate is not None:
            model.gate.requires_grad_(False)


def resume_or_init(
    out: Path, cfg: TrainConfig, resume_from: Path | None = None
) -> tuple[SLLEN, SLLEN, torch.optim.AdamW, int, float, np.random.Generator]:
    """Resume from ``out/last.pt``; failing that from ``resume_from`` (e.g. the small
    committed checkpoints/<run>/last.pt); failing that start fresh."""
    torch.manual_seed(cfg.seed)
    model = build(cfg.net).to(cfg.device, memory_format=torch.channels_last)
    ema = build(cfg.net).to(cfg.device, memory_format=torch.channels_last)
    if cfg.init_from:
        load_initial(model, cfg.init_from)
    ema.load_state_dict(model.state_dict())
    ema.requires_grad_(False)
    freeze(model, cfg)
    if cfg.finetune_dark:
        model.force_route = ema.force_route = 1.0
    opt = make_optimizer(model, cfg)
    rng = np.random.default_rng(cfg.seed)
    step, elapsed = 0, 0.0
    last = out / "last.pt"
    if not last.exists() and resume_from is not None and resume_from.exists():
        last = resume_from
    if last.exists():
        ck = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        ema.load_state_dict(ck["ema"])
        opt.load_state_dict(ck["resume"]["optimizer"])
        rng.bit_generator.state = ck["resume"]["rng"]
        step, elapsed = int(ck["step"]), float(ck["resume"]["elapsed_s"])
        log.info("resumed from %s at step %d (%.1f min trained)", last, step, elapsed / 60)
    return model, ema, opt, step, elapsed, rng


def batches_done(step: int, cfg: TrainConfig, elapsed: float) -> bool:
    return progress(step, elapsed, cfg) >= 1.0


def run(cfg: TrainConfig, out: Path, resume_from: Path | None = None) -> None:
    torch.set_num_threads(cfg.threads)
    torch.set_flush_denormal(True)  # denormals in tiny gradients stall CPU kernels
    torch.backends.cudnn.benchmark = True  # fixed crop shapes: pick the fastest kernels once
    model, ema, opt, step, elapsed, rng = resume_or_init(out, cfg, resume_from)
    gen = torch.Generator(device=cfg.device).manual_seed(cfg.seed + step)
    data = load_data(cfg)
    log.info(
        "params=%d config=%s", sum(p.numel() for p in model.parameters()), json.dumps(asdict(cfg))
    )
    meter, t_start, t_save = Meter(), time.monotonic() - elapsed, time.monotonic()
    t_log, step_log = time.monotonic(), step
    model.train()
    while not batches_done(step, cfg, time.monotonic() - t_start):
        prog = progress(step, time.monotonic() - t_start, cfg)
        for g in opt.param_groups:
            g["lr"] = lr_at(step, prog, cfg) * g.get("lr_mult", 1.0)
        kind, loss = train_step(model, opt, data, cfg, step, rng, gen)
        update_ema(ema, model, step, cfg.ema_decay)
        meter.add(kind, loss)
        step += 1
        if step % cfg.log_every == 0:
            now = time.monotonic()
            its = (step - step_log) / (now - t_log)
            t_log, step_log = now, step
            prog = progress(step, now - t_start, cfg)
            eta_min = (now - t_start) * (1 - prog) / max(prog, 1e-9) / 60
            log.info(
                "step %d %s lr=%.2e %.2f it/s eta %.1f min",
                step,
                meter.line(step),
                opt.param_groups[0]["lr"],
                its,
                eta_min,
            )
        if step % cfg.eval_every == 0:
            log.info("step %d val %s", step, evaluate(ema, data.sice_val, cfg))
        if time.monotonic() - t_save > cfg.save_every_min * 60:
            save_atomic(
                checkpoint(model, ema, opt, cfg, step, time.monotonic() - t_start, rng),
                out / "last.pt",
            )
            t_save = time.monotonic()
    save_atomic(
        checkpoint(model, ema, opt, cfg, step, time.monotonic() - t_start, rng), out / "last.pt"
    )
    log.info("done at step %d; val %s", step, evaluate(ema, data.sice_val, cfg, limit=1000))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train SLLEN (alternating seg/enhancement)")
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=None, help="override time budget")
    parser.add_argument("--steps", type=int, default=None, help="override step budget")
    parser.add_argument("--data-root", default=None, help="override data_root (e.g. a packed copy)")
    parser.add_argument("--device", default=None, help="override device (cpu, cuda)")
    parser.add_argument(
        "--resume-from",
        type=Path,
        default=None,
        help="checkpoint to continue from when OUT has no last.pt yet",
    )
    args = parser.parse_args(argv)
    raw = json.loads(args.config.read_text())
    if args.minutes is not None:
        raw["minutes"] = args.minutes
    if args.steps is not None:
        raw["steps"] = args.steps
    if args.data_root is not None:
        raw["data_root"] = args.data_root
    if args.device is not None:
        raw["device"] = args.device
    cfg = TrainConfig.from_json(raw)
    args.out.mkdir(parents=True, exist_ok=True)
    setup_logging(args.out)
    (args.out / "config.json").write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    run(cfg, args.out, args.resume_from)


if __name__ == "__main__":
    main()
