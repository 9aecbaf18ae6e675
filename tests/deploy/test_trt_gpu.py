"""On a machine with an NVIDIA GPU and trtexec (the NGC tritonserver image): build the engine
with the real build script and run one inference through it. Skipped elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import MODEL_REPO, ONNX_PATH

pytestmark = pytest.mark.gpu

TRTEXEC = os.environ.get("TRTEXEC") or shutil.which("trtexec") or "/usr/src/tensorrt/bin/trtexec"


def gpu_present() -> bool:
    smi = shutil.which("nvidia-smi")
    return (
        bool(smi) and subprocess.run([smi, "-L"], capture_output=True, timeout=30).returncode == 0
    )


@pytest.mark.timeout(3600)
def test_engine_builds_and_infers(tmp_path: Path) -> None:
    if not (Path(TRTEXEC).is_file() and gpu_present()):
        pytest.skip("needs an NVIDIA GPU and trtexec")
    if not ONNX_PATH.is_file():
        pytest.skip("no exported ONNX")
    plan = tmp_path / "model.plan"
    env = {**os.environ, "TRTEXEC": TRTEXEC, "SLLEN_TRT_CACHE_DIR": str(tmp_path / "cache")}
    subprocess.run(
        ["bash", str(MODEL_REPO / "sllen_trt" / "build_engine.sh"), str(plan)],
        env=env,
        check=True,
        timeout=3500,
    )
    assert plan.stat().st_size > 0
    # One inference per profile, at an odd size inside each: random uint8 input, shapes checked.
    for profile, shape in [(0, "2x37x53x3"), (1, "1x2048x1536x3")]:
        run = subprocess.run(
            [
                TRTEXEC,
                f"--loadEngine={plan}",
                f"--profile={profile}",
                f"--shapes=image:{shape}",
                "--iterations=1",
                "--warmUp=0",
                "--duration=0",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "PASSED" in run.stdout
    # A second build of the same key is a cache hit (no trtexec build).
    again = subprocess.run(
        ["bash", str(MODEL_REPO / "sllen_trt" / "build_engine.sh"), str(tmp_path / "again.plan")],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "cached engine" in again.stderr
