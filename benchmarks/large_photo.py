"""A 12 MP photo through the whole stack: wall time and every component's peak memory.

python -m benchmarks.large_photo
"""

from __future__ import annotations

import io
import json
import time

import httpx
import numpy as np
from PIL import Image

from benchmarks.bench import local_settings, local_stack
from service.config import PROJECT_ROOT

REPORT = PROJECT_ROOT / ".run" / "reports" / "large_photo.json"


def twelve_mp_jpeg() -> bytes:
    source = PROJECT_ROOT.parent / "shared" / "data" / "unpaired" / "LOL_eval15_low" / "1.png"
    if source.exists():
        im = Image.open(source).convert("RGB").resize((4000, 3000), Image.LANCZOS)
    else:  # no data beside the checkout: a synthetic dark scene of the same size
        from testkit.images import dark_scene

        im = Image.fromarray(dark_scene(3000, 4000))
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def main() -> int:
    photo = twelve_mp_jpeg()
    settings = local_settings()
    port = settings.port
    with local_stack(settings) as stack:
        times = []
        for _ in range(2):
            started = time.perf_counter()
            r = httpx.post(
                f"http://127.0.0.1:{port}/v1/enhance?format=jpeg",
                content=photo,
                headers={"content-type": "image/jpeg"},
                timeout=300,
            )
            times.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text
        out = np.asarray(Image.open(io.BytesIO(r.content)))
        report = {
            "upload_mb": round(len(photo) / 2**20, 2),
            "output_shape": list(out.shape),
            "seconds": [round(t, 2) for t in times],
            "peak_rss_mb": {k: round(v) for k, v in stack.peak_rss_mb().items()},
        }
    print(json.dumps(report, indent=2))
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
