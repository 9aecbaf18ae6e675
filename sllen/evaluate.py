"""One-run evaluation of SLLEN ONNX models on what users send, beside the published peers.

    python -m sllen.evaluate [--model NAME=PATH ...] [--only] [--out runs/eval]

By default it evaluates the served model (model_repository/sllen/1/model.onnx) and, if
present, the int8 twin and the ablation without HSF/IEF. Rows (one column per model):

* LOL-v1 eval15 (test only, never trained on), the field's common protocol: skimage
  ``peak_signal_noise_ratio`` and ``structural_similarity(channel_axis=-1)`` (default 7x7
  window) of the full 600x400 uint8 RGB output against ``high``, mean over the 15 pairs;
  GT-mean PSNR scales the output so its mean grey (BT.601) equals the reference's;
* well-exposed in -> out: normal-exposure SICE frames (luma 90-170) of the validation
  scenes, the CamVid validation frames as shot (daylight) and the eval15 ``high`` frames
  used as inputs: median PSNR(output, input), the largest mean-luma gain and how many
  frames were brightened by more than 15%;
* over-exposed in -> out: SICE validation frames with mean luma above 170: the largest
  mean-luma gain (above 1.0 = brightened further);
* blockiness: held-out frames (the well-exposed SICE validation frames and every 4th CamVid
  validation frame) darkened as in training, then JPEG-compressed at quality 40-60; the mean
  absolute luma step across 8-px block boundaries over the mean step inside blocks (1.0: no
  block structure), median over frames, for the output (and, in the JSON, the input);
* SICE validation pairs (scenes never trained on, 512x512): PSNR, SSIM (Gaussian 11x11,
  as the training loss) and PSNR after mean-matching, comparable with earlier figures;
* mIoU of ``mask`` (11 classes; void truth ignored; "unknown" predictions count as misses)
  on CamVid val as shot, mildly dim (sRGB gain 0.3-0.6 with noise), darkened as in training
  (gamma 1.5-3.5, gain 0.05-0.35, noise) and on the held-out real dusk block; per-class IoU
  and the share of pixels returned as "unknown" go to the JSON and a second table;
* ms per 600x400 image with ONNX Runtime, CPU, ``--threads`` intra-op threads (median).

Markdown on stdout; JSON in ``<out>/eval-<time>.json`` and ``<out>/latest.json``.
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
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from sllen import data as D
from sllen.deploy import INPUT_NAME, OUTPUT_NAMES, UNKNOWN_ID
from sllen.export import median_run_ms
from sllen.model import IGNORE_INDEX, NUM_CLASSES
from sllen.serving import open_session

log = logging.getLogger(__name__)

DEFAULT_MODELS = {
    "SLLEN (model_repository)": Path("model_repository/sllen/1/model.onnx"),
    "SLLEN int8 (make quantize)": Path("model_repository/sllen/1/model_int8.onnx"),
    "ablation: no HSF/IEF": Path("runs/ablation/model.onnx"),
}
# LOL-v1 eval15 figures of published peers: (PSNR, SSIM, how they were obtained).
PEERS: dict[str, tuple[float, float, str]] = {
    "Retinexformer (ICCV 2023)": (25.16, 0.845, "published, not re-measured"),
    "IAT (BMVC 2022)": (23.38, 0.806, "measured with this protocol (858 ms per 600x400)"),
    "PairLIE (CVPR 2023)": (19.51, 0.731, "measured with this protocol"),
    "Zero-DCE (CVPR 2020)": (14.86, 0.562, "measured with this protocol"),
}
DARKEN_SEED = 1234
LATENCY_SHAPE = (400, 600)
WELL_LUMA = (90.0, 170.0)
OVER_LUMA = 170.0
BRIGHTENED = 1.15
JPEG_QUALITY = (40, 60)
BLOCK = 8
Enhancer = Callable[[np.ndarray], np.ndarray]
Runner = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


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

    Numerically the same as ``sllen.losses.ssim`` (the training loss); the SICE rows use it
    so they compare with earlier figures. LOL uses skimage, as the published tables do.
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


def lol_scores(out: np.ndarray, high: np.ndarray) -> tuple[float, float, float]:
    """(PSNR, SSIM, GT-mean PSNR) with skimage's defaults, uint8 RGB."""
    psnr = float(peak_signal_noise_ratio(high, out, data_range=255))
    ssim = float(structural_similarity(high, out, channel_axis=-1, data_range=255))
    o = out.astype(np.float64)
    scaled = np.clip(
        o * (D.luma(high.astype(np.float64)).mean() / max(D.luma(o).mean(), 1e-6)), 0, 255
    )
    gt_mean = float(peak_signal_noise_ratio(high.astype(np.float64), scaled, data_range=255))
    return psnr, ssim, gt_mean


def mean_luma(image: np.ndarray) -> float:
    return float(D.luma(image.astype(np.float64)).mean())


def blockiness(image: np.ndarray) -> float:
    """Mean absolute luma step across 8-px block boundaries / mean step inside blocks."""
    y = D.luma(image.astype(np.float64))
    steps, across = [], []
    for d in (np.abs(np.diff(y, axis=1)), np.abs(np.diff(y, axis=0)).T):
        # d[:, j] is the step between pixel j and j + 1: a boundary when j + 1 is a multiple of 8.
        at = (np.arange(d.shape[1]) + 1) % BLOCK == 0
        across.append(d[:, at].ravel())
        steps.append(d[:, ~at].ravel())
    inside = float(np.concatenate(steps).mean())
    return float(np.concatenate(across).mean()) / max(inside, 1e-6)


def confusion(pred: np.ndarray, label: np.ndarray) -> np.ndarray:
    """[11, 12] counts (rows: truth, void ignored; columns: prediction, 11 = unknown)."""
    keep = label != IGNORE_INDEX
    idx = label[keep].astype(np.int64) * (NUM_CLASSES + 1) + pred[keep].astype(np.int64)
    return np.bincount(idx, minlength=NUM_CLASSES * (NUM_CLASSES + 1)).reshape(
        NUM_CLASSES, NUM_CLASSES + 1
    )


def class_iou(conf: np.ndarray) -> np.ndarray:
    """IoU per class (NaN where a class is neither in the truth nor predicted)."""
    inter = np.diag(conf[:, :NUM_CLASSES]).astype(np.float64)
    union = conf.sum(1) + conf[:, :NUM_CLASSES].sum(0) - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.maximum(union, 1), np.nan)


def miou(conf: np.ndarray) -> float:
    """Mean IoU over classes present in the truth or the prediction."""
    return float(np.nanmean(class_iou(conf)))


# --------------------------------------------------------------------------- data


Frames = list[tuple[np.ndarray, np.ndarray]]  # (uint8 [H, W, 3], labels [H, W])


@dataclass
class EvalData:
    lol: D.SicePairs
    sice: D.SicePairs
    well_sice: list[np.ndarray]
    over_sice: list[np.ndarray]
    blocky: list[np.ndarray]
    camvid: dict[str, Frames]  # "as shot", "mild", "dark", "dusk"


def _tensor_frames(
    cam: D.CamVid, fn: Callable[[torch.Tensor, torch.Generator], torch.Tensor]
) -> Frames:
    gen = torch.Generator().manual_seed(DARKEN_SEED)
    out = []
    for k in range(len(cam)):
        x = D.to_tensor(cam.images[k][None]).contiguous()
        y = fn(x, gen)[0].permute(1, 2, 0).numpy()
        out.append((np.round(y * 255.0).astype(np.uint8), cam.labels[k]))
    return out


def darkened(cam: D.CamVid) -> Frames:
    return _tensor_frames(cam, D.darken)


def blocky_inputs(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Dark, JPEG-compressed (quality 40-60) versions of held-out frames, fixed seed."""
    rng = np.random.default_rng(DARKEN_SEED)
    gen = torch.Generator().manual_seed(DARKEN_SEED)
    out = []
    for im in frames:
        dark = D.darken(D.to_tensor(im[None]).contiguous(), gen)[0].permute(1, 2, 0).numpy()
        dark_u8 = np.round(dark * 255.0).astype(np.uint8)
        out.append(D.jpeg(dark_u8, int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1))))
    return out


def load_eval_data(root: Path, val_fraction: float) -> EvalData:
    index = D.scan_sice(root / "sice")
    well_ids = D.sice_frames(index, val_fraction, True, *WELL_LUMA)
    over_ids = D.sice_frames(index, val_fraction, True, OVER_LUMA, 256.0)
    well_sice = list(D.load_many([root / "sice" / f"{i}.jpg" for i in well_ids]))
    over_sice = list(D.load_many([root / "sice" / f"{i}.jpg" for i in over_ids]))
    cam = D.CamVid.load(root / "camvid", "val")
    dusk = D.CamVid.load(root / "camvid", "train", dusk="only_holdout")
    return EvalData(
        lol=D.load_lol(root / "lol", "eval15"),
        sice=D.SicePairs.load(root / "sice", val_fraction, val=True),
        well_sice=well_sice,
        over_sice=over_sice,
        blocky=blocky_inputs(well_sice + list(cam.images[::4])),
        camvid={
            "as shot": list(zip(cam.images, cam.labels, strict=True)),
            "mild": _tensor_frames(cam, D.dim),
            "dark": darkened(cam),
            "dusk": list(zip(dusk.images, dusk.labels, strict=True)),
        },
    )


# --------------------------------------------------------------------------- runs


def onnx_runner(session: ort.InferenceSession) -> Runner:
    def run(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def lol_metrics(enhance: Enhancer, pairs: D.SicePairs) -> dict[str, float]:
    r = np.array(
        [lol_scores(enhance(pairs.pair(k)[0]), pairs.pair(k)[1]) for k in range(len(pairs))]
    )
    m = r.mean(axis=0)
    return {"lol_psnr": float(m[0]), "lol_ssim": float(m[1]), "lol_psnr_gt_mean": float(m[2])}


def exposure_metrics(pairs: list[tuple[np.ndarray, np.ndarray]], prefix: str) -> dict[str, float]:
    """pairs: (input, output) -> median PSNR(out, in), max luma gain, share brightened >15%."""
    psnrs = [psnr_u8(o, i) for i, o in pairs]
    gains = np.array([mean_luma(o) / max(mean_luma(i), 1e-6) for i, o in pairs])
    return {
        f"{prefix}_psnr_median": float(np.median(psnrs)),
        f"{prefix}_gain_max": float(gains.max()),
        f"{prefix}_gain_median": float(np.median(gains)),
        f"{prefix}_brightened": float((gains > BRIGHTENED).sum()),
        f"{prefix}_frames": float(len(pairs)),
    }


def latency_ms(session: ort.InferenceSession, runs: int = 10) -> float:
    h, w = LATENCY_SHAPE
    image = np.random.default_rng(0).integers(0, 60, (1, h, w, 3), dtype=np.uint8)
    return median_run_ms(session, image, warmup=2, runs=runs)


def eval_model(
    path: Path, data: EvalData, threads: int, save_dir: Path | None
) -> dict[str, object]:
    session = open_session(path.read_bytes(), threads, spinning=True)
    run = onnx_runner(session)
    row: dict[str, object] = {}
    row |= lol_metrics(lambda im: run(im)[0], data.lol)
    row |= sice_metrics(lambda im: run(im)[0], data.sice, save_dir)
    conf: dict[str, np.ndarray] = {}
    well: list[tuple[np.ndarray, np.ndarray]] = []
    for name, frames in data.camvid.items():
        c = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)
        for image, label in frames:
            enhanced, mask = run(image)
            c += confusion(mask, label)
            if name == "as shot":
                well.append((image, enhanced))
        conf[name] = c
        row[f"miou_{name}"] = miou(c)
        row[f"iou_{name}"] = [None if math.isnan(v) else float(v) for v in class_iou(c)]
        row[f"unknown_{name}"] = float(c[:, UNKNOWN_ID].sum() / max(c.sum(), 1))
    well += [(im, run(im)[0]) for im in data.well_sice]
    well += [(high, run(high)[0]) for high in (data.lol.pair(k)[1] for k in range(len(data.lol)))]
    row |= exposure_metrics(well, "well")
    row |= exposure_metrics([(im, run(im)[0]) for im in data.over_sice], "over")
    row["blockiness_median"] = float(np.median([blockiness(run(im)[0]) for im in data.blocky]))
    row["blockiness_input_median"] = float(np.median([blockiness(im) for im in data.blocky]))
    row["ms_600x400"] = latency_ms(session)
    return row


# --------------------------------------------------------------------------- tables

# (key, label, format, target)
ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("lol_psnr", "LOL-v1 eval15 PSNR dB", "{:.2f}", ">= 23.5"),
    ("lol_ssim", "LOL-v1 eval15 SSIM", "{:.3f}", ">= 0.82"),
    ("lol_psnr_gt_mean", "LOL-v1 eval15 GT-mean PSNR dB", "{:.2f}", "-"),
    ("well_psnr_median", "well-exposed in -> out: median PSNR(out, in) dB", "{:.2f}", ">= 28"),
    ("well_gain_max", "well-exposed in -> out: max mean-luma gain", "{:.2f}x", "<= 1.15x"),
    ("well_brightened", "well-exposed in -> out: frames brightened > 15%", "{:.0f}", "0"),
    ("over_gain_max", "over-exposed in -> out: max mean-luma gain", "{:.2f}x", "<= 1.00x"),
    ("over_gain_median", "over-exposed in -> out: median mean-luma gain", "{:.2f}x", "-"),
    ("blockiness_median", "blockiness, dark JPEG q40-60 (median)", "{:.2f}", "<= 1.3"),
    ("psnr", "SICE val PSNR dB", "{:.2f}", ">= 21.77"),
    ("ssim", "SICE val SSIM (Gaussian 11x11)", "{:.3f}", ">= 0.799"),
    ("psnr_mean_matched", "SICE val PSNR mean-matched dB", "{:.2f}", "-"),
    ("miou_as shot", "mIoU CamVid val as shot", "{:.3f}", ">= 0.50"),
    ("miou_mild", "mIoU CamVid val mildly dim (gain 0.3-0.6)", "{:.3f}", ">= 0.45"),
    ("miou_dark", "mIoU CamVid val darkened (training range)", "{:.3f}", ">= 0.45"),
    ("miou_dusk", "mIoU real dusk (held out)", "{:.3f}", ">= 0.45"),
    ("unknown_as shot", "mask pixels returned unknown, as shot", "{:.1%}", "-"),
    ("ms_600x400", "ms per 600x400, ORT 2 threads", "{:.1f}", "<= 100"),
)
CLASS_NAMES = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)


def _cell(fmt: str, v: object) -> str:
    return "-" if v is None else fmt.format(v)


def markdown(rows: dict[str, dict[str, object]]) -> str:
    names = list(rows)
    lines = [
        "| row | target | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for key, label, fmt, target in ROWS:
        cells = [_cell(fmt, rows[n].get(key)) for n in names]
        lines.append(f"| {label} | {target} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def peers_markdown(rows: dict[str, dict[str, object]]) -> str:
    lines = ["| LOL-v1 eval15 | PSNR dB | SSIM | source |", "|---|---|---|---|"]
    for name, (psnr, ssim, how) in PEERS.items():
        lines.append(f"| {name} | {psnr:.2f} | {ssim:.3f} | {how} |")
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['lol_psnr']:.2f} | {row['lol_ssim']:.3f} | measured, this run |"
        )
    return "\n".join(lines)


def class_markdown(row: dict[str, object]) -> str:
    sets = ("as shot", "mild", "dark", "dusk")
    lines = ["| class | " + " | ".join(sets) + " |", "|---|" + "---|" * len(sets)]
    for c, name in enumerate(CLASS_NAMES):
        cells = []
        for s in sets:
            v = row[f"iou_{s}"][c]  # type: ignore[index]
            cells.append("-" if v is None else f"{v:.3f}")
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
) -> dict[str, dict[str, object]]:
    rows: dict[str, dict[str, object]] = {}
    for i, (name, path) in enumerate(models.items()):
        t = time.perf_counter()
        sub = save_dir / f"model{i}" if save_dir is not None else None
        rows[name] = eval_model(path, data, threads, sub)
        log.info("%s (%s) done in %.1f s", name, path, time.perf_counter() - t)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="SLLEN evaluation on what users send")
    parser.add_argument("--model", action="append", default=[], help="NAME=PATH (repeatable)")
    parser.add_argument("--only", action="store_true", help="just the --model ones")
    parser.add_argument("--data-root", type=Path, default=D.DEFAULT_DATA_ROOT)
    parser.add_argument("--val-fraction", type=float, default=0.12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/eval"))
    parser.add_argument("--save-dir", type=Path, default=None, help="SICE side-by-side JPEGs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    models = parse_models(args.model, defaults=not args.only)
    t = time.perf_counter()
    data = load_eval_data(args.data_root, args.val_fraction)
    log.info("data ready in %.1f s", time.perf_counter() - t)
    rows = evaluate_all(models, data, args.threads, args.save_dir)
    first = next(iter(rows.values()))
    tables = {
        "rows": markdown(rows),
        "peers": peers_markdown(rows),
        "per_class_iou": class_markdown(first),
    }
    result = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "models": {k: str(v) for k, v in models.items()},
        "counts": {
            "lol_eval15": len(data.lol),
            "sice_val_pairs": len(data.sice),
            "well_exposed": first["well_frames"],
            "over_exposed": first["over_frames"],
            "blocky": len(data.blocky),
            **{f"camvid_{k}": len(v) for k, v in data.camvid.items()},
        },
        "threads": args.threads,
        "rows": rows,
        "markdown": tables,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    (args.out / f"eval-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(text)
    (args.out / "latest.json").write_text(text)
    print("\n\n".join(tables.values()))
    print(f"\nper-class IoU: {next(iter(rows))}; counts: {json.dumps(result['counts'])}")


if __name__ == "__main__":
    main()
