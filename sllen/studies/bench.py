"""Parameters, GFLOPs per megapixel and ONNX Runtime latency for each variant.

    python -m sllen.studies.bench [--variants small large] [--threads 2] [--size 400x600]

Latency is the median of timed runs of the exported (random-weight) deploy graph on one
uint8 image, after warm-up, with ``threads`` intra-op threads. Each variant is timed with
the 8x8 deblocking filter off, fixed and adaptive, and with the adaptive filter and a mask
head of its own (``mask_head``), and with both and a dark expert (``dark_expert``), in
alternating rounds so that a change in the machine's speed falls on all five; each
addition's cost is printed as a ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import warnings

import numpy as np
import torch

from sllen.export import export_bytes, gflops_per_mp, median_run_ms
from sllen.model import SLLEN, VARIANTS, build
from sllen.serving import open_session


def ort_ms(nets: list[SLLEN], h: int, w: int, threads: int, rounds: int = 5) -> list[float]:
    """Median ms per image of each net, timed in alternating rounds of 5 runs."""
    sessions = [open_session(export_bytes(net), threads, spinning=True) for net in nets]
    image = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
    times: list[list[float]] = [[] for _ in nets]
    for _ in range(rounds):
        for session, t in zip(sessions, times, strict=True):
            t.append(median_run_ms(session, image, warmup=2, runs=5))
    return [statistics.median(t) for t in times]


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
        fixed, adaptive = (
            build(dataclasses.replace(VARIANTS[name], deblock=mode)).eval()
            for mode in ("fixed", "adaptive")
        )
        fixed.load_state_dict(net.state_dict())
        adaptive.load_state_dict(net.state_dict())
        masked = build(
            dataclasses.replace(VARIANTS[name], deblock="adaptive", mask_head=True)
        ).eval()
        expert = build(
            dataclasses.replace(
                VARIANTS[name], deblock="adaptive", mask_head=True, dark_expert=True
            )
        ).eval()
        plain_ms, deblock_ms, adaptive_ms, masked_ms, expert_ms = ort_ms(
            [net, fixed, adaptive, masked, expert], h, w, args.threads
        )
        params = sum(p.numel() for p in net.parameters())
        row = {
            "variant": name,
            "params": params,
            "gflops_per_mp": round(gflops_per_mp(net), 2),
            f"ort_ms_{h}x{w}_{args.threads}t": round(plain_ms, 1),
            "with_deblock_ms": round(deblock_ms, 1),
            "deblock_vs_plain": round(deblock_ms / plain_ms, 3),
            "with_adaptive_deblock_ms": round(adaptive_ms, 1),
            "adaptive_vs_plain": round(adaptive_ms / plain_ms, 3),
            "mask_head_params": sum(p.numel() for p in masked.parameters()) - params,
            "mask_head_gflops_per_mp": round(gflops_per_mp(masked) - gflops_per_mp(adaptive), 2),
            "with_adaptive_and_mask_head_ms": round(masked_ms, 1),
            "mask_head_vs_adaptive": round(masked_ms / adaptive_ms, 3),
            "dark_expert_params": sum(p.numel() for p in expert.parameters())
            - sum(p.numel() for p in masked.parameters()),
            "dark_expert_gflops_per_mp": round(gflops_per_mp(expert) - gflops_per_mp(masked), 2),
            "with_dark_expert_ms": round(expert_ms, 1),
            "dark_expert_vs_mask_head": round(expert_ms / masked_ms, 3),
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
