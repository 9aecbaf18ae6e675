"""A real Prometheus server and promtool for tests (Debian's `prometheus` package: .ci/run installs
it). Where neither is installed the test skips and says so."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from testkit.machine import free_port
from testkit.stack import Proc, wait_until
from tests.conftest import LOG_DIR

MONITORING = Path(__file__).resolve().parent.parent / "monitoring"


def binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (apt-get install prometheus; .ci/run installs it)")
    return path


class PrometheusError(AssertionError):
    pass


class Prometheus:
    """One server on a free loopback port with its own storage; ``config`` is written as given."""

    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc = Proc(
            "prometheus",
            [
                binary("prometheus"),
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
                "--log.level=warn",
            ],
            None,
            LOG_DIR,
        )
        self.client = httpx.Client(base_url=self.url, timeout=10)
        try:
            wait_until(lambda: self.client.get("/-/ready").status_code == 200, 30, "prometheus")
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"Prometheus did not start:\n{self.proc.tail()}") from None

    def api(self, path: str, **params: Any) -> Any:
        """``data`` of an HTTP API answer; a PromQL error raises with Prometheus's message."""
        body = self.client.get(f"/api/v1/{path}", params=params).json()
        if body.get("status") != "success":
            raise PrometheusError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr)["result"])

    def stop(self) -> None:
        self.client.close()
        self.proc.stop()
