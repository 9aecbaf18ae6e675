"""The `sllen enhance` command and the client library against the real stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from service.client import SllenClient
from testkit.images import dark_scene, decode, encode
from testkit.stack import Stack


def _sllen(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "enhance", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_one_photo_with_mask(stack: Stack, tmp_path: Path) -> None:
    photo = tmp_path / "dark.jpg"
    photo.write_bytes(encode(dark_scene(60, 80), "JPEG"))
    done = _sllen(
        str(photo),
        "-o",
        str(tmp_path / "out.png"),
        "--mask",
        str(tmp_path / "m.png"),
        "--url",
        stack.url,
    )
    assert done.returncode == 0, done.stderr
    assert decode((tmp_path / "out.png").read_bytes()).shape == (60, 80, 3)
    assert decode((tmp_path / "m.png").read_bytes()).shape == (60, 80)


@pytest.mark.parametrize("jobs", [False, True])
def test_folder_with_bounded_concurrency(stack: Stack, tmp_path: Path, jobs: bool) -> None:
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    for i in range(5):
        (src / ("sub" if i % 2 else "") / f"p{i}.png").write_bytes(
            encode(dark_scene(40, 50, seed=i), "PNG")
        )
    (src / "notes.txt").write_text("not a photo")
    out = tmp_path / "out"
    args = [str(src), "-o", str(out), "--format", "jpeg", "--concurrency", "2", "--url", stack.url]
    done = _sllen(*args, *(["--jobs"] if jobs else []))
    assert done.returncode == 0, done.stderr
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.jpeg"))
    assert written == ["p0.jpeg", "p2.jpeg", "p4.jpeg", "sub/p1.jpeg", "sub/p3.jpeg"]
    assert "5/5" in done.stderr


def test_failure_is_reported_and_exit_status_is_non_zero(stack: Stack, tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    done = _sllen(str(bad), "-o", str(tmp_path / "o.png"), "--url", stack.url)
    assert done.returncode == 1 and "400" in done.stderr


def test_library_job_round_trip(stack: Stack) -> None:
    with SllenClient(stack.url) as client:
        job_id = client.submit(encode(dark_scene(30, 30), "PNG"), mask=True)
        result = client.wait(job_id, poll_s=0.1)
    assert decode(result.image).shape == (30, 30, 3) and result.mask is not None


def test_phone_formats_answer_in_their_family_and_a_named_file_decides(
    stack: Stack, tmp_path: Path
) -> None:
    from testkit.images import encode_avif, encode_heic

    src = tmp_path / "in"
    src.mkdir()
    (src / "a.heic").write_bytes(encode_heic(dark_scene(40, 50)))
    (src / "b.avif").write_bytes(encode_avif(dark_scene(40, 50)))
    (src / "c.jpg").write_bytes(encode(dark_scene(40, 50), "JPEG"))
    out = tmp_path / "out"
    done = _sllen(str(src), "-o", str(out), "--url", stack.url)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.jpeg", "b.avif", "c.jpeg"]
    single = tmp_path / "one.png"
    done = _sllen(str(src / "a.heic"), "-o", str(single), "--strength", "0", "--url", stack.url)
    assert done.returncode == 0, done.stderr
    assert single.read_bytes().startswith(b"\x89PNG")
    assert _sllen(str(src / "a.heic"), "-o", str(single), "--strength", "2").returncode == 2
