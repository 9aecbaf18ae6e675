"""The real stack for integration tests: gateway and workers on the session's Redis and Triton."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator

import pytest
import tritonclient.grpc as triton_grpc

from service.config import Settings
from testkit.machine import free_port
from testkit.stack import Stack
from tests.conftest import LOG_DIR

_prefixes = itertools.count()


def inferences(triton_url: str, quiet_s: float = 0.5, timeout_s: float = 15.0) -> int:
    """Images Triton has run through the model so far (its statistics count each one).

    Triton counts a batch after its responses have gone out, so a client holding its answer can
    read a count that is still short (1 read in 40 on the loaded 2-core Xeon): the count is taken
    once it has held still for ``quiet_s``."""
    deadline = time.monotonic() + timeout_s
    count = _inference_count(triton_url)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = _inference_count(triton_url)
        if now == count:
            return count
        count = now
    raise TimeoutError(f"Triton's inference count still moving after {timeout_s:.0f} s")


def _inference_count(triton_url: str) -> int:
    with triton_grpc.InferenceServerClient(triton_url) as client:
        stats = client.get_inference_statistics("sllen", as_json=True)
    return sum(int(m.get("inference_count", 0)) for m in stats["model_stats"])


def start_stack(redis_url: str, triton_url: str, workers: int = 1, **overrides: object) -> Stack:
    """A gateway and ``workers`` workers, as `sllen run` starts them, on the given Redis and
    Triton."""
    values: dict[str, object] = {
        "redis_url": redis_url,
        "triton_grpc_url": triton_url,
        "port": free_port(),
        "key_prefix": f"it{next(_prefixes)}-{free_port()}",
        "start_local_redis": False,
        "start_local_triton": False,
        "workers": max(workers, 1),
        "worker_metrics_port": 0,  # a fixed port would collide; tests that scrape pick one
    }
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    only = ["gateway", *(f"worker-{i}" for i in range(workers))]
    return Stack(settings, LOG_DIR).start(only, ready="/healthz", timeout_s=30)


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
