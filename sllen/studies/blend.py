"""Blend two checkpoints of one network into a third: (1 - w) * A + w * B, weight by weight.

    python -m sllen.studies.blend --a checkpoints/small_v5/last.pt \
        --b checkpoints/gpu_v11/last.pt --weight-b 0.5 [--part llemn=0.2 ...] \
        --out runs/blend/last.pt

Only meaningful when B was fine-tuned from A (or both from one parent): the two then sit in
one basin of the loss and every point on the segment between them is a working network
(Wortsman et al., "Robust fine-tuning of zero-shot models", 2022). The weight trades what B
learned against what A kept. The result is an ordinary checkpoint (EMA weights, no
optimiser state), so ``sllen.export --checkpoint`` takes it as it is. ``--part`` gives the
parameters under one top-level module (encoder, ssan, llemn, gate) a weight of their own.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from sllen.train import inference_state, save_atomic

log = logging.getLogger(__name__)


class BlendError(ValueError):
    """The two checkpoints are not the same network."""


def blend_states(
    a: dict[str, Tensor],
    b: dict[str, Tensor],
    weight_b: float,
    parts: dict[str, float] | None = None,
) -> dict[str, Tensor]:
    parts = parts or {}
    if set(a) != set(b):
        raise BlendError(f"parameters differ: {sorted(set(a) ^ set(b))[:5]}")
    out: dict[str, Tensor] = {}
    for name, ta in a.items():
        tb = b[name]
        if ta.shape != tb.shape:
            raise BlendError(f"{name}: shape {tuple(ta.shape)} vs {tuple(tb.shape)}")
        w = parts.get(name.split(".", 1)[0], weight_b)
        if ta.dtype.is_floating_point:
            out[name] = torch.lerp(ta.float(), tb.float(), w).to(ta.dtype)
        else:  # integer buffers (counters) cannot be averaged; they come from B
            out[name] = tb.clone()
    return out


def blend(
    a_path: Path, b_path: Path, weight_b: float, parts: dict[str, float] | None = None
) -> dict[str, Any]:
    parts = parts or {}
    for w in (weight_b, *parts.values()):
        if not 0.0 <= w <= 1.0:
            raise BlendError(f"weights must lie in [0, 1], got {w}")
    a = torch.load(a_path, map_location="cpu", weights_only=False)
    b = torch.load(b_path, map_location="cpu", weights_only=False)
    if a["config"]["net"] != b["config"]["net"]:
        raise BlendError("the two checkpoints have different network configs")
    state = blend_states(inference_state(a), inference_state(b), weight_b, parts)
    config = dict(b["config"])
    config["blend"] = {"a": str(a_path), "b": str(b_path), "weight_b": weight_b, "parts": parts}
    return {"config": config, "model": state, "ema": state, "step": int(b.get("step", 0))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Blend two checkpoints of one network")
    parser.add_argument("--a", type=Path, required=True, help="the parent checkpoint")
    parser.add_argument("--b", type=Path, required=True, help="fine-tuned from --a")
    parser.add_argument("--weight-b", type=float, required=True, help="0 = A, 1 = B")
    parser.add_argument("--part", action="append", default=[], help="MODULE=W (repeatable)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    parts = {k: float(v) for k, v in (p.split("=", 1) for p in args.part)}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_atomic(blend(args.a, args.b, args.weight_b, parts), args.out)
    log.info("wrote %s: %s -> %s at %.3f, parts %s", args.out, args.a, args.b, args.weight_b, parts)


if __name__ == "__main__":
    main()
