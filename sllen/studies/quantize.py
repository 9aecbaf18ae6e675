"""int8 variant of the exported model (ONNX Runtime static QDQ quantisation), judged by measurement.

    python -m sllen.studies.quantize   (make quantize: model.onnx -> model_int8.onnx beside it)

Convolutions get int8 weights (per output channel) and uint8 activations calibrated on SICE
*training* under-exposed frames; everything else stays fp32, and the uint8 I/O contract does not
change. It then measures, in the same run, held-out SICE PSNR/SSIM and ms per 600x400 image on
2 threads for fp32 and int8. The rule for making it the default: PSNR may drop by at most 0.1 dB.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from sllen import data as D
from sllen.deploy import INPUT_NAME
from sllen.evaluate import latency_ms, onnx_runner, sice_metrics
from sllen.serving import open_session
from sllen.train import TrainConfig

MODEL = Path("model_repository/sllen/1/model.onnx")
MAX_PSNR_DROP_DB = 0.1


class SiceCalibration(CalibrationDataReader):
    """Under-exposed SICE training frames, one per call, as the model's uint8 input."""

    def __init__(self, images: list[np.ndarray]) -> None:
        self._it = iter(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._it, None)
        return None if image is None else {INPUT_NAME: image[None]}


def calibration_images(root: Path, count: int, seed: int = 0) -> list[np.ndarray]:
    train = D.SicePairs.load(root / "sice", TrainConfig.val_fraction, val=False)
    ks = np.random.default_rng(seed).choice(len(train), size=count, replace=False)
    return [train.pair(int(k))[0] for k in ks]


def quantize(model: Path, out: Path, images: list[np.ndarray]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(model), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            SiceCalibration(images),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv"],
            calibrate_method=CalibrationMethod.Percentile,
            extra_options={"CalibPercentile": 99.99},
        )


def measure(path: Path, pairs: D.SicePairs) -> dict[str, float]:
    session = open_session(path.read_bytes(), 2, spinning=True)
    run = onnx_runner(session)
    row = sice_metrics(lambda image: run(image)[0], pairs)
    row["ms_600x400"] = latency_ms(session, runs=20)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=MODEL)
    parser.add_argument("--out", type=Path, default=MODEL.with_name("model_int8.onnx"))
    parser.add_argument("--report", type=Path, default=Path("weights/sllen_small.int8.json"))
    parser.add_argument("--data-root", type=Path, default=D.DEFAULT_DATA_ROOT)
    parser.add_argument("--calibration-images", type=int, default=48)
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    quantize(args.model, args.out, calibration_images(args.data_root, args.calibration_images))
    pairs = D.SicePairs.load(args.data_root / "sice", TrainConfig.val_fraction, val=True)
    rows = {"fp32": measure(args.model, pairs), "int8": measure(args.out, pairs)}
    drop = rows["fp32"]["psnr"] - rows["int8"]["psnr"]
    speedup = rows["fp32"]["ms_600x400"] / rows["int8"]["ms_600x400"]
    for name, r in rows.items():
        print(
            f"{name}: PSNR {r['psnr']:.2f} dB  SSIM {r['ssim']:.3f}  "
            f"{r['ms_600x400']:.1f} ms/600x400 (2 threads)"
        )
    verdict = "may become the default" if drop <= MAX_PSNR_DROP_DB else "stays off"
    print(f"int8 vs fp32: {speedup:.2f}x speed, PSNR {-drop:+.2f} dB -> {verdict}")
    report = {
        "fp32": str(args.model),
        "int8": str(args.out),
        "rows": rows,
        "psnr_drop_db": drop,
        "speedup": speedup,
        "verdict": verdict,
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
