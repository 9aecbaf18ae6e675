"""`sllen run`: the whole local stack as one command; dead children come back; SIGTERM stops all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from testkit.images import dark_scene, encode
from testkit.machine import descendants, free_port
from testkit.stack import wait_until
from tests.conftest import LOG_DIR, listening_addresses


def _children(pid: int) -> dict[str, int]:
    """Direct children of the supervisor by the component their command line names."""
    found: dict[str, int] = {}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        for name in ("worker", "gateway", "tritonserver", "redis-server"):
            if name in cmdline:
                found[name] = int(child)
    return found


def _env(port: int, state: Path) -> dict[str, str]:
    return {
        **os.environ,
        "SLLEN_PORT": str(port),
        "SLLEN_REDIS_PORT": str(free_port()),
        "SLLEN_TRITON_GRPC_PORT": str(free_port()),
        "SLLEN_TRITON_HTTP_PORT": str(free_port()),
        "SLLEN_TRITON_METRICS_PORT": str(free_port()),
        "SLLEN_WORKER_METRICS_PORT": str(free_port()),
        "SLLEN_STATE_DIR": str(state),
    }


def test_run_starts_everything_restarts_the_dead_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = _env(port, tmp_path)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log = (LOG_DIR / f"run-{port}.log").open("wb")
    run = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: httpx.get(f"{url}/readyz").status_code == 200, 60, "stack ready")
        photo = encode(dark_scene(40, 60), "PNG")
        assert (
            httpx.post(f"{url}/enhance", files={"image": ("x.png", photo)}, timeout=30).status_code
            == 200
        )
        children = _children(run.pid)
        assert set(children) == {"worker", "gateway", "tritonserver", "redis-server"}
        # Prometheus finds every process that serves /metrics in the file sllen run wrote.
        groups = json.loads((tmp_path / "prometheus-targets.json").read_text())
        found = {g["labels"]["job"]: g["targets"] for g in groups}
        assert found["sllen-worker"] == [f"127.0.0.1:{env['SLLEN_WORKER_METRICS_PORT']}"]
        assert set(found) == {"sllen-gateway", "sllen-worker", "sllen-triton"}
        for target in (t for targets in found.values() for t in targets):
            assert httpx.get(f"http://{target}/metrics").status_code == 200, target
        # Triton's control API and Redis are for this host's processes only.
        for name in ("TRITON_GRPC", "TRITON_HTTP", "TRITON_METRICS", "REDIS"):
            assert listening_addresses(int(env[f"SLLEN_{name}_PORT"])) == {"127.0.0.1"}, name
        triton_http = f"http://127.0.0.1:{env['SLLEN_TRITON_HTTP_PORT']}"
        assert httpx.post(f"{triton_http}/v2/repository/models/sllen/unload").status_code >= 400

        os.kill(children["worker"], signal.SIGKILL)
        wait_until(
            lambda: _children(run.pid).get("worker", children["worker"]) != children["worker"],
            15,
            "worker back",
        )
        r = httpx.post(f"{url}/enhance", files={"image": ("x.png", photo)}, timeout=30)
        assert r.status_code == 200

        everything = [run.pid, *descendants(run.pid)]
        run.send_signal(signal.SIGTERM)
        assert run.wait(60) == 0
        time.sleep(0.5)
        assert [
            pid
            for pid in everything
            if Path(f"/proc/{pid}").exists()
            and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
        ] == []
    finally:
        if run.poll() is None:
            run.kill()
        log.close()
    assert "ready in" in (LOG_DIR / f"run-{port}.log").read_text()


def test_children_do_not_outlive_a_killed_supervisor(tmp_path: Path) -> None:
    port = free_port()
    run = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "run"],
        env=_env(port, tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200, 60, "ready"
        )
        children = list(_children(run.pid).values())
        assert len(children) == 4
    finally:
        run.kill()
        run.wait()

    def all_gone() -> bool:
        alive = [
            p
            for p in children
            if Path(f"/proc/{p}").exists()
            and "Z" not in Path(f"/proc/{p}/stat").read_text().split()[2]
        ]
        return not alive

    wait_until(all_gone, 40, "children gone after SIGKILL of the supervisor")
