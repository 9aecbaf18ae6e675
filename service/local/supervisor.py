"""`sllen run`: Redis, Triton, workers and the gateway on this machine, as one foreground command.

Each child's output is prefixed with its name. A child that dies is restarted with backoff; Ctrl-C
or SIGTERM stops everything, the gateway and workers first so they can drain, the servers last.
Children start together: each one retries its dependencies, so order does not matter.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field

import httpx

from service.config import Settings, settings_env
from service.local import redis_server, targets, triton_server

log = logging.getLogger("sllen.run")
STOP_GRACE_S = 20.0


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    stop_order: int  # lower stops first
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)


_PR_SET_PDEATHSIG = 1


def _terminate_with_parent() -> None:
    """Linux: deliver SIGTERM to this (forked) child when its parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def plan(settings: Settings) -> list[Child]:
    updates: dict[str, object] = {}
    if settings.start_local_redis:
        updates["redis_url"] = f"redis://127.0.0.1:{settings.redis_port}/0"
    if settings.start_local_triton:
        updates["triton_grpc_url"] = f"127.0.0.1:{settings.triton_grpc_port}"
    # Children build exactly the supervisor's settings, whether they came from env or .env.
    base_env = {**os.environ, **settings_env(settings.model_copy(update=updates))}
    base_env["PYTHONUNBUFFERED"] = "1"
    py = [sys.executable, "-m", "service.cli"]
    children: list[Child] = []
    if settings.start_local_redis:
        password = settings.redis_password.get_secret_value() if settings.redis_password else None
        argv = redis_server.build_argv(
            port=settings.redis_port,
            data_dir=settings.state_dir / "redis",
            persist=True,
            password=password,
            maxmemory_mb=settings.redis_maxmemory_mb,
        )
        children.append(Child("redis", argv, base_env, stop_order=3))
    if settings.start_local_triton:
        launch = triton_server.launch_for(settings)
        argv = launch.argv
        if settings.triton_nice:
            argv = ["nice", "-n", str(settings.triton_nice), *argv]
        children.append(Child("triton", argv, {**base_env, **launch.env}, stop_order=2))
    for i in range(settings.workers):
        env = {**base_env, "SLLEN_WORKER_NAME": f"worker-{i}"}
        if settings.worker_metrics_port:
            env["SLLEN_WORKER_METRICS_PORT"] = str(settings.worker_metrics_port + i)
        children.append(Child(f"worker-{i}", [*py, "worker"], env, stop_order=1))
    children.append(Child("gateway", [*py, "gateway"], base_env, stop_order=0))
    return children


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.children = plan(settings)
        self._stopping = asyncio.Event()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._stopping.set)
        started = time.perf_counter()
        self._publish_targets()
        keepers = [asyncio.create_task(self._keep(child)) for child in self.children]
        ready = asyncio.create_task(self._announce_ready(started))
        await self._stopping.wait()
        ready.cancel()
        log.info("stopping")
        await self._stop_all()
        await asyncio.gather(*keepers, return_exceptions=True)
        return 0

    def _publish_targets(self) -> None:
        """Where each process serves /metrics, as a file a Prometheus can watch (file_sd)."""
        found = targets.scrape_targets(self.settings)
        path = targets.file_sd_path(self.settings)
        targets.write_file_sd(path, found)
        listed = ", ".join(f"{job} {','.join(hosts)}" for job, hosts in found.items())
        log.info("metrics: %s (Prometheus file_sd: %s)", listed, path)

    async def _keep(self, child: Child) -> None:
        """Run the child; restart it when it dies, with backoff, until we are stopping."""
        delay_s = 1.0
        while not self._stopping.is_set():
            # Own session: a terminal's Ctrl-C reaches only us, and we stop children in order.
            # Death signal: if we are killed outright, the children do not outlive us.
            child.process = await asyncio.create_subprocess_exec(
                *child.argv,
                env=child.env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_terminate_with_parent,
            )
            child.started_at = time.monotonic()
            await self._pump(child)
            code = await child.process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - child.started_at > 60:
                delay_s = 1.0
            child.restarts += 1
            log.warning(
                "%s exited with %s; restart %d in %.0fs", child.name, code, child.restarts, delay_s
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay_s)
            delay_s = min(delay_s * 2, 30.0)

    async def _pump(self, child: Child) -> None:
        assert child.process and child.process.stdout
        prefix = f"{child.name:>9} | "
        async for raw in child.process.stdout:
            sys.stdout.write(prefix + raw.decode(errors="replace"))
            sys.stdout.flush()

    async def _stop_all(self) -> None:
        for order in sorted({c.stop_order for c in self.children}):
            group = [c for c in self.children if c.stop_order == order and c.process]
            for child in group:
                if child.process and child.process.returncode is None:
                    child.process.send_signal(signal.SIGTERM)
            for child in group:
                assert child.process
                try:
                    await asyncio.wait_for(child.process.wait(), timeout=STOP_GRACE_S)
                except TimeoutError:
                    log.warning("%s did not stop in %.0fs; killing it", child.name, STOP_GRACE_S)
                    child.process.kill()
                    await child.process.wait()

    async def _announce_ready(self, started: float) -> None:
        url = f"http://{self.settings.host}:{self.settings.port}/readyz"
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        log.info(
                            "ready in %.1fs: http://%s:%d (docs at /docs)",
                            time.perf_counter() - started,
                            self.settings.host,
                            self.settings.port,
                        )
                        return
                await asyncio.sleep(0.25)
