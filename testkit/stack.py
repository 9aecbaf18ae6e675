"""Start and stop local processes for tests and benchmarks, the stack through `sllen run`'s plan.

``Stack`` starts the children that ``service.local.supervisor.plan`` lists for its settings (the
same argv and environment `sllen run` uses), each with its output in a log file, and stops them
in the supervisor's order: the gateway and workers first so they drain, the servers last.
"""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import time
from collections.abc import Callable, Collection
from pathlib import Path

import httpx

from service.config import Settings
from service.local.supervisor import Child, plan
from testkit import machine


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

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str] | None, log_dir: Path
    ) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log_path = log_dir / f"{name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.popen.pid

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


class Stack:
    """The processes `sllen run` would start for ``settings``, or the ones named in ``only``
    (e.g. the gateway and workers, on a Redis and Triton started elsewhere)."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.url = f"http://127.0.0.1:{settings.port}"
        self.procs: dict[str, Proc] = {}
        self._plan = plan(settings)
        self._started: dict[str, Child] = {}

    def start(
        self, only: Collection[str] | None = None, ready: str = "/readyz", timeout_s: float = 90
    ) -> Stack:
        """Start the planned children (all, or those named), then wait until ``ready`` answers
        200; on a timeout everything started is stopped and the logs' tails are raised."""
        for child in self._plan:
            if only is None or child.name in only:
                self._start(child)
        try:
            wait_until(
                lambda: httpx.get(self.url + ready, timeout=1).status_code == 200,
                timeout_s,
                f"the stack's {ready}",
            )
        except TimeoutError:
            tails = "\n".join(f"--- {p.name}\n{p.tail()}" for p in self.procs.values())
            self.close()
            raise RuntimeError(f"the stack did not become ready:\n{tails}") from None
        return self

    def add_worker(self, name: str = "", metrics_port: int | None = None) -> Proc:
        """One more worker, as the plan starts them, under its own consumer name; its /metrics
        on ``metrics_port``, else on the next port after the settings' (off if they say 0)."""
        template = next(c for c in self._plan if _is_worker(c))
        index = len(self.workers)
        name = name or f"worker-{index}"
        if metrics_port is None:
            base = self.settings.worker_metrics_port
            metrics_port = base + index if base else 0
        env = {**template.env, "SLLEN_WORKER_NAME": name}
        env["SLLEN_WORKER_METRICS_PORT"] = str(metrics_port)
        return self._start(Child(name, template.argv, env, template.stop_order))

    @property
    def workers(self) -> list[Proc]:
        return [self.procs[name] for name, c in self._started.items() if _is_worker(c)]

    @property
    def gateway(self) -> Proc | None:
        return self.procs.get("gateway")

    @functools.cached_property
    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)

    def close(self) -> None:
        if "client" in self.__dict__:
            self.client.close()
        for name in sorted(self.procs, key=lambda n: self._started[n].stop_order):
            self.procs[name].stop()

    def peak_rss_mb(self) -> dict[str, float]:
        """VmHWM of each process (Triton's python-backend stub is its own process)."""
        peaks = {name: machine.peak_rss_mb(p.pid) for name, p in self.procs.items()}
        triton = self.procs.get("triton")
        if triton is not None:
            stubs = machine.descendants(triton.pid)
            peaks["triton-python-stub"] = sum(machine.peak_rss_mb(pid) for pid in stubs)
        return peaks

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self, child: Child) -> Proc:
        proc = Proc(child.name, child.argv, child.env, self.log_dir)
        self.procs[child.name] = proc
        self._started[child.name] = child
        return proc


def _is_worker(child: Child) -> bool:
    return child.argv[-1] == "worker"
