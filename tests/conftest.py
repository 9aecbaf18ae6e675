"""Shared fixtures. Integration tests start their own real Redis and Triton on free ports."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from service.config import PROJECT_ROOT
from service.local import redis_server, triton_server
from testkit.machine import free_port
from testkit.stack import Proc, wait_until

LOG_DIR = PROJECT_ROOT / ".run" / "test-logs"


def start_redis(data_dir: Path, port: int | None = None, persist: bool = False) -> tuple[Proc, str]:
    port = port or free_port()
    argv = redis_server.build_argv(port=port, data_dir=data_dir, persist=persist)
    proc = Proc("redis", argv, None, LOG_DIR)
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


def start_triton(state_dir: Path, ports: TritonPorts, model_control: bool = False) -> Proc:
    launch = triton_server.build_launch(
        model_repository=PROJECT_ROOT / "model_repository",
        state_dir=state_dir,
        grpc_port=ports.grpc,
        http_port=ports.http,
        metrics_port=ports.metrics,
        model_control=model_control,
    )
    proc = Proc("triton", launch.argv, launch.env, LOG_DIR)
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


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a TCP socket listening on ``port`` (from /proc/net/tcp{,6})."""
    found: set[str] = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port or len(address) != width:
                continue
            raw = bytes.fromhex(address)
            # The kernel prints each 32-bit word in host (little-endian) order.
            words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            ip = ipaddress.ip_address(words)
            mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
            found.add(str(mapped or ip))  # gRPC listens on ::ffff:127.0.0.1 for 127.0.0.1
    return found


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)
