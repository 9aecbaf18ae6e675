"""What tests and benchmarks need to know about this machine and its processes (Linux /proc)."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

from service.config import PROJECT_ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                found += [int(child), *descendants(int(child))]
    except OSError:
        pass
    return found


def cpu_info() -> dict[str, object]:
    text = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", text)
    mhz = [float(m) for m in re.findall(r"cpu MHz\s*:\s*([\d.]+)", text)]
    flags = re.search(r"flags\s*:\s*(.+)", text)
    avx512 = bool(flags and "avx512f" in flags.group(1))
    cores = os.cpu_count() or 1
    ghz = (max(mhz) if mhz else 2000.0) / 1000
    # two FMA units x (16 fp32 lanes with AVX-512, else 8) x 2 flops per FMA
    flops_per_cycle = 2 * (16 if avx512 else 8) * 2
    return {
        "model": model.group(1).strip() if model else "unknown",
        "cores": cores,
        "ghz": ghz,
        "avx512": avx512,
        "amx": bool(flags and "amx_tile" in flags.group(1)),
        "fp32_peak_gflops": cores * ghz * flops_per_cycle,
    }


def model_gflops_per_mp() -> float | None:
    """From the metadata the export writes beside the weights."""
    for meta in sorted((PROJECT_ROOT / "weights").glob("*.meta.json")):
        value = json.loads(meta.read_text()).get("gflops_per_mp")
        if value:
            return float(value)
    return None
