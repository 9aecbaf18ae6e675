"""Where `sllen run`'s processes serve /metrics, for a Prometheus to scrape.

The supervisor writes them as a Prometheus file_sd file under the state directory
(``.run/prometheus-targets.json``); each group carries the job label the rules and the dashboard
use, so one ``file_sd_configs`` scrape job covers the gateway, every worker and Triton.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from service.config import Settings

GATEWAY_JOB = "sllen-gateway"
WORKER_JOB = "sllen-worker"
TRITON_JOB = "sllen-triton"
FILE_SD_NAME = "prometheus-targets.json"
_WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


def _reachable(host: str) -> str:
    """A bind-all address is not one a scraper can dial: local processes answer on loopback."""
    return "127.0.0.1" if host in _WILDCARDS else host


def scrape_targets(settings: Settings) -> dict[str, list[str]]:
    """``host:port`` per job for the processes `sllen run` starts with these settings."""
    host = _reachable(settings.host)
    targets = {GATEWAY_JOB: [f"{host}:{settings.port}"]}
    if settings.worker_metrics_port:
        targets[WORKER_JOB] = [
            f"{host}:{settings.worker_metrics_port + i}" for i in range(settings.workers)
        ]
    if settings.start_local_triton:
        targets[TRITON_JOB] = [f"127.0.0.1:{settings.triton_metrics_port}"]
    return targets


def file_sd(targets: dict[str, list[str]]) -> list[dict[str, object]]:
    """Prometheus file_sd target groups; a group's ``job`` label overrides the scrape job's name."""
    return [{"targets": hosts, "labels": {"job": job}} for job, hosts in targets.items()]


def file_sd_path(settings: Settings) -> Path:
    return settings.state_dir / FILE_SD_NAME


def write_file_sd(path: Path, targets: dict[str, list[str]]) -> None:
    """Replace the file in one rename: Prometheus watches it and must never read half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(json.dumps(file_sd(targets), indent=2) + "\n")
    partial.replace(path)


def describe(targets: dict[str, list[str]]) -> list[str]:
    """One line per target: job and metrics URL."""
    return [f"{job:<14} http://{hp}/metrics" for job, hosts in targets.items() for hp in hosts]
