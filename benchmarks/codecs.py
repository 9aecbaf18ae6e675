"""Codec choices by measurement: JPEG decode library, PNG compression level, WebP method.

The images are what the service really handles: a dark 600x400 and 1920x1080 photo (the upload)
and the served model's output for it (what gets encoded; its amplified noise is what makes PNG
expensive). Times are medians of repeated runs on one core; ratios are against the service's
current choice, measured in the same run.

    python -m benchmarks.codecs
"""

from __future__ import annotations

import io
import json
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
from PIL import Image

from benchmarks.bench import MODEL, ort_session
from service import imaging
from service.config import PROJECT_ROOT, Settings
from testkit.images import dark_scene, encode

REPORT = PROJECT_ROOT / ".run" / "reports" / "codecs.json"
SIZES = {"600x400": (400, 600), "1920x1080": (1080, 1920)}


def median_ms(fn: Callable[[], object], min_runs: int = 5, budget_s: float = 1.0) -> float:
    fn()
    times: list[float] = []
    stop_at = time.perf_counter() + budget_s
    while len(times) < min_runs or time.perf_counter() < stop_at:
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def jpeg_decoders() -> dict[str, Callable[[bytes], np.ndarray]]:
    import simplejpeg

    return {
        "service (imaging.decode)": lambda b: imaging.decode(b).rgb,
        "pillow (load + array copy)": lambda b: np.asarray(
            Image.open(io.BytesIO(b)).convert("RGB")
        ),
        "simplejpeg (bare)": lambda b: simplejpeg.decode_jpeg(b, colorspace="RGB"),
    }


def encode_output(image: np.ndarray, fmt: imaging.OutputFormat) -> bytes:
    """The service's own encoder with its configured settings."""
    s = Settings()
    return imaging.encode_image(
        image,
        fmt,
        quality=None,
        png_compress_level=s.png_compress_level,
        jpeg_quality=s.jpeg_quality,
        webp_quality=s.webp_quality,
    )


PNG_STRATEGIES = {
    "default": zlib.Z_DEFAULT_STRATEGY,
    "filtered": zlib.Z_FILTERED,
    "huffman-only": zlib.Z_HUFFMAN_ONLY,
    "rle": zlib.Z_RLE,
}


def png_row(image: np.ndarray, level: int, strategy: str = "default") -> dict[str, Any]:
    def enc() -> bytes:
        buf = io.BytesIO()
        Image.fromarray(image).save(
            buf, format="PNG", compress_level=level, compress_type=PNG_STRATEGIES[strategy]
        )
        return buf.getvalue()

    return {"level": level, "strategy": strategy, "ms": median_ms(enc), "kb": len(enc()) / 1024}


def main() -> int:
    session = ort_session()
    report: dict[str, Any] = {}
    for name, (h, w) in SIZES.items():
        photo = dark_scene(h, w, seed=3)
        upload = encode(photo, "JPEG", quality=90)
        enhanced = session.run(None, {"image": photo[None]})[0][0]
        print(f"== {name} (upload {len(upload) / 1024:.0f} KB JPEG q90)")
        dec = {k: median_ms(partial(f, upload)) for k, f in jpeg_decoders().items()}
        base = dec["service (imaging.decode)"]
        for k, ms in dec.items():
            print(f"  decode JPEG {k:<34} {ms:6.2f} ms  {ms / base:.2f}x")
        rows = [png_row(enhanced, level) for level in (0, 1, 2, 3, 6, 9)]
        rows += [png_row(enhanced, 1, name) for name in PNG_STRATEGIES if name != "default"]
        service_ms = median_ms(partial(encode_output, enhanced, "png"))
        service_kb = len(encode_output(enhanced, "png")) / 1024
        png1 = next(r for r in rows if r["level"] == 1 and r["strategy"] == "default")
        for r in rows:
            print(
                f"  encode PNG level {r['level']} {r['strategy']:<12}: {r['ms']:6.1f} ms "
                f"({r['ms'] / png1['ms']:.2f}x)  {r['kb']:7.0f} KB ({r['kb'] / png1['kb']:.2f}x)"
            )
        ratio, size = service_ms / png1["ms"], service_kb / png1["kb"]
        print(
            f"  encode PNG as the service does (service/png.py): {service_ms:.1f} ms ({ratio:.2f}x)"
            f"  {service_kb:7.0f} KB ({size:.2f}x)"
        )
        lossy = {"jpeg": "JPEG q90", "webp": "WebP q85 method 2"}
        lossy_ms = {fmt: median_ms(partial(encode_output, enhanced, fmt)) for fmt in lossy}
        for fmt, label in lossy.items():
            ms = lossy_ms[fmt]
            print(f"  encode {label}: {ms:.1f} ms ({ms / png1['ms']:.2f}x PNG level 1)")
        report[name] = {
            "decode_ms": dec,
            "png": rows,
            "png_service_ms": service_ms,
            "png_service_kb": service_kb,
            "lossy_ms": lossy_ms,
        }
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps({"model": str(MODEL), **report}, indent=2))
    print(f"report: {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
