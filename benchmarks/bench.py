"""`make bench`: the raw model against the whole stack, measured in one run on this machine.

1. Raw model: ONNX Runtime on the ONNX file that model_repository/sllen/config.pbtxt serves, with
   the session options of Triton's model.py; images/s at batch 1 and at the best batch, for
   600x400 and 1920x1080; and one single-thread session run from one thread per core at once
   (the "lanes" model.py uses under load), which on this CPU beats every batch.
2. The whole stack (gateway, Redis, worker, Triton) started here on free ports: closed-loop clients
   at concurrency 1, 4, 8, 16 posting a 600x400 JPEG, then the same photo as PNG, under the
   default format=auto (so JPEG in -> JPEG out, PNG in -> PNG out); throughput and p50/p95/p99
   latency, and PNG against JPEG at each concurrency. The
   600x400 raw figures of (1) are taken right before the stack starts and right after it stops,
   and the better of each pair is the baseline (the machine drifts within minutes).
3. Ratios against (1) from the same run, for the JPEG uploads: stack throughput / raw throughput
   (against the best
   single session, as the target is worded, and against the best of every raw way, lanes
   included), and the latency the stack adds at concurrency 1. Peak memory (VmHWM) of every
   component, and the model's GFLOPs per megapixel against this CPU's fp32 peak.

Figures go to stdout and .run/reports/bench.json. Everything shares this machine's cores (the
load generator too), which is the deployment this measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import threading
import time
from typing import Any

import aiohttp
import numpy as np
import onnxruntime as ort

from service.config import PROJECT_ROOT, Settings
from sllen.serving import open_session, served_onnx
from testkit import machine
from testkit.images import dark_scene, encode
from testkit.stack import Stack

MODEL = served_onnx()
REPORT = PROJECT_ROOT / ".run" / "reports" / "bench.json"
LOG_DIR = PROJECT_ROOT / ".run" / "bench" / "logs"
ENHANCE = "/v1/enhance"  # format=auto, the default: the answer in the upload's family
UPLOADS = ("JPEG", "PNG")
SIZES = {"600x400": (400, 600), "1920x1080": (1080, 1920)}


def ort_session(threads: int = 0, spinning: bool = True) -> ort.InferenceSession:
    """A session with the options Triton's model.py uses (spinning is measured both ways)."""
    return open_session(MODEL, threads, spinning=spinning)


def raw_throughput(
    session: ort.InferenceSession, h: int, w: int, batch: int, seconds: float
) -> dict[str, float]:
    images = np.stack([dark_scene(h, w, seed=i) for i in range(batch)])
    session.run(None, {"image": images})  # warm-up
    times = []
    stop_at = time.perf_counter() + seconds
    while time.perf_counter() < stop_at or len(times) < 3:
        started = time.perf_counter()
        session.run(None, {"image": images})
        times.append(time.perf_counter() - started)
    mean_s = statistics.fmean(times)
    return {"batch": batch, "images_per_s": batch / mean_s, "ms_per_batch": 1000 * mean_s}


def raw_lanes(h: int, w: int, seconds: float) -> dict[str, float]:
    """One single-thread session called from one thread per core, batch 1 each, as model.py's
    lanes run it (ORT releases the GIL inside run)."""
    lanes = len(os.sched_getaffinity(0))
    session = ort_session(threads=1)
    images = [dark_scene(h, w, seed=i)[None] for i in range(lanes)]
    session.run(None, {"image": images[0]})  # warm-up
    done = [0] * lanes
    stop_at = time.perf_counter() + seconds

    def lane(i: int) -> None:
        while time.perf_counter() < stop_at or done[i] < 2:
            session.run(None, {"image": images[i]})
            done[i] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=lane, args=(i,)) for i in range(lanes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"lanes": lanes, "images_per_s": sum(done) / (time.perf_counter() - started)}


def measure_raw(seconds: float, sizes: dict[str, tuple[int, int]] = SIZES) -> dict[str, Any]:
    """The raw baseline at its best: every batch size, ORT thread spinning on and off."""
    spinning, sleeping = ort_session(spinning=True), ort_session(spinning=False)
    out: dict[str, Any] = {}
    for name, (h, w) in sizes.items():
        batches = [1, 2, 4, 8] if h * w < 1_000_000 else [1, 2, 4]
        pairs = [
            (raw_throughput(spinning, h, w, b, seconds), raw_throughput(sleeping, h, w, b, seconds))
            for b in batches
        ]
        rows = [max(pair, key=lambda r: r["images_per_s"]) for pair in pairs]
        best = max(rows, key=lambda r: r["images_per_s"])
        lanes = raw_lanes(h, w, seconds)
        # Also batch 1 with Triton's own options (threads sleep; config.pbtxt says why).
        out[name] = {
            "batch1": rows[0],
            "best": best,
            "all": rows,
            "batch1_sleeping": pairs[0][1],
            "lanes": lanes,
            "best_any_images_per_s": max(best["images_per_s"], lanes["images_per_s"]),
        }
        print(
            f"raw ORT {name}: batch 1 {rows[0]['images_per_s']:.2f} img/s "
            f"({rows[0]['ms_per_batch']:.1f} ms; sleeping threads "
            f"{pairs[0][1]['ms_per_batch']:.1f} ms); best batch {best['batch']}: "
            f"{best['images_per_s']:.2f} img/s; {lanes['lanes']} single-thread lanes: "
            f"{lanes['images_per_s']:.2f} img/s",
            flush=True,
        )
    return out


def best_raw(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """One size's baseline from two measurements, before and after the stack's, each figure at
    the better of the two. This machine's speed drifts by several per cent within minutes (the
    first batch-1 figure of a run was 2-4 ms slower than the last in four runs out of four), and
    the raw model at its best is the strictest baseline for the stack."""
    sides = (before, after)
    batch1 = min((side["batch1"] for side in sides), key=lambda r: r["ms_per_batch"])
    sleeping = min(float(side["batch1_sleeping"]["ms_per_batch"]) for side in sides)
    by_batch: dict[int, float] = {}
    for side in sides:
        for row in side["all"]:
            by_batch[row["batch"]] = max(by_batch.get(row["batch"], 0.0), row["images_per_s"])
    best_batch = max(by_batch, key=lambda b: by_batch[b])
    lanes = max(float(side["lanes"]["images_per_s"]) for side in sides)
    return {
        "batch1": batch1,
        "batch1_sleeping": {"ms_per_batch": sleeping},
        "best": {"batch": best_batch, "images_per_s": by_batch[best_batch]},
        "lanes": {"images_per_s": lanes},
        "best_any_images_per_s": max(by_batch[best_batch], lanes),
        "before": before,
        "after": after,
    }


def local_stack(settings: Settings) -> Stack:
    """The stack `sllen run` starts for ``settings`` (a context manager), on a fresh Redis:
    replaying earlier runs' append-only file made its peak memory theirs, not this run's."""
    shutil.rmtree(settings.state_dir / "redis", ignore_errors=True)
    return Stack(settings, LOG_DIR)


async def closed_loop(
    url: str,
    photos: list[bytes],
    concurrency: int,
    seconds: float,
    content_type: str = "image/jpeg",
) -> dict[str, float]:
    """``concurrency`` clients, each posting the next of ``photos`` as soon as it has an answer.

    aiohttp rather than httpx: the load generator shares the cores with the stack it measures,
    and aiohttp costs a fifth of httpx's CPU per request (docs/decisions.md)."""
    latencies: list[float] = []
    sent = 0
    errors = 0
    headers = {"content-type": content_type}
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as client:

        async def post(photo: bytes) -> bool:
            async with client.post(ENHANCE, data=photo, headers=headers) as r:
                await r.read()
                return r.status == 200

        for photo in photos[:2] * 2:  # warm-up
            await post(photo)
        stop_at = time.perf_counter() + seconds

        async def loop() -> None:
            nonlocal errors, sent
            while time.perf_counter() < stop_at:
                photo = photos[sent % len(photos)]
                sent += 1
                started = time.perf_counter()
                if await post(photo):
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0]] * 99
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "images_per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * q[49],
        "p95_ms": 1000 * q[94],
        "p99_ms": 1000 * q[98],
        "mean_ms": 1000 * statistics.fmean(latencies),
    }


def local_settings(**overrides: Any) -> Settings:
    """A whole local stack on free ports, its state and logs under .run/bench."""
    values: dict[str, Any] = {
        "port": machine.free_port(),
        "redis_port": machine.free_port(),
        "triton_grpc_port": machine.free_port(),
        "triton_http_port": machine.free_port(),
        "triton_metrics_port": machine.free_port(),
        "worker_metrics_port": machine.free_port(),
        "state_dir": PROJECT_ROOT / ".run" / "bench",
        "log_level": "WARNING",
        **overrides,
    }
    return Settings(**values)


def measure_stack(
    seconds: float, workers: int, concurrencies: tuple[int, ...] = (1, 4, 8, 16)
) -> tuple[list[dict[str, Any]], dict[str, float], dict[str, Any]]:
    """The stack at each concurrency, between two raw 600x400 baselines taken in this process
    with the stack stopped (an idle stack still cost the raw lanes 1-3% here)."""
    settings = local_settings(workers=workers)
    url = f"http://127.0.0.1:{settings.port}"
    scene = dark_scene(400, 600, seed=1)
    photos = {"JPEG": encode(scene, "JPEG", quality=90), "PNG": encode(scene, "PNG")}
    rows = []
    small = {"600x400": SIZES["600x400"]}
    before = measure_raw(seconds, small)["600x400"]
    with local_stack(settings) as stack:
        for concurrency in concurrencies:
            for upload in UPLOADS:
                kind = f"image/{upload.lower()}"
                # Untimed first: the pipeline fills, and ONNX Runtime's sessions that this load
                # uses (model.py's lanes from concurrency 2 on) allocate their buffers.
                asyncio.run(closed_loop(url, [photos[upload]], concurrency, 2.0, kind))
                row: dict[str, Any] = asyncio.run(
                    closed_loop(url, [photos[upload]], concurrency, seconds, kind)
                )
                row["upload"] = upload
                rows.append(row)
                print(
                    f"stack 600x400 {upload:>4} in and out c={concurrency:>2}:"
                    f" {row['images_per_s']:.2f} img/s  p50 {row['p50_ms']:.0f} ms"
                    f"  p95 {row['p95_ms']:.0f} ms  p99 {row['p99_ms']:.0f} ms"
                    f"  errors {row['errors']}",
                    flush=True,
                )
        memory = stack.peak_rss_mb()
    after = measure_raw(seconds, small)["600x400"]
    return rows, memory, best_raw(before, after)


def png_over_jpeg(rows: list[dict[str, Any]]) -> dict[int, dict[str, float]]:
    """Per concurrency, the PNG uploads' p50 latency and throughput over the JPEG uploads'."""
    by = {(row["upload"], row["concurrency"]): row for row in rows}
    return {
        c: {k: by["PNG", c][k] / by["JPEG", c][k] for k in ("p50_ms", "images_per_s")}
        for (upload, c) in by
        if upload == "JPEG" and ("PNG", c) in by
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", default="1,4,8,16", help="comma-separated")
    args = parser.parse_args(argv)
    cpu = machine.cpu_info()
    print(
        f"machine: {cpu['model']}, {cpu['cores']} cores;"
        f" fp32 peak ~{cpu['fp32_peak_gflops']:.0f} GFLOP/s",
        flush=True,
    )
    print(f"raw graph: {MODEL.name} (what Triton runs for these requests: no mask)", flush=True)
    raw = measure_raw(args.seconds, {"1920x1080": SIZES["1920x1080"]})
    concurrencies = tuple(int(c) for c in args.concurrency.split(","))
    all_rows, memory, raw_600 = measure_stack(args.seconds, args.workers, concurrencies)
    stack_rows = [row for row in all_rows if row["upload"] == "JPEG"]
    raw["600x400"] = raw_600
    b1 = raw_600["batch1"]
    print(
        f"raw ORT 600x400, best of before and after: batch 1 {b1['images_per_s']:.2f}"
        f" img/s ({b1['ms_per_batch']:.1f} ms; sleeping threads"
        f" {raw_600['batch1_sleeping']['ms_per_batch']:.1f} ms); best batch"
        f" {raw_600['best']['batch']}: {raw_600['best']['images_per_s']:.2f} img/s;"
        f" lanes: {raw_600['lanes']['images_per_s']:.2f} img/s",
        flush=True,
    )
    best_stack = max(stack_rows, key=lambda r: r["images_per_s"])
    gflops_mp = machine.model_gflops_per_mp()
    report = {
        "machine": cpu,
        "raw_graph": MODEL.name,
        "raw": raw,
        "stack": all_rows,
        "png_over_jpeg": png_over_jpeg(all_rows),
        "peak_rss_mb": memory,
        "ratios": {
            "stack_over_raw_best_throughput": best_stack["images_per_s"]
            / raw_600["best"]["images_per_s"],
            "stack_over_raw_best_any_throughput": best_stack["images_per_s"]
            / raw_600["best_any_images_per_s"],
            "stack_over_raw_batch1_throughput_c1": stack_rows[0]["images_per_s"]
            / raw_600["batch1"]["images_per_s"],
            "added_latency_ms_c1": stack_rows[0]["p50_ms"] - raw_600["batch1"]["ms_per_batch"],
            "added_latency_ms_c1_vs_sleeping": stack_rows[0]["p50_ms"]
            - raw_600["batch1_sleeping"]["ms_per_batch"],
        },
        "model": {"gflops_per_mp": gflops_mp},
    }
    if gflops_mp:
        achieved = gflops_mp * 0.24 * raw_600["best_any_images_per_s"]
        report["model"]["achieved_gflops"] = achieved
        report["model"]["fraction_of_peak"] = achieved / cpu["fp32_peak_gflops"]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2))
    r = report["ratios"]
    print("\n== ratios (same run, same machine)")
    print(
        "stack throughput / raw throughput (600x400, best of each): "
        f"{r['stack_over_raw_best_throughput']:.2f}"
        f"  (stack c={best_stack['concurrency']}, raw batch {raw_600['best']['batch']})"
    )
    print(
        "stack throughput / best raw of any kind (single-thread lanes included): "
        f"{r['stack_over_raw_best_any_throughput']:.2f}"
    )
    print(f"stack c=1 / raw batch 1 throughput: {r['stack_over_raw_batch1_throughput_c1']:.2f}")
    print(
        "latency the stack adds at concurrency 1 (p50 - raw batch-1 mean): "
        f"{r['added_latency_ms_c1']:.1f} ms"
        f"  (against raw with Triton's sleeping threads: "
        f"{r['added_latency_ms_c1_vs_sleeping']:.1f} ms)"
    )
    print("\n== PNG uploads against JPEG uploads, format=auto (same stack, same run)")
    for c, ratio in report["png_over_jpeg"].items():
        print(
            f"c={c:>2}: PNG/JPEG p50 latency {ratio['p50_ms']:.2f},"
            f" throughput {ratio['images_per_s']:.2f}"
        )
    print("peak RSS MB: " + ", ".join(f"{k} {v:.0f}" for k, v in memory.items()))
    if gflops_mp:
        print(
            f"model: {gflops_mp:.1f} GFLOPs/MP; raw best "
            f"{report['model']['achieved_gflops']:.1f} GFLOP/s = "
            f"{100 * report['model']['fraction_of_peak']:.1f}% of the fp32 peak"
        )
    print(f"report: {REPORT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
