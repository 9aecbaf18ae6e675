"""Parameters, GFLOPs per megapixel and ONNX Runtime latency for each variant.

    python -m sllen.studies.bench [--variants small large] [--threads 2] [--size 400x600]

Latency is the median of timed runs of the exported (random-weight) deploy graph on one
uint8 image, after warm-up, with ``threads`` intra-op threads.
"""

from __future__ import annotations

import argparse
import json
import warnings

import numpy as np
import torch

from sllen.export import export_bytes, gflops_per_mp, median_run_ms
from sllen.model import SLLEN, VARIANTS, build
from sllen.serving import open_session


def ort_ms(net: SLLEN, h: int, w: int, threads: int, runs: int = 15) -> float:
    session = open_session(export_bytes(net), threads, spinning=True)
    image = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    return median_run_ms(session, image, warmup=3, runs=runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="SLLEN variant cost table")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", default="400x600", help="HxW")
    args = parser.parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    for name in args.variants:
        net = build(VARIANTS[name]).eval()
        row = {
            "variant": name,
            "params": sum(p.numel() for p in net.parameters()),
            "gflops_per_mp": round(gflops_per_mp(net), 2),
            f"ort_ms_{h}x{w}_{args.threads}t": round(ort_ms(net, h, w, args.threads), 1),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
