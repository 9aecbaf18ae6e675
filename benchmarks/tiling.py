"""Choose the large-photo scheme by measurement: tiled vs whole-image inference.

    python -m benchmarks.tiling [--data ../shared/data]

For photos where both fit in memory, the tiled output (service.tiling, the worker's code path) is
compared with whole-image inference of the same model: PSNR of tiled against whole, for several
tile sizes and overlaps, with time and peak memory of each. Real low-light photos from the data
folder are upscaled to the test sizes (nothing is written back). Then one 12 MP photo is timed
tiled, with the process's peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from benchmarks.bench import ort_session
from service import tiling
from service.config import PROJECT_ROOT
from sllen.evaluate import psnr_u8

REPORT = PROJECT_ROOT / ".run" / "reports" / "tiling.json"


def photos(data: Path, size: tuple[int, int], count: int) -> list[np.ndarray]:
    files = sorted((data / "unpaired" / "LOL_eval15_low").glob("*.png"))[:count]
    return [np.asarray(Image.open(f).convert("RGB").resize(size, Image.LANCZOS)) for f in files]


def run(session: ort.InferenceSession, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    enhanced, mask = session.run(None, {"image": batch})
    return enhanced, mask


def tiled(
    session: ort.InferenceSession, image: np.ndarray, tile: int, overlap: int, batch: int
) -> tuple[np.ndarray, np.ndarray]:
    h, w = image.shape[:2]
    tiles = tiling.plan(h, w, tile, overlap)
    cut = tiling.cut(image, tiles)
    outs = [run(session, cut[i : i + batch]) for i in range(0, len(tiles), batch)]
    enhanced = np.concatenate([o[0] for o in outs])
    masks = np.concatenate([o[1] for o in outs])
    return tiling.stitch(enhanced, masks, tiles, h, w, overlap)


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=PROJECT_ROOT.parent / "shared" / "data")
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--twelve-mp", choices=["tiled", "whole"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    session = ort_session()
    if args.twelve_mp:
        big = photos(args.data, (4000, 3000), 1)[0]
        started = time.perf_counter()
        if args.twelve_mp == "tiled":
            tiled(session, big, 1024, 64, batch=4)
        else:
            run(session, big[None])
        print(
            json.dumps(
                {
                    "seconds": round(time.perf_counter() - started, 2),
                    "peak_rss_mb": round(peak_mb()),
                }
            )
        )
        return 0
    report: dict[str, object] = {"compare": [], "12mp": {}}
    for size in [(1600, 1200), (2400, 1600)]:
        images = photos(args.data, size, args.count)
        wholes = []
        started = time.perf_counter()
        for image in images:
            wholes.append(run(session, image[None]))
        whole_s = (time.perf_counter() - started) / len(images)
        print(f"{size[0]}x{size[1]} whole image: {whole_s:.2f} s per photo", flush=True)
        for tile, overlap in [(512, 32), (512, 64), (768, 64), (1024, 64), (1024, 128)]:
            scores, masks_agree = [], []
            started = time.perf_counter()
            for image, (whole_e, whole_m) in zip(images, wholes, strict=True):
                e, m = tiled(session, image, tile, overlap, batch=4)
                scores.append(psnr_u8(e, whole_e[0]))
                masks_agree.append(float(np.mean(m == whole_m[0])))
            tiled_s = (time.perf_counter() - started) / len(images)
            row = {
                "size": f"{size[0]}x{size[1]}",
                "tile": tile,
                "overlap": overlap,
                "psnr_vs_whole_db": round(float(np.mean(scores)), 2),
                "mask_agreement": round(float(np.mean(masks_agree)), 4),
                "tiled_s": round(tiled_s, 2),
                "whole_s": round(whole_s, 2),
            }
            report["compare"].append(row)  # type: ignore[union-attr]
            print(
                f"  tile {tile} overlap {overlap}: {row['psnr_vs_whole_db']} dB vs whole, "
                f"mask agreement {row['mask_agreement']:.3f}, {tiled_s:.2f} s",
                flush=True,
            )
    for mode in ("tiled", "whole"):  # each in a fresh process: peak RSS is per process
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks.tiling",
                "--data",
                str(args.data),
                "--twelve-mp",
                mode,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        report["12mp"][mode] = (
            json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-500:]}
        )  # type: ignore[index]
        print(f"12 MP (4000x3000) {mode}: {report['12mp'][mode]}", flush=True)  # type: ignore[index]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
