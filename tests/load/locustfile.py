"""Load test for any sllen deployment: real photo uploads of mixed sizes, sent as bytes.

    locust -f tests/load/locustfile.py --host http://127.0.0.1:8000 \
        --headless --csv .run/loadtest/run

The photos are synthetic dark scenes generated once at start-up (no data files); the mix follows
what phones and web clients send: mostly small and medium JPEGs, some full HD, a few PNGs.
The ramp (LoadTestShape) climbs to SLLEN_LOAD_USERS users over SLLEN_LOAD_RAMP_S, holds, and stops
by itself after SLLEN_LOAD_DURATION_S. Set SLLEN_LOAD_API_KEY when the deployment needs a key.
"""

from __future__ import annotations

import io
import os
import random

import numpy as np
from locust import FastHttpUser, LoadTestShape, between, events, task
from PIL import Image

# Read here, not through service.config: this file runs against any deployment, without the service.
USERS = int(os.environ.get("SLLEN_LOAD_USERS", "8"))
RAMP_S = float(os.environ.get("SLLEN_LOAD_RAMP_S", "20"))
DURATION_S = float(os.environ.get("SLLEN_LOAD_DURATION_S", "60"))
API_KEY = os.environ.get("SLLEN_LOAD_API_KEY", "")

# (height, width, format, weight)
MIX = [(400, 600, "JPEG", 5), (768, 1024, "JPEG", 3), (1080, 1920, "JPEG", 1), (360, 480, "PNG", 1)]


def _dark_photo(h: int, w: int, fmt: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 0.35 + 0.25 * np.sin(x / w * 7 + seed) * np.cos(y / h * 5)
    img = np.stack([base * 0.8, base, base * 1.1], -1) + rng.normal(0, 0.03, (h, w, 3))
    buf = io.BytesIO()
    Image.fromarray((np.clip(img, 0, 1) * 50).astype(np.uint8)).save(buf, format=fmt, quality=90)
    return buf.getvalue()


PHOTOS = [(_dark_photo(h, w, fmt, i), fmt, weight) for i, (h, w, fmt, weight) in enumerate(MIX)]


class PhotoUser(FastHttpUser):
    wait_time = between(0.05, 0.2)

    def on_start(self) -> None:
        self.headers = {"Authorization": f"Bearer {API_KEY}"} if API_KEY else {}

    def _photo(self) -> tuple[bytes, str]:
        data, fmt, _ = random.choices(PHOTOS, weights=[w for *_, w in PHOTOS])[0]
        return data, "image/jpeg" if fmt == "JPEG" else "image/png"

    def _enhance(self, query: str, name: str, want_mask: bool) -> None:
        data, content_type = self._photo()
        with self.client.post(
            f"/v1/enhance?{query}",
            data=data,
            name=name,
            headers={**self.headers, "Content-Type": content_type},
            catch_response=True,
        ) as r:
            if r.status_code in (429, 503):
                r.success()  # shed load is an answer, counted under its status in the CSV
            elif r.status_code != 200:
                r.failure(f"status {r.status_code}")
            elif want_mask and "mask" not in r.json():
                r.failure("no mask in the answer")

    @task(4)
    def enhance_raw_body(self) -> None:
        self._enhance("format=jpeg&quality=85", "POST /v1/enhance (raw)", want_mask=False)

    @task(1)
    def enhance_with_mask(self) -> None:
        self._enhance("mask=true&format=jpeg", "POST /v1/enhance (mask)", want_mask=True)


class Ramp(LoadTestShape):
    """Linear ramp to USERS, hold, then stop: bounded in time by construction."""

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        if t > DURATION_S:
            return None
        users = max(1, round(USERS * min(1.0, t / RAMP_S)))
        return users, max(1.0, USERS / RAMP_S)


@events.init.add_listener
def _announce(environment, **_: object) -> None:  # type: ignore[no-untyped-def]
    sizes = ", ".join(f"{w}x{h} {fmt}" for h, w, fmt, _ in MIX)
    print(
        f"sllen load test: up to {USERS} users, ramp {RAMP_S:g}s, {DURATION_S:g}s; photos: {sizes}"
    )
