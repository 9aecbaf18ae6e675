"""Where a request's time and the machine's CPU go, per image, in the whole local stack.

    python -m benchmarks.stack_breakdown [--concurrency 1] [--seconds 15]

Starts the stack as `make bench` does, runs closed-loop 600x400 JPEG requests, and prints
(1) per-request means of each stage from the components' own Prometheus metrics (gateway
request, queue wait, worker decode/encode, the worker's Triton call, Triton's request and
compute time) and what is left between them, and (2) CPU milliseconds per image of every
process (the load generator too), against the CPU time the cores had. At concurrency 1 the
first answers "what does the stack add to the model call"; under load the second answers
"what keeps throughput below the raw model's".
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

import httpx

from benchmarks.bench import closed_loop, local_settings, local_stack
from testkit import machine
from testkit.images import dark_scene, encode
from testkit.prometheus import samples

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def scrape(url: str) -> dict[str, float]:
    return samples(httpx.get(url, timeout=10).text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args(argv)
    settings = local_settings(workers=1, worker_metrics_port=machine.free_port())
    photo = encode(dark_scene(400, 600, seed=1), "JPEG", quality=90)
    base = f"http://127.0.0.1:{settings.port}"
    urls = {
        "gateway": f"{base}/metrics",
        "worker": f"http://127.0.0.1:{settings.worker_metrics_port}/metrics",
        "triton": f"http://127.0.0.1:{settings.triton_metrics_port}/metrics",
    }
    with local_stack(settings) as stack:
        asyncio.run(closed_loop(base, [photo], args.concurrency, 3))  # warm
        pids = {name: proc.pid for name, proc in stack.procs.items()}
        for i, pid in enumerate(machine.descendants(pids["triton"])):
            pids[f"triton-stub-{i}"] = pid
        pids["load-generator"] = os.getpid()
        metrics0 = {k: scrape(u) for k, u in urls.items()}
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        row = asyncio.run(closed_loop(base, [photo], args.concurrency, args.seconds))
        cpu1 = {k: cpu_seconds(p) for k, p in pids.items()}
        metrics1 = {k: scrape(u) for k, u in urls.items()}

    def delta(comp: str, key: str) -> float:
        return metrics1[comp].get(key, 0.0) - metrics0[comp].get(key, 0.0)

    def mean_ms(comp: str, key: str) -> float:
        """A histogram's mean over the window (its _sum over its _count), in ms."""
        return 1e3 * delta(comp, key) / max(delta(comp, key.replace("_sum", "_count", 1)), 1.0)

    model = '{model="sllen",version="1"}'
    triton_requests = max(delta("triton", f"nv_inference_count{model}"), 1.0)

    def triton_ms(key: str) -> float:
        return 1e-3 * delta("triton", f"{key}{model}") / triton_requests

    post = '{method="POST",route="/v1/enhance"}'
    stages = {
        "gateway: whole request": mean_ms(
            "gateway", f"sllen_http_request_duration_seconds_sum{post}"
        ),
        "gateway: queue wait": mean_ms("gateway", "sllen_queue_wait_seconds_sum"),
        "worker: decode": mean_ms("worker", 'sllen_codec_duration_seconds_sum{op="decode"}'),
        "worker: encode": mean_ms("worker", 'sllen_codec_duration_seconds_sum{op="encode"}'),
        "worker: Triton call (per batch)": mean_ms(
            "worker", "sllen_inference_duration_seconds_sum"
        ),
        "triton: request": triton_ms("nv_inference_request_duration_us"),
        "triton: compute (model.py)": triton_ms("nv_inference_compute_infer_duration_us"),
    }
    print(
        f"concurrency {args.concurrency}: {row['images_per_s']:.2f} img/s, client p50 "
        f"{row['p50_ms']:.1f} ms, p95 {row['p95_ms']:.1f}, p99 {row['p99_ms']:.1f},"
        f" mean {row['mean_ms']:.1f}"
    )
    print("stage means per request (ms; Triton figures per request in a batch):")
    for name, ms in stages.items():
        print(f"  {name:34s} {ms:7.2f}")
    n = row["requests"]
    wall = n / row["images_per_s"]
    print("CPU per image (ms), by process:")
    total = 0.0
    for name in pids:
        used = cpu1[name] - cpu0[name]
        total += used
        print(f"  {name:34s} {1e3 * used / n:7.1f}")
    cores = os.cpu_count() or 1
    print(
        f"  {'all':34s} {1e3 * total / n:7.1f}  ({total:.1f} CPU-s used of {cores * wall:.1f} "
        f"available: {100 * total / (cores * wall):.0f}% busy)"
    )


if __name__ == "__main__":
    main()
