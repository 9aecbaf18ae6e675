"""Shape buckets: do requests of different sizes gain from being padded into one batch?

Triton's python backend (and the worker) only batch images of one shape. With
``SLLEN_BATCH_BUCKET_PX=N`` the worker pads each photo's sides up to a multiple of N, so photos of
nearby sizes share a shape and a batch; the outputs are cropped back. Padding costs compute, a
batch may save some. This starts the whole stack once per bucket setting and drives it with a
closed loop of mixed-size photos (typical phone/web sizes between 560x380 and 800x600), printing
throughput and latency as ratios against bucket 0 (equal shapes only) from the same run.

    python -m benchmarks.buckets [--seconds 12] [--concurrency 8] [--buckets 0,64,128,256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import numpy as np

from benchmarks.bench import closed_loop, local_settings, local_stack
from service.config import PROJECT_ROOT
from service.imaging import pad_for_model
from testkit.images import dark_scene, encode

REPORT = PROJECT_ROOT / ".run" / "reports" / "buckets.json"
# (height, width): landscape and portrait, none equal, so without buckets nothing batches.
SIZES = [(400, 600), (380, 560), (480, 640), (450, 600), (600, 800), (540, 720), (600, 400),
         (640, 480), (420, 620), (500, 700), (360, 640), (576, 768)]  # fmt: skip


def padding_overhead(bucket: int, min_side: int) -> float:
    """Extra pixels the model computes, as a fraction of the photos' own pixels."""
    own = sum(h * w for h, w in SIZES)
    padded = sum(
        int(np.prod(pad_for_model(np.zeros((h, w, 3), np.uint8), min_side, bucket).shape[:2]))
        for h, w in SIZES
    )
    return padded / own - 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--buckets", default="0,64,128,256")
    args = parser.parse_args(argv)
    photos = [
        encode(dark_scene(h, w, seed=i), "JPEG", quality=90) for i, (h, w) in enumerate(SIZES)
    ]
    rows: list[dict[str, Any]] = []
    for bucket in (int(b) for b in args.buckets.split(",")):
        settings = local_settings(batch_bucket_px=bucket)
        with local_stack(settings):
            url = f"http://127.0.0.1:{settings.port}"
            row = asyncio.run(closed_loop(url, photos, args.concurrency, args.seconds))
        row |= {
            "bucket_px": bucket,
            "padding": padding_overhead(bucket, settings.model_min_side_px),
        }
        rows.append(row)
        base = rows[0]
        print(
            f"bucket {bucket:>4} px: {row['images_per_s']:.2f} img/s"
            f" ({row['images_per_s'] / base['images_per_s']:.2f}x bucket {base['bucket_px']})"
            f"  p50 {row['p50_ms']:.0f} ms ({row['p50_ms'] / base['p50_ms']:.2f}x)"
            f"  p95 {row['p95_ms']:.0f} ms  padding +{100 * row['padding']:.0f}% pixels"
            f"  errors {row['errors']}",
            flush=True,
        )
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({"concurrency": args.concurrency, "rows": rows}, indent=2))
    print(f"report: {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
