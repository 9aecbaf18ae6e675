"""The mask's "unknown" threshold: mIoU, wrong and unknown pixels for candidate thresholds.

    python -m sllen.studies.unknown_threshold --checkpoint runs/<name>/last.pt

Measured on every 6th CamVid training frame (the held-out dusk block left out), as shot and
darkened as in training, never on the frames ``make eval`` reports: the threshold is a
choice made before the evaluation, as ``UNKNOWN_BELOW`` in ``sllen/deploy.py`` records.
The network runs once per frame; each threshold is applied to its confidence afterwards,
exactly as the deploy graph does (top softmax probability at 1/4 resolution, upsampled).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sllen import data as D
from sllen.deploy import UNKNOWN_ID
from sllen.evaluate import DARKEN_SEED, confusion, miou
from sllen.export import load_checkpoint
from sllen.model import NUM_CLASSES, SLLEN, channel_softmax, up

THRESHOLDS = (0.0, 0.4, 0.5, 0.6, 0.7)


@torch.no_grad()
def mask_and_confidence(net: SLLEN, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [H, W, 3] -> (class ids [H, W], top class probability [H, W])."""
    x = D.to_tensor(image[None])
    h, w = x.shape[2:]
    s = net.stride
    x = F.pad(x, [0, (w + s - 1) // s * s - w, 0, (h + s - 1) // s * s - h], mode="replicate")
    feats = net.encode(x)
    logits = net.mask_logits(feats, net.segment(feats))  # [1, 11, Hp/4, Wp/4]
    mask = torch.argmax(up(logits, 4), dim=1)[0, :h, :w]
    conf = up(channel_softmax(logits).amax(dim=1, keepdim=True), 4)[0, 0, :h, :w]
    return mask.numpy(), conf.numpy()


def darken_u8(image: np.ndarray, gen: torch.Generator) -> np.ndarray:
    dark = D.darken(D.to_tensor(image[None]), gen)[0].permute(1, 2, 0).numpy()
    return np.round(dark * 255.0).astype(np.uint8)


def sweep(net: SLLEN, frames: list[tuple[np.ndarray, np.ndarray]]) -> dict[float, dict]:
    confs = {t: np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64) for t in THRESHOLDS}
    for image, label in frames:
        mask, conf = mask_and_confidence(net, image)
        for t in THRESHOLDS:
            confs[t] += confusion(np.where(conf < t, UNKNOWN_ID, mask), label)
    out = {}
    for t, c in confs.items():
        total = max(int(c.sum()), 1)
        right = int(np.trace(c[:, :NUM_CLASSES]))
        unknown = int(c[:, UNKNOWN_ID].sum())
        out[t] = {
            "miou": round(miou(c), 3),
            "wrong": round((total - right - unknown) / total, 3),
            "unknown": round(unknown / total, 3),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Sweep the mask's unknown threshold")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data-root", type=Path, default=D.DEFAULT_DATA_ROOT)
    parser.add_argument("--every", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    net = load_checkpoint(args.checkpoint).net
    cam = D.CamVid.load(args.data_root / "camvid", "train", dusk="drop_holdout")
    picked = range(0, len(cam), args.every)
    gen = torch.Generator().manual_seed(DARKEN_SEED)
    sets: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {
        "as shot": [(cam.images[k], cam.labels[k]) for k in picked],
        # Daylight frames only: the dusk frames are dark as shot (training darkens them little).
        "darkened": [
            (darken_u8(cam.images[k], gen), cam.labels[k]) for k in picked if not cam.dusk[k]
        ],
    }
    for name, frames in sets.items():
        for t, row in sweep(net, frames).items():
            print(json.dumps({"set": name, "frames": len(frames), "below": t} | row), flush=True)


if __name__ == "__main__":
    main()
