"""System shared memory regions for Triton's inputs and outputs, when the worker shares its host.

Pixels then cross by memcpy instead of inside gRPC messages: no protobuf (de)serialising of
~720 KB each way per 600x400 photo, in the worker or in Triton (figures: docs/decisions.md).

Each region is a POSIX shared-memory object made here with its pages reserved up front (a full
/dev/shm then fails the creation, instead of killing the process with SIGBUS at the first write),
registered with Triton, which maps it during registration, and unlinked at once: a worker that
dies leaves no file behind, and Triton's mapping lives until the region is unregistered. Names
carry host and pid, so a worker that starts unregisters what a dead predecessor on this host left.

A region serves one call at a time and goes back to the pool after its outputs are copied out.
After a failed or cancelled call Triton may still write into it, so it is retired, never reused,
and unregistered once Triton no longer holds it for a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import mmap
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

import grpc
import tritonclient.grpc.aio as triton
from tritonclient.utils import InferenceServerException

log = logging.getLogger(__name__)

SHM_DIR = Path("/dev/shm")
_GRAIN = 1 << 20  # sizes round up to whole MiB, so one region fits many photo sizes
# Every region this process holds, whichever pool: a pool cleaning up must spare the others'.
_LIVE: set[str] = set()
_IDS = itertools.count()
_TOKEN = secrets.token_hex(3)  # a later process with the same pid (containers) makes new names


class RegionsUnusable(Exception):
    """Triton cannot map this host's shared memory (another host or container): send bytes."""


@dataclass(eq=False, slots=True)
class Region:
    name: str
    size: int
    buffer: mmap.mmap


def on_loopback(grpc_url: str) -> bool:
    """Whether a Triton URL (``host:port``) names this machine."""
    host = grpc_url.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def region_prefix() -> str:
    return f"sllen-{socket.gethostname()}-"


def _owner_pid(name: str, prefix: str) -> int | None:
    pid, _, _ = name.removeprefix(prefix).partition("-")
    return int(pid) if pid.isdigit() else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reserve(path: Path, size: int) -> mmap.mmap:
    """A new shared-memory file of ``size`` bytes whose pages exist now, mapped here."""
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
        return mmap.mmap(fd, size)
    except OSError:
        path.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)


class RegionPool:
    """Registered regions for one worker process, at most ``max_bytes`` of them."""

    def __init__(self, client: triton.InferenceServerClient, max_bytes: int) -> None:
        self._client = client
        self._max_bytes = max_bytes
        self._prefix = region_prefix()
        self._free: list[Region] = []
        self._busy: set[Region] = set()
        self._retired: list[Region] = []

    @property
    def held_bytes(self) -> int:
        return sum(r.size for r in (*self._free, *self._busy, *self._retired))

    async def remove_stale(self) -> list[str]:
        """Unregister regions that an earlier worker process on this host left in Triton."""
        status = await self._client.get_system_shared_memory_status(as_json=True)
        names = [str(n) for n in status.get("regions", {})] if isinstance(status, dict) else []
        stale = []
        for name in names:
            pid = _owner_pid(name, self._prefix)
            if pid is None or name in _LIVE:
                continue  # another host's or program's region, or one this process holds
            # Our own pid too: a container's worker is often pid 1 in every incarnation.
            if pid == os.getpid() or not _alive(pid):
                stale.append(name)
        for name in stale:
            with contextlib.suppress(InferenceServerException):
                await self._client.unregister_system_shared_memory(name)
        return stale

    async def acquire(self, nbytes: int) -> Region | None:
        """A registered region of at least ``nbytes``; None when the budget is spent."""
        await self._collect_retired()
        fits = [r for r in self._free if r.size >= nbytes]
        if fits:
            region = min(fits, key=lambda r: r.size)
            self._free.remove(region)
            self._busy.add(region)
            return region
        size = -(-nbytes // _GRAIN) * _GRAIN
        while self._free and self.held_bytes + size > self._max_bytes:
            await self._unregister(self._free.pop(0))  # too small for this call anyway
        if self.held_bytes + size > self._max_bytes:
            return None
        created = await self._create(size)
        if created is not None:
            self._busy.add(created)
        return created

    def release(self, region: Region) -> None:
        self._busy.discard(region)
        self._free.append(region)

    def retire(self, region: Region) -> None:
        """After a failed call: Triton may still write into it, so it is never handed out again."""
        self._busy.discard(region)
        self._retired.append(region)

    def forget_all(self) -> None:
        """Triton restarted and holds none of our regions any more: start afresh."""
        for region in self._all():
            region.buffer.close()
            _LIVE.discard(region.name)
        self._free.clear()
        self._retired.clear()
        self._busy.clear()

    async def close(self) -> None:
        for region in list(self._all()):
            await self._unregister(region)
        self.forget_all()

    def _all(self) -> list[Region]:
        return [*self._free, *self._busy, *self._retired]

    async def _create(self, size: int) -> Region | None:
        name = f"{self._prefix}{os.getpid()}-{_TOKEN}-{next(_IDS)}"
        path = SHM_DIR / name
        try:
            buffer = await asyncio.to_thread(_reserve, path, size)
        except OSError as exc:
            log.warning("no shared memory region (%s): this call sends its pixels by gRPC", exc)
            return None
        try:
            await self._client.register_system_shared_memory(name, f"/{name}", size)
        except InferenceServerException as exc:
            buffer.close()
            status = str(exc.status() or "")
            if "INTERNAL" in status or "INVALID_ARG" in status:
                raise RegionsUnusable(exc.message()) from exc
            raise
        except BaseException:
            buffer.close()
            raise
        finally:
            path.unlink(missing_ok=True)  # Triton holds its own mapping now
        _LIVE.add(name)
        return Region(name, size, buffer)

    async def _collect_retired(self) -> None:
        for region in list(self._retired):
            if await self._unregister(region):
                self._retired.remove(region)

    async def _unregister(self, region: Region) -> bool:
        """False while Triton still holds the region for a request (it refuses then)."""
        try:
            await self._client.unregister_system_shared_memory(region.name)
        except InferenceServerException as exc:
            if "in use" in (exc.message() or ""):
                return False
        except (grpc.RpcError, OSError):
            return False
        region.buffer.close()
        _LIVE.discard(region.name)
        return True
