"""A plain U-Net reference for the SICE row: what a small network without semantics,
exposure gate or curves reaches on our split in a CPU budget.

    python -m sllen.studies.unet_baseline --out runs/unet_baseline --minutes 35

The reference the model is held to elsewhere is "a plain 0.25M-parameter U-Net trained 35
CPU minutes"; this trains one on the SICE training pairs (random 256 px crops, flips,
Charbonnier + 0.5 (1 - SSIM), AdamW with a cosine schedule) and scores it on the SICE
validation pairs with ``make eval``'s own metrics. It resumes from ``OUT/last.pt``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sllen import data as D
from sllen.evaluate import sice_metrics
from sllen.losses import charbonnier, ssim
from sllen.train import TrainConfig, lr_at, save_atomic

log = logging.getLogger("unet_baseline")
WIDTHS = (16, 32, 48, 72)  # 243k parameters, the reference's 0.25M


def double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1),
        nn.ReLU(inplace=True),
    )


class PlainUNet(nn.Module):
    """Four levels of two 3x3 convs, max-pool down, bilinear up with concatenated skips;
    predicts a residual on the input (no normalisation layers)."""

    def __init__(self, widths: tuple[int, ...] = WIDTHS) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        cin = 3
        for w in widths:
            self.down.append(double_conv(cin, w))
            cin = w
        self.up = nn.ModuleList(
            double_conv(widths[i + 1] + widths[i], widths[i])
            for i in reversed(range(len(widths) - 1))
        )
        self.head = nn.Conv2d(widths[0], 3, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips = []
        h = x
        for i, block in enumerate(self.down):
            if i:
                h = F.max_pool2d(h, 2)
            h = block(h)
            skips.append(h)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            h = F.interpolate(h, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            h = block(torch.cat([h, skip], dim=1))
        return (x + self.head(h)).clamp(0, 1)


def enhancer(model: PlainUNet) -> Callable[[np.ndarray], np.ndarray]:
    stride = 2 ** (len(WIDTHS) - 1)

    @torch.no_grad()
    def run(image: np.ndarray) -> np.ndarray:
        h, w = image.shape[:2]
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0
        x = F.pad(x, (0, -w % stride, 0, -h % stride), mode="replicate")
        y = model(x)[0, :, :h, :w]
        return (y * 255.0).round().byte().permute(1, 2, 0).numpy()

    return run


def train(
    out: Path, minutes: float, crop: int, batch: int, lr: float, seed: int
) -> dict[str, float]:
    torch.manual_seed(seed)
    model = PlainUNet()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    step, elapsed = 0, 0.0
    last = out / "last.pt"
    if last.exists():
        ck = torch.load(last, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        rng.bit_generator.state = ck["rng"]
        step, elapsed = ck["step"], ck["elapsed_s"]
        log.info("resumed at step %d (%.1f min)", step, elapsed / 60)
    root = D.DEFAULT_DATA_ROOT / "sice"
    pairs = D.SicePairs.load(root, TrainConfig.val_fraction, val=False)  # SLLEN's own split
    val = D.SicePairs.load(root, TrainConfig.val_fraction, val=True)
    log.info("params=%d", sum(p.numel() for p in model.parameters()))
    budget = minutes * 60
    schedule = TrainConfig(lr=lr, warmup_steps=0)

    def state() -> dict[str, Any]:
        return {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "rng": rng.bit_generator.state,
            "step": step,
            "elapsed_s": time.monotonic() - t0,
        }

    t0, t_save = time.monotonic() - elapsed, time.monotonic()
    model.train()
    while (elapsed := time.monotonic() - t0) < budget:
        for g in opt.param_groups:  # cosine over the wall-clock budget, no warm-up
            g["lr"] = lr_at(step, elapsed / budget, schedule)
        low, high = pairs.sample(rng, batch, crop)
        y = model(low)
        loss = charbonnier(y, high) + 0.5 * (1 - ssim(y, high))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            log.info(
                "step %d loss %.4f %.1f/%.0f min", step, float(loss.detach()), elapsed / 60, minutes
            )
        if time.monotonic() - t_save > 180:
            save_atomic(state(), last)
            t_save = time.monotonic()
    save_atomic(state(), last)
    model.eval()
    result = sice_metrics(enhancer(model), val) | {"steps": step, "minutes": elapsed / 60}
    log.info("SICE val %s", result)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=35.0)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        handlers=[logging.StreamHandler(), logging.FileHandler(args.out / "train.log")],
    )
    torch.set_num_threads(args.threads)
    result = train(args.out, args.minutes, args.crop, args.batch, args.lr, args.seed)
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
