"""Evaluate an exported ONNX model with ONNX Runtime on the SICE validation pairs.

    python -m sllen.evaluate --onnx model_repository/sllen/1/model.onnx [--save-dir /tmp/x]

Reports mean luma in/out/target and PSNR of the output and of the unenhanced input
against the well-exposed target (full 512x512 frames, uint8, as the service sees them).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sllen import data as D
from sllen.deploy import INPUT_NAME, OUTPUT_NAMES
from sllen.export import make_session

log = logging.getLogger(__name__)


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10.0 * math.log10(255.0**2 / max(mse, 1e-10))


def evaluate_onnx(
    onnx_path: Path,
    data_root: Path,
    val_fraction: float,
    save_dir: Path | None = None,
    threads: int = 2,
) -> dict[str, float]:
    session = make_session(onnx_path.read_bytes(), threads)
    pairs = D.SicePairs.load(data_root / "sice", val_fraction, val=True)
    rows = []
    for k in range(len(pairs)):
        low, high = pairs.pair(k)
        t = time.perf_counter()
        out, _mask = session.run(list(OUTPUT_NAMES), {INPUT_NAME: low[None]})
        ms = 1000 * (time.perf_counter() - t)
        out = out[0]
        rows.append(
            [
                D.luma(low).mean(),
                D.luma(out).mean(),
                D.luma(high).mean(),
                psnr_u8(out, high),
                psnr_u8(low, high),
                ms,
            ]
        )
        if save_dir is not None:
            save_dir.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.concatenate([low, out, high], axis=1)).save(save_dir / f"{k}.jpg")
    r = np.array(rows)
    keys = ["luma_in", "luma_out", "luma_target", "psnr", "psnr_input", "ms_per_512px"]
    result = {k: float(v) for k, v in zip(keys, r.mean(axis=0), strict=True)}
    result["pairs"] = len(pairs)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="SICE validation with ONNX Runtime")
    parser.add_argument("--onnx", type=Path, default=Path("model_repository/sllen/1/model.onnx"))
    parser.add_argument("--data-root", type=Path, default=D.DEFAULT_DATA_ROOT)
    parser.add_argument("--val-fraction", type=float, default=0.12)
    parser.add_argument(
        "--save-dir", type=Path, default=None, help="side-by-side JPEGs (outside the repo)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    print(json.dumps(evaluate_onnx(args.onnx, args.data_root, args.val_fraction, args.save_dir)))


if __name__ == "__main__":
    main()
