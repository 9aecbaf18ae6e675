"""How far the SICE validation targets can be reached at all: oracle bounds, not methods.

    python -m sllen.studies.ceiling [--model model_repository/sllen/1/model_enhanced.onnx]

Each oracle bound fits a per-image, per-channel global tone curve (a 256-entry LUT: every
value mapped to the mean target value at the pixels holding it) *on the target itself*, so
no method can do as well by global tone alone. Rows: the dark input through its oracle
curve (all a perfect global exposure/tone decision can reach, by input luma); the served
model as it is, mean-matched and through its oracle curve (what is left is local: noise,
detail), and rescaled to one fixed mean luma for every image (the mean of the *training*
targets: what a content-blind exposure rule would buy, no oracle); another exposure of the
same scene (the next frame of the run with luma >= 60) through its oracle curve (how well
the frames align: misalignment would cap every row).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sllen import data as D
from sllen.deploy import INPUT_NAME, OUTPUT_NAMES
from sllen.evaluate import mean_matched, psnr_u8, ssim_u8
from sllen.serving import open_session

NEIGHBOUR_MIN_LUMA = 60.0
LUMA_BINS = ((0, 20), (20, 30), (30, 46))


def oracle_lut(image: np.ndarray, target: np.ndarray) -> np.ndarray:
    """``image`` through the per-channel global tone curve that best fits ``target`` (L2)."""
    out = np.empty_like(target)
    for c in range(3):
        src = image[..., c].ravel().astype(np.int64)
        sums = np.bincount(src, target[..., c].ravel().astype(np.float64), 256)
        counts = np.bincount(src, minlength=256)
        lut = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
        out[..., c] = np.clip(np.round(lut[image[..., c]]), 0, 255).astype(np.uint8)
    return out


def to_luma(image: np.ndarray, mean_luma: float) -> np.ndarray:
    """``image`` scaled by one gain so its mean luma (BT.601, 0..255) is ``mean_luma``."""
    lum = float(D.luma(image).mean())
    scaled = image.astype(np.float64) * (mean_luma / max(lum, 1e-6))
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--model", type=Path, default=Path("model_repository/sllen/1/model_enhanced.onnx")
    )
    parser.add_argument("--data-root", type=Path, default=D.DEFAULT_DATA_ROOT)
    parser.add_argument("--val-fraction", type=float, default=0.12)
    args = parser.parse_args(argv)
    root = args.data_root / "sice"
    index = D.scan_sice(root)
    pairs = D.split_pairs(index, args.val_fraction, val=True)
    run_of = {i: run for run in index.runs for i in run}
    luma = dict(zip(index.ids, index.lumas, strict=True))
    train_targets = {high for _, high in D.split_pairs(index, args.val_fraction, val=False)}
    fixed_luma = float(np.mean([luma[i] for i in train_targets]))
    session = open_session(args.model.read_bytes(), 2)

    def metrics(image: np.ndarray, target: np.ndarray) -> tuple[float, float]:
        return psnr_u8(image, target), ssim_u8(image, target)

    rows: dict[str, list[tuple[float, float]]] = {}
    for low_id, high_id in pairs:
        low, high = D.load_rgb(root / f"{low_id}.jpg"), D.load_rgb(root / f"{high_id}.jpg")
        out = session.run([OUTPUT_NAMES[0]], {INPUT_NAME: low[None]})[0][0]
        as_is, input_lut = metrics(out, high), metrics(oracle_lut(low, high), high)
        found = {
            "model as it is": as_is,
            "model, mean-matched": metrics(mean_matched(out, high), high),
            f"model rescaled to mean luma {fixed_luma:.0f}": metrics(
                to_luma(out, fixed_luma), high
            ),
            "model through its oracle curve": metrics(oracle_lut(out, high), high),
            "input through its oracle curve": input_lut,
        }
        for lo, hi in LUMA_BINS:
            if lo <= luma[low_id] < hi:
                found[f"  input luma {lo}-{hi}: input, oracle curve"] = input_lut
                found[f"  input luma {lo}-{hi}: model as it is"] = as_is
        run = run_of[high_id]
        k = run.index(high_id)
        near = [run[j] for j in (k - 1, k + 1) if 0 <= j < len(run)]
        near = [i for i in near if luma[i] >= NEIGHBOUR_MIN_LUMA]
        if near:
            other = D.load_rgb(root / f"{near[0]}.jpg")
            found["another exposure of the scene, oracle curve"] = metrics(
                oracle_lut(other, high), high
            )
        for key, value in found.items():
            rows.setdefault(key, []).append(value)

    print(f"SICE validation pairs: {len(pairs)} (val fraction {args.val_fraction})")
    print("| bound | n | PSNR dB | SSIM |\n|---|---|---|---|")
    for key, vals in sorted(rows.items(), key=lambda kv: kv[0].startswith(" ")):
        arr = np.array(vals)
        print(f"| {key} | {len(arr)} | {arr[:, 0].mean():.2f} | {arr[:, 1].mean():.3f} |")


if __name__ == "__main__":
    main()
