"""The real stack for integration tests: gateway and workers on the session's Redis and Triton."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from service.config import Settings
from tests.conftest import Proc, free_port, start_component, wait_until

_prefixes = itertools.count()


def metric_value(text: str, series: str) -> float:
    """The value of one series (name plus labels, exactly) on a Prometheus page; -1 if absent."""
    match = re.search(rf"^{re.escape(series)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else -1.0


@dataclass
class Stack:
    url: str
    settings: Settings
    gateway: Proc | None
    workers: list[Proc]
    client: httpx.Client
    procs: list[Proc] = field(default_factory=list)

    def add_worker(self, name: str = "", metrics_port: int | None = None) -> Proc:
        """A worker process; it serves /metrics on metrics_port if given, else on the stack's
        worker_metrics_port (off unless the test asked: a fixed port would collide)."""
        name = name or f"w{len(self.workers)}"
        update: dict[str, object] = {"worker_name": name}
        if metrics_port is not None:
            update["worker_metrics_port"] = metrics_port
        proc = start_component(name, "worker", self.settings.model_copy(update=update))
        self.workers.append(proc)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        self.client.close()
        for proc in reversed(self.procs):
            proc.stop()


def start_stack(redis_url: str, triton_url: str, workers: int = 1, **overrides: object) -> Stack:
    values: dict[str, object] = {
        "redis_url": redis_url,
        "triton_grpc_url": triton_url,
        "port": free_port(),
        "key_prefix": f"it{next(_prefixes)}-{free_port()}",
        "worker_metrics_port": 0,
    }
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    url = f"http://127.0.0.1:{settings.port}"
    gateway = start_component("gateway", "gateway", settings)
    stack = Stack(url, settings, gateway, [], httpx.Client(base_url=url, timeout=60), [gateway])
    for _ in range(workers):
        stack.add_worker()
    try:
        wait_until(lambda: httpx.get(f"{url}/healthz").status_code == 200, 30, "gateway")
    except TimeoutError:
        stack.close()
        raise RuntimeError(f"gateway did not start:\n{gateway.tail()}") from None
    return stack


StackFactory = Callable[..., Stack]


@pytest.fixture(scope="module")
def stack(redis_url: str, triton_url: str) -> Iterator[Stack]:
    """One gateway and one worker shared by a module's tests (they do not change its state)."""
    s = start_stack(redis_url, triton_url)
    yield s
    s.close()


@pytest.fixture
def stack_factory(redis_url: str, triton_url: str) -> Iterator[StackFactory]:
    """A fresh stack per test, for tests that kill, starve or reconfigure it."""
    stacks: list[Stack] = []

    def start(workers: int = 1, **overrides: object) -> Stack:
        redis = str(overrides.pop("redis_url", redis_url))
        triton = str(overrides.pop("triton_grpc_url", triton_url))
        s = start_stack(redis, triton, workers, **overrides)
        stacks.append(s)
        return s

    yield start
    for s in stacks:
        s.close()
