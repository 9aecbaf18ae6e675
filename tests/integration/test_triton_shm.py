"""Pixels to and from the real Triton through system shared memory, and every way back to gRPC."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import tritonclient.grpc.aio as triton

from service import metrics, triton_shm
from service.config import Settings
from service.errors import ModelUnavailable
from service.inference import TritonModel
from service.triton_shm import RegionPool, on_loopback, region_prefix
from testkit.images import dark_scene
from tests.conftest import TritonPorts, start_triton

pytestmark = pytest.mark.integration


def calls(transport: str) -> float:
    return metrics.TRITON_CALLS.labels(transport)._value.get()


def model(triton_url: str, **overrides: object) -> TritonModel:
    return TritonModel(Settings(triton_grpc_url=triton_url, **overrides))  # type: ignore[arg-type]


async def registered(triton_url: str) -> set[str]:
    client = triton.InferenceServerClient(triton_url)
    try:
        status = await client.get_system_shared_memory_status(as_json=True)
    finally:
        await client.close()
    return set(status.get("regions", {}))


def files_in(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir()]


def ours(name: str) -> bool:
    """Made by this process: other processes on this host (other test runs) have regions too."""
    return name.startswith(f"{region_prefix()}{os.getpid()}-")


def ours_in_dev_shm() -> list[str]:
    return [p.name for p in triton_shm.SHM_DIR.iterdir() if ours(p.name)]


def test_only_a_loopback_triton_is_assumed_to_share_this_host() -> None:
    assert on_loopback("127.0.0.1:8001") and on_loopback("localhost:8001")
    assert on_loopback("[::1]:8001") and on_loopback("127.3.2.1:8001")
    assert not on_loopback("triton:8001") and not on_loopback("10.0.0.7:8001")


async def test_shared_memory_gives_the_bytes_grpc_gives(triton_url: str) -> None:
    images = np.stack([dark_scene(72, 104, seed=s) for s in (3, 4)])
    by_shm, by_grpc = model(triton_url), model(triton_url, triton_shared_memory="off")
    shm_before, grpc_before = calls("shm"), calls("grpc")
    try:
        for want_mask in (True, False):
            a = await by_shm.infer(images, mask=want_mask)
            b = await by_grpc.infer(images, mask=want_mask)
            assert np.array_equal(a.enhanced, b.enhanced)
            if want_mask:
                assert a.mask is not None and b.mask is not None
                assert np.array_equal(a.mask, b.mask)
            else:
                assert a.mask is None
        # A view that is not contiguous (a crop) travels as well.
        crop = images[:, 8:-8, 4:-4]
        a = await by_shm.infer(crop, mask=False)
        b = await by_grpc.infer(np.ascontiguousarray(crop), mask=False)
        assert np.array_equal(a.enhanced, b.enhanced)
        assert calls("shm") - shm_before == 3 and calls("grpc") - grpc_before == 3
        # The outputs are copies: the next call reuses the region without touching them.
        kept = a.enhanced.copy()
        await by_shm.infer(images[::-1].copy(), mask=False)
        assert np.array_equal(a.enhanced, kept)
    finally:
        await by_shm.close()
        await by_grpc.close()
    assert not ours_in_dev_shm()  # unlinked once Triton mapped them
    assert not {n for n in await registered(triton_url) if ours(n)}


async def test_regions_are_reused_and_the_pool_keeps_to_its_budget(triton_url: str) -> None:
    m = model(triton_url, triton_shared_memory_max_mb=8)
    by_grpc = model(triton_url, triton_shared_memory="off")
    small = dark_scene(64, 64, seed=1)[None]
    big = np.stack([dark_scene(800, 1000, seed=s) for s in (1, 2)])  # 4.8 MB in: needs 10 MiB
    try:
        for _ in range(4):
            await m.infer(small, mask=False)
        assert m._regions is not None and m._regions.held_bytes == 1 << 20
        # Too big for the budget: this call goes by gRPC, and still right.
        before = calls("grpc")
        out = await m.infer(big, mask=False)
        assert calls("grpc") - before == 1 and out.enhanced.shape == big.shape
        # Regions held at once are distinct; a released one is handed out again.
        pool = m._regions
        a, b = await pool.acquire(1000), await pool.acquire(1000)
        assert a is not None and b is not None and a.name != b.name
        pool.release(a)
        pool.release(b)
        again = await pool.acquire(1000)
        assert again is a or again is b
        pool.release(again)
        # Concurrent calls of different images each get their own answer back.
        images = [dark_scene(64, 64, seed=s)[None] for s in (5, 6, 7)]
        outs = await asyncio.gather(*(m.infer(i, mask=True) for i in images))
        refs = [await by_grpc.infer(i, mask=True) for i in images]
        for out_, ref in zip(outs, refs, strict=True):
            assert np.array_equal(out_.enhanced, ref.enhanced)
            assert out_.mask is not None and ref.mask is not None
            assert np.array_equal(out_.mask, ref.mask)
        assert pool.held_bytes <= 8 << 20
    finally:
        await m.close()
        await by_grpc.close()


async def test_a_triton_that_cannot_map_our_regions_gets_the_pixels_by_grpc(
    triton_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regions made where Triton does not look stand in for a Triton on another host or container.
    monkeypatch.setattr(triton_shm, "SHM_DIR", tmp_path)
    m = model(triton_url, triton_shared_memory="on")
    images = dark_scene(48, 64, seed=5)[None]
    before = calls("grpc")
    try:
        first = await m.infer(images, mask=False)
        second = await m.infer(images, mask=False)
    finally:
        await m.close()
    assert calls("grpc") - before == 2
    assert np.array_equal(first.enhanced, second.enhanced)
    assert files_in(tmp_path) == []


async def register_file_region(client: triton.InferenceServerClient, name: str) -> None:
    path = triton_shm.SHM_DIR / name
    path.write_bytes(b"\0" * 4096)
    try:
        await client.register_system_shared_memory(name, f"/{name}", 4096)
    finally:
        path.unlink()


async def test_a_worker_unregisters_what_a_dead_one_on_this_host_left(triton_url: str) -> None:
    dead = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await dead.wait()
    prefix = region_prefix()
    # Left by a dead worker, and by an earlier incarnation with our pid (a restarted container).
    stale = {f"{prefix}{dead.pid}-abc-0", f"{prefix}{os.getpid()}-abc-99"}
    foreign = {"another-program-region", "sllen-another-host-1-abc-0"}
    client = triton.InferenceServerClient(triton_url)
    live = RegionPool(client, 8 << 20)
    try:
        held = await live.acquire(1000)  # this process's own, in use: must stay
        assert held is not None
        for name in stale | foreign:
            await register_file_region(client, name)
        removed = await RegionPool(client, 8 << 20).remove_stale()
        assert set(removed) == stale
        left = await registered(triton_url)
        assert foreign | {held.name} <= left and not stale & left
    finally:
        await live.close()
        for name in foreign:
            await client.unregister_system_shared_memory(name)
        await client.close()


async def test_a_call_that_fails_retires_its_region_until_triton_lets_go(triton_url: str) -> None:
    m = model(triton_url, triton_timeout_s=0.005)
    images = dark_scene(400, 600, seed=2)[None]  # runs ~50 ms: the client gives up first
    try:
        with pytest.raises(ModelUnavailable):
            await m.infer(images, mask=False)
        assert m._regions is not None and len(m._regions._retired) == 1
        await asyncio.sleep(1.0)  # Triton finishes the abandoned request
        m._timeout_s = 60.0
        await m.infer(images, mask=False)
        assert m._regions._retired == []  # unregistered at the next acquire
    finally:
        await m.close()


async def test_after_a_triton_restart_the_next_call_registers_afresh(tmp_path: Path) -> None:
    ports = TritonPorts()
    server = start_triton(tmp_path / "t1", ports)
    m = model(ports.grpc_url, retry_backoff_s=0.1)
    images = dark_scene(64, 80, seed=7)[None]
    try:
        before = await m.infer(images, mask=False)
        server.stop()
        server = start_triton(tmp_path / "t2", ports)
        with pytest.raises(ModelUnavailable, match="lost its shared memory"):
            await m.infer(images, mask=False)
        after = await m.infer(images, mask=False)  # the worker's retry
        assert np.array_equal(before.enhanced, after.enhanced)
        assert {n for n in await registered(ports.grpc_url) if n.startswith(region_prefix())}
    finally:
        await m.close()
        server.stop()
