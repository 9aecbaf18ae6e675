"""Does batching pay on a GPU? The deploy graph in PyTorch, per-image time by batch size.

    python -m benchmarks.gpu_batching --device cuda [--checkpoint weights/sllen_small.pt]

On this project's 2-core CPUs a batch costs as much per image as single images, so shape
buckets (padding) lost (benchmarks/buckets.py). Whether that holds on a GPU decides the
bucket setting there. This times the same uint8-in, uint8-out deploy wrapper that is
exported to ONNX (so TensorRT would do at least as well), fp32 and bf16 autocast, and
prints each batch's throughput as a ratio to batch 1 measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import torch

from sllen.deploy import DeployWrapper
from sllen.export import load_checkpoint
from sllen.model import VARIANTS, build

SIZES = ((400, 600), (1080, 1920))


def per_image_ms(net: DeployWrapper, h: int, w: int, batch: int, device: str, bf16: bool) -> float:
    x = torch.randint(0, 256, (batch, h, w, 3), dtype=torch.uint8, device=device)
    ctx = torch.autocast(device, dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    with torch.inference_mode(), ctx:
        for _ in range(3):
            net(x)
        sync()
        runs, t0 = 0, time.perf_counter()
        while runs < 5 or time.perf_counter() - t0 < 1.0:
            net(x)
            runs += 1
        sync()
    return (time.perf_counter() - t0) / runs / batch * 1e3


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, default=None)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batches", type=int, nargs="*", default=[1, 2, 4, 8, 16])
    args = parser.parse_args(argv)
    net = load_checkpoint(args.checkpoint).net if args.checkpoint else build(VARIANTS["small"])
    wrapper = DeployWrapper(net.eval()).to(args.device)
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name() if args.device == "cuda" else args.device
    print(f"device: {name}; torch {torch.__version__}")
    for bf16 in (False, True):
        for h, w in SIZES:
            base = None
            for b in args.batches:
                ms = per_image_ms(wrapper, h, w, b, args.device, bf16)
                base = base or ms
                row = {
                    "dtype": "bf16" if bf16 else "fp32",
                    "size": f"{w}x{h}",
                    "batch": b,
                    "ms_per_image": round(ms, 2),
                    "img_per_s": round(1e3 / ms, 1),
                    "throughput_vs_batch1": round(base / ms, 2),
                }
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
