"""Export SLLEN to ONNX, check it against PyTorch with ONNX Runtime, then write it.

    python -m sllen.export --checkpoint runs/small/last.pt \
        --out model_repository/sllen/1/model.onnx

Tolerance (stated, checked on random uint8 images of odd sizes):
  * ``enhanced``: at least 99.9 % of values within 1 (of 255) of PyTorch, none beyond 8;
  * ``mask``: at least 99.5 % of pixels agree.
The file is only written (atomically) when the check passes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort
import torch
from torch.utils.flop_counter import FlopCounterMode

from sllen.deploy import INPUT_NAME, OUTPUT_NAMES, UNKNOWN_BELOW, UNKNOWN_ID, DeployWrapper
from sllen.files import write_atomic
from sllen.model import DEBLOCK_MODES, SLLEN, VARIANTS, NetConfig, build
from sllen.serving import open_session

log = logging.getLogger(__name__)

OPSET = 17
VERSION = "sllen-0.1"
ENHANCED_WITHIN_1_MIN = 0.999
ENHANCED_MAX_DIFF = 8
MASK_AGREE_MIN = 0.995
CHECK_SIZES: tuple[tuple[int, int], ...] = ((37, 53), (400, 600), (64, 33))


class ExportCheckError(RuntimeError):
    """ONNX Runtime output disagrees with PyTorch beyond the stated tolerance."""


@dataclass(frozen=True)
class Agreement:
    enhanced_within_1: float
    enhanced_max_diff: int
    mask_agree: float

    def ok(self) -> bool:
        return (
            self.enhanced_within_1 >= ENHANCED_WITHIN_1_MIN
            and self.enhanced_max_diff <= ENHANCED_MAX_DIFF
            and self.mask_agree >= MASK_AGREE_MIN
        )


def export_bytes(net: SLLEN) -> bytes:
    """Trace the deploy wrapper with the legacy TorchScript exporter (opset 17)."""
    wrapper = DeployWrapper(net).eval()
    dummy = torch.randint(0, 256, (1, 64, 96, 3), dtype=torch.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            # The legacy exporter warns that it is deprecated; it is the TRT-friendly path.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.onnx.export(
                wrapper,
                (dummy,),
                str(path),
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={
                    INPUT_NAME: {0: "N", 1: "H", 2: "W"},
                    OUTPUT_NAMES[0]: {0: "N", 1: "H", 2: "W"},
                    OUTPUT_NAMES[1]: {0: "N", 1: "H", 2: "W"},
                },
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        model = onnx.load(str(path))
    # The channel axis is 3 by contract; tracing leaves it symbolic after the transpose.
    model.graph.output[0].type.tensor_type.shape.dim[3].dim_value = 3
    data = model.SerializeToString()
    onnx.checker.check_model(onnx.load_from_string(data), full_check=True)
    return data


def enhanced_only(data: bytes) -> bytes:
    """The same graph pruned to the ``enhanced`` output, for requests without a mask.

    ONNX Runtime runs every node of a graph whatever outputs a call asks for, and the mask's
    4x upsampling of 11 logit channels and its argmax are 8% of a 600x400 run.
    """
    model = onnx.load_from_string(data)
    pruned = onnx.utils.Extractor(model).extract_model([INPUT_NAME], [OUTPUT_NAMES[0]])
    out = pruned.SerializeToString()
    onnx.checker.check_model(onnx.load_from_string(out), full_check=True)
    return out


def enhanced_only_path(path: Path) -> Path:
    """model.onnx -> model_enhanced.onnx (beside it; named in config.pbtxt)."""
    return path.with_name(f"{path.stem}_enhanced{path.suffix}")


def check_enhanced_only(full: bytes, pruned: bytes) -> None:
    """The pruned graph must give the very same ``enhanced`` bytes as the full one."""
    a, b = open_session(full, 2), open_session(pruned, 2)
    for image in test_images():
        expected = a.run([OUTPUT_NAMES[0]], {INPUT_NAME: image})[0]
        got = b.run(None, {INPUT_NAME: image})
        if len(got) != 1 or not np.array_equal(expected, got[0]):
            raise ExportCheckError(f"{image.shape}: the enhanced-only graph disagrees")


def median_run_ms(
    session: ort.InferenceSession, image: np.ndarray, warmup: int, runs: int
) -> float:
    """Median wall time of ``session`` on one uint8 batch, after ``warmup`` untimed runs."""
    for _ in range(warmup):
        session.run(None, {INPUT_NAME: image})
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, {INPUT_NAME: image})
        times.append(time.perf_counter() - started)
    return 1000.0 * float(np.median(times))


def compare(net: SLLEN, session: ort.InferenceSession, image: np.ndarray) -> Agreement:
    """image: uint8 [N, H, W, 3]; runs both and measures agreement."""
    with torch.no_grad():
        ref_e, ref_m = DeployWrapper(net).eval()(torch.from_numpy(image))
    out_e, out_m = session.run(list(OUTPUT_NAMES), {INPUT_NAME: image})
    if out_e.shape != image.shape or out_e.dtype != np.uint8:
        raise ExportCheckError(f"enhanced has shape {out_e.shape} {out_e.dtype}")
    if out_m.shape != image.shape[:3] or out_m.dtype != np.uint8:
        raise ExportCheckError(f"mask has shape {out_m.shape} {out_m.dtype}")
    diff = np.abs(out_e.astype(np.int16) - ref_e.numpy().astype(np.int16))
    return Agreement(
        enhanced_within_1=float((diff <= 1).mean()),
        enhanced_max_diff=int(diff.max()),
        mask_agree=float((out_m == ref_m.numpy()).mean()),
    )


def test_images(seed: int = 0) -> list[np.ndarray]:
    """Random dark-ish uint8 images (smooth + noise, so curves and classes vary)."""
    rng = np.random.default_rng(seed)
    images = []
    for h, w in CHECK_SIZES:
        base = rng.integers(0, 80, size=(1, h // 8 + 1, w // 8 + 1, 3))
        smooth = np.kron(base, np.ones((1, 8, 8, 1)))[:, :h, :w]
        noise = rng.integers(0, 30, size=(1, h, w, 3))
        images.append(np.clip(smooth + noise, 0, 255).astype(np.uint8))
    images.append(rng.integers(0, 256, size=(2, 40, 72, 3), dtype=np.uint8))
    return images


def check(net: SLLEN, data: bytes) -> list[Agreement]:
    session = open_session(data, 2)
    results = []
    for image in test_images():
        agreement = compare(net, session, image)
        log.info("ORT vs torch on %s: %s", image.shape, agreement)
        if not agreement.ok():
            raise ExportCheckError(f"{image.shape}: {agreement}")
        results.append(agreement)
    return results


@dataclass(frozen=True)
class Loaded:
    net: SLLEN
    config: NetConfig
    variant: str
    step: int
    weights: str  # "ema", "model" or "random"


def load_checkpoint(path: Path, use_ema: bool = True, deblock: str | None = None) -> Loaded:
    """A training checkpoint (runs/<name>/last.pt) or an exported weights file.

    ``deblock`` (one of DEBLOCK_MODES) sets the parameter-free deblocking filter whatever
    the network was trained with (None: as trained).
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    cfg = NetConfig.from_dict(ckpt["config"]["net"])
    if deblock is not None:
        cfg = replace(cfg, deblock=deblock)
    net = build(cfg)
    key = "ema" if use_ema and ckpt.get("ema") is not None else "model"
    net.load_state_dict(ckpt[key])
    variant = str(ckpt["config"].get("variant") or "custom")
    return Loaded(net.eval(), cfg, variant, int(ckpt.get("step", 0)), key)


def export_to(net: SLLEN, out: Path) -> list[Agreement]:
    """Write ``out`` and its enhanced-only twin, each only after its check passed."""
    net = net.eval().float()
    data = export_bytes(net)
    results = check(net, data)
    pruned = enhanced_only(data)
    check_enhanced_only(data, pruned)
    write_atomic(out, data)
    write_atomic(enhanced_only_path(out), pruned)
    return results


def gflops_per_mp(net: SLLEN, side: int = 512) -> float:
    x = torch.rand(1, 3, side, side)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(x)
    return counter.get_total_flops() / 1e9 / (side * side / 1e6)


def write_weights(weights_dir: Path, loaded: Loaded, onnx_sha256: str) -> None:
    """weights/sllen_<variant>.pt (inference weights only) and its .meta.json."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    state = {k: v.detach().clone() for k, v in loaded.net.state_dict().items()}
    cfg = {"net": asdict(loaded.config), "variant": loaded.variant}
    torch.save({"config": cfg, "model": state, "step": loaded.step}, buf)
    write_atomic(weights_dir / f"sllen_{loaded.variant}.pt", buf.getvalue())
    meta = {
        "version": f"{VERSION}+{loaded.variant}.s{loaded.step}"
        + {"off": "", "fixed": ".deblock", "adaptive": ".deblock-adaptive"}[loaded.config.deblock]
        + (".mask-head" if loaded.config.mask_head else "")
        + (".dark-expert" if loaded.config.dark_expert else ""),
        "variant": loaded.variant,
        "params": sum(p.numel() for p in loaded.net.parameters()),
        "gflops_per_mp": round(gflops_per_mp(loaded.net), 2),
        "train_steps": loaded.step,
        "weights": loaded.weights,
        "stride": loaded.net.stride,
        "opset": OPSET,
        "mask_unknown": {"id": UNKNOWN_ID, "below_confidence": UNKNOWN_BELOW},
        "onnx_sha256": onnx_sha256,
        "tolerance": {
            "enhanced_within_1_min": ENHANCED_WITHIN_1_MIN,
            "enhanced_max_diff": ENHANCED_MAX_DIFF,
            "mask_agree_min": MASK_AGREE_MIN,
        },
    }
    meta_path = weights_dir / f"sllen_{loaded.variant}.meta.json"
    write_atomic(meta_path, (json.dumps(meta, indent=2) + "\n").encode())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export SLLEN to a checked ONNX file")
    parser.add_argument("--checkpoint", type=Path, help="runs/<name>/last.pt (EMA if present)")
    parser.add_argument("--variant", default="small", help="without --checkpoint: random weights")
    parser.add_argument("--out", type=Path, default=Path("model_repository/sllen/1/model.onnx"))
    parser.add_argument("--weights-dir", type=Path, default=Path("weights"))
    parser.add_argument("--no-ema", action="store_true")
    parser.add_argument(
        "--deblock",
        choices=DEBLOCK_MODES,
        default=None,
        help="8x8 deblocking filter (default: as the checkpoint was trained)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    if args.checkpoint is not None:
        loaded = load_checkpoint(args.checkpoint, use_ema=not args.no_ema, deblock=args.deblock)
    else:
        cfg = VARIANTS[args.variant]
        loaded = Loaded(build(cfg).eval(), cfg, args.variant, 0, "random")
    results = export_to(loaded.net, args.out)
    log.info("wrote %s (%d checks passed)", args.out, len(results))
    if args.checkpoint is not None:
        sha = hashlib.sha256(args.out.read_bytes()).hexdigest()
        write_weights(args.weights_dir, loaded, sha)
        log.info("wrote %s/sllen_%s.{pt,meta.json}", args.weights_dir, loaded.variant)


if __name__ == "__main__":
    main()
