"""`sllen run` gives each worker its own metrics port and tells Prometheus where everything is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from service.config import PROJECT_ROOT, Settings
from service.local.supervisor import plan
from service.local.targets import file_sd_path, scrape_targets, write_file_sd


def _settings(**kw: object) -> Settings:
    return Settings(start_local_redis=False, **kw)  # type: ignore[arg-type]


def test_each_worker_gets_the_next_port_and_is_a_target() -> None:
    settings = _settings(workers=3, worker_metrics_port=9300, port=8500, triton_metrics_port=8502)
    ports = {
        c.name: c.env["SLLEN_WORKER_METRICS_PORT"] for c in plan(settings) if c.name[:6] == "worker"
    }
    assert ports == {"worker-0": "9300", "worker-1": "9301", "worker-2": "9302"}
    assert scrape_targets(settings) == {
        "sllen-gateway": ["127.0.0.1:8500"],
        "sllen-worker": ["127.0.0.1:9300", "127.0.0.1:9301", "127.0.0.1:9302"],
        "sllen-triton": ["127.0.0.1:8502"],
    }


def test_targets_follow_the_settings() -> None:
    assert _settings().worker_metrics_port, "workers under `make run` serve metrics by default"
    found = scrape_targets(
        _settings(host="0.0.0.0", worker_metrics_port=0, start_local_triton=False)
    )
    assert found == {"sllen-gateway": ["127.0.0.1:8000"]}


def test_file_sd_labels_each_group_with_its_job(tmp_path: Path) -> None:
    path = file_sd_path(_settings(state_dir=tmp_path))
    write_file_sd(path, {"sllen-gateway": ["h:1"], "sllen-worker": ["h:2", "h:3"]})
    assert json.loads(path.read_text()) == [
        {"targets": ["h:1"], "labels": {"job": "sllen-gateway"}},
        {"targets": ["h:2", "h:3"], "labels": {"job": "sllen-worker"}},
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["prometheus-targets.json"]


def test_sllen_targets_prints_them() -> None:
    env = {"SLLEN_WORKERS": "2", "SLLEN_WORKER_METRICS_PORT": "9400", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "service.cli", "targets", "--file-sd"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    groups = {g["labels"]["job"]: g["targets"] for g in json.loads(out)}
    assert groups["sllen-worker"] == ["127.0.0.1:9400", "127.0.0.1:9401"]
