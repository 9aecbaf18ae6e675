"""Shared fixtures. Integration tests start their own real Redis and Triton on free ports."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from benchmarks.machine import free_port
from service.config import PROJECT_ROOT, Settings, settings_env
from service.local import redis_server, triton_server

LOG_DIR = PROJECT_ROOT / ".run" / "test-logs"


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout_s}s")


class Proc:
    """A child process with its output in a log file, stopped politely, then firmly."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = LOG_DIR / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        if self._log.closed:
            return
        if self.alive():
            self.popen.terminate()
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as in a crash."""
        self.popen.kill()
        self.popen.wait()
        self._log.close()

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def start_redis(data_dir: Path, port: int | None = None, persist: bool = False) -> tuple[Proc, str]:
    port = port or free_port()
    proc = Proc("redis", redis_server.build_argv(port=port, data_dir=data_dir, persist=persist))
    client = redis.Redis(port=port)
    try:
        wait_until(lambda: bool(client.ping()), 10, "redis")
    finally:
        client.close()
    return proc, f"redis://127.0.0.1:{port}/0"


@dataclass
class TritonPorts:
    grpc: int = field(default_factory=free_port)
    http: int = field(default_factory=free_port)
    metrics: int = field(default_factory=free_port)

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc}"


def start_triton(state_dir: Path, ports: TritonPorts) -> Proc:
    launch = triton_server.build_launch(
        model_repository=PROJECT_ROOT / "model_repository",
        state_dir=state_dir,
        grpc_port=ports.grpc,
        http_port=ports.http,
        metrics_port=ports.metrics,
    )
    proc = Proc("triton", launch.argv, launch.env)
    ready = f"http://127.0.0.1:{ports.http}/v2/models/sllen/ready"
    try:
        wait_until(lambda: httpx.get(ready, timeout=1).status_code == 200, 60, "triton")
    except TimeoutError:
        proc.stop()
        raise RuntimeError(f"Triton did not start:\n{proc.tail()}") from None
    return proc


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    proc.stop()


@pytest.fixture(scope="session")
def triton_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonPorts]:
    """The session's Triton, by its ports (gRPC for the workers, metrics for Prometheus)."""
    ports = TritonPorts()
    proc = start_triton(tmp_path_factory.mktemp("triton"), ports)
    yield ports
    proc.stop()


@pytest.fixture(scope="session")
def triton_url(triton_ports: TritonPorts) -> str:
    return triton_ports.grpc_url


def start_component(name: str, command: str, settings: Settings) -> Proc:
    env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
    return Proc(name, [sys.executable, "-m", "service.cli", command], env)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)
