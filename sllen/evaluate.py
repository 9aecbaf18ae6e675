"""One-run evaluation table: SLLEN ONNX models vs classical baselines, side by side.

    python -m sllen.evaluate [--model NAME=PATH ...] [--out runs/eval] [--save-dir DIR]

By default it evaluates the committed model (model_repository/sllen/1/model.onnx) and,
if present, the ablation trained without HSF/IEF (runs/ablation/model.onnx, from
``make export-ablation``). Columns:

* SICE validation pairs (scenes never trained on; full 512x512 frames as uint8, as the
  service sees them): PSNR, SSIM (Gaussian 11x11, sigma 1.5, RGB mean) and PSNR after
  scaling the output so its mean equals the target's ("mean-matched");
* mIoU of the ``mask`` output (11 classes, void ignored, one confusion matrix per set) on
  CamVid val darkened with the training's synthetic low-light model (fixed seed), and on
  the held-out contiguous block of real dusk frames (0001TP_, never trained on);
* ms per 600x400 image with ONNX Runtime, CPU, ``--threads`` intra-op threads (median).

The table is printed as markdown and saved as JSON (``<out>/eval-<time>.json`` and
``<out>/latest.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image

from sllen import data as D
from sllen.deploy import INPUT_NAME, OUTPUT_NAMES
from sllen.export import median_run_ms
from sllen.model import IGNORE_INDEX, NUM_CLASSES
from sllen.serving import open_session
from sllen.studies.baselines import BASELINES

log = logging.getLogger(__name__)

DEFAULT_MODELS = {
    "SLLEN (model_repository)": Path("model_repository/sllen/1/model.onnx"),
    "SLLEN int8 (make quantize)": Path("model_repository/sllen/1/model_int8.onnx"),
    "ablation: no HSF/IEF": Path("runs/ablation/model.onnx"),
}
DARKEN_SEED = 1234
LATENCY_SHAPE = (400, 600)
Enhancer = Callable[[np.ndarray], np.ndarray]


# --------------------------------------------------------------------------- metrics


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * math.log10(255.0**2 / max(mse, 1e-10))


def mean_matched(out: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Scale ``out`` so its mean equals the target's (then clip/round to uint8)."""
    o = out.astype(np.float64)
    scaled = o * (target.mean() / max(o.mean(), 1e-6))
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def _gauss_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    g = np.exp(-((np.arange(size) - size // 2) ** 2) / (2 * sigma**2))
    return g / g.sum()


def _blur_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' Gaussian blur of [H, W, C] (same as sllen.losses.ssim's window)."""
    n = len(g)
    h, w = x.shape[0] - n + 1, x.shape[1] - n + 1
    rows = sum(g[i] * x[i : i + h] for i in range(n))
    return sum(g[i] * rows[:, i : i + w] for i in range(n))


def ssim_u8(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two uint8 RGB images: Gaussian 11x11 window, sigma 1.5, valid region.

    Numerically the same as ``sllen.losses.ssim`` (the training loss), but separable numpy:
    the 2-D depthwise conv is far too slow on a busy 2-core CPU.
    """
    x, y = a.astype(np.float64) / 255.0, b.astype(np.float64) / 255.0
    g = _gauss_1d()
    mx, my = _blur_valid(x, g), _blur_valid(y, g)
    sxx = _blur_valid(x * x, g) - mx * mx
    syy = _blur_valid(y * y, g) - my * my
    sxy = _blur_valid(x * y, g) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.mean())


def confusion(pred: np.ndarray, label: np.ndarray) -> np.ndarray:
    """[11, 11] counts (rows: truth), void pixels ignored."""
    keep = label != IGNORE_INDEX
    idx = label[keep].astype(np.int64) * NUM_CLASSES + pred[keep].astype(np.int64)
    return np.bincount(idx, minlength=NUM_CLASSES**2).reshape(NUM_CLASSES, NUM_CLASSES)


def miou(conf: np.ndarray) -> float:
    """Mean IoU over classes present in the truth or the prediction."""
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    present = union > 0
    return float((inter[present] / union[present]).mean())


# --------------------------------------------------------------------------- data


@dataclass
class EvalData:
    sice: D.SicePairs
    camvid_dark: list[tuple[np.ndarray, np.ndarray]]  # (darkened uint8 [H,W,3], labels)
    dusk: list[tuple[np.ndarray, np.ndarray]]


def darkened(cam: D.CamVid) -> list[tuple[np.ndarray, np.ndarray]]:
    gen = torch.Generator().manual_seed(DARKEN_SEED)
    out = []
    for k in range(len(cam)):
        x = D.to_tensor(cam.images[k][None]).contiguous()
        dark = D.darken(x, gen)[0].permute(1, 2, 0).numpy()
        out.append((np.round(dark * 255.0).astype(np.uint8), cam.labels[k]))
    return out


def load_eval_data(root: Path, val_fraction: float) -> EvalData:
    dusk = D.CamVid.load(root / "camvid", "train", dusk="only_holdout")
    return EvalData(
        sice=D.SicePairs.load(root / "sice", val_fraction, val=True),
        camvid_dark=darkened(D.CamVid.load(root / "camvid", "val")),
        dusk=list(zip(dusk.images, dusk.labels, strict=True)),
    )


# --------------------------------------------------------------------------- runs


def onnx_runner(session: ort.InferenceSession) -> Callable[[np.ndarray], tuple[np.ndarray, ...]]:
    def run(image: np.ndarray) -> tuple[np.ndarray, ...]:
        enhanced, mask = session.run(list(OUTPUT_NAMES), {INPUT_NAME: image[None]})
        return enhanced[0], mask[0]

    return run


def sice_metrics(
    enhance: Enhancer, pairs: D.SicePairs, save_dir: Path | None = None
) -> dict[str, float]:
    rows = []
    for k in range(len(pairs)):
        low, high = pairs.pair(k)
        out = enhance(low)
        rows.append(
            [psnr_u8(out, high), ssim_u8(out, high), psnr_u8(mean_matched(out, high), high)]
        )
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.concatenate([low, out, high], axis=1)).save(save_dir / f"{k}.jpg")
    r = np.array(rows).mean(axis=0)
    return {"psnr": float(r[0]), "ssim": float(r[1]), "psnr_mean_matched": float(r[2])}


def seg_miou(mask_of: Callable[[np.ndarray], np.ndarray], frames: list) -> float:  # type: ignore[type-arg]
    conf = sum(confusion(mask_of(im), lab) for im, lab in frames)
    return miou(np.asarray(conf))


def latency_ms(session: ort.InferenceSession, runs: int = 10) -> float:
    h, w = LATENCY_SHAPE
    image = np.random.default_rng(0).integers(0, 60, (1, h, w, 3), dtype=np.uint8)
    return median_run_ms(session, image, warmup=2, runs=runs)


def eval_model(path: Path, data: EvalData, threads: int, save_dir: Path | None) -> dict[str, float]:
    session = open_session(path.read_bytes(), threads, spinning=True)
    run = onnx_runner(session)
    row = sice_metrics(lambda im: run(im)[0], data.sice, save_dir)
    row["miou_camvid_dark"] = seg_miou(lambda im: run(im)[1], data.camvid_dark)
    row["miou_dusk"] = seg_miou(lambda im: run(im)[1], data.dusk)
    row["ms_600x400"] = latency_ms(session)
    return row


# --------------------------------------------------------------------------- table

COLUMNS = (
    ("psnr", "PSNR dB", "{:.2f}"),
    ("ssim", "SSIM", "{:.3f}"),
    ("psnr_mean_matched", "PSNR mean-matched", "{:.2f}"),
    ("miou_camvid_dark", "mIoU dark CamVid val", "{:.3f}"),
    ("miou_dusk", "mIoU real dusk (held out)", "{:.3f}"),
    ("ms_600x400", "ms/600x400 ORT", "{:.1f}"),
)


def markdown(rows: dict[str, dict[str, float]]) -> str:
    head = "| method | " + " | ".join(c[1] for c in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, row in rows.items():
        cells = [fmt.format(row[k]) if k in row else "-" for k, _, fmt in COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_models(specs: list[str], defaults: bool = True) -> dict[str, Path]:
    models = {name: p for name, p in DEFAULT_MODELS.items() if defaults and p.exists()}
    for spec in specs:
        name, _, path = spec.partition("=")
        if not path:
            raise ValueError(f"--model wants NAME=PATH, got {spec!r}")
        models[name] = Path(path)
    return models


def evaluate_all(
    models: dict[str, Path], data: EvalData, threads: int, save_dir: Path | None
) -> dict[str, dict[str, float]]:
    rows: dict[str, dict[str, float]] = {}
    for name, fn in BASELINES.items():
        t = time.perf_counter()
        rows[name] = sice_metrics(fn, data.sice)
        log.info("%s done in %.1f s", name, time.perf_counter() - t)
    for i, (name, path) in enumerate(models.items()):
        t = time.perf_counter()
        sub = save_dir / f"model{i}" if save_dir is not None else None
        rows[name] = eval_model(path, data, threads, sub)
        log.info("%s (%s) done in %.1f s", name, path, time.perf_counter() - t)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="SLLEN evaluation table vs baselines")
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH (repeatable)")
    parser.add_argument("--only", action="store_true", help="just the --model ones")
    parser.add_argument("--data-root", type=Path, default=D.DEFAULT_DATA_ROOT)
    parser.add_argument("--val-fraction", type=float, default=0.12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/eval"))
    parser.add_argument("--save-dir", type=Path, default=None, help="side-by-side JPEGs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    models = parse_models(args.model, defaults=not args.only)
    data = load_eval_data(args.data_root, args.val_fraction)
    rows = evaluate_all(models, data, args.threads, args.save_dir)
    table = markdown(rows)
    result = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "models": {k: str(v) for k, v in models.items()},
        "sice_val_pairs": len(data.sice),
        "camvid_val_frames": len(data.camvid_dark),
        "dusk_holdout_frames": len(data.dusk),
        "threads": args.threads,
        "rows": rows,
        "markdown": table,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    (args.out / f"eval-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(text)
    (args.out / "latest.json").write_text(text)
    print(table)


if __name__ == "__main__":
    main()
