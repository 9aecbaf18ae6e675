"""docker/triton-entrypoint.sh for the CPU model, run here with a stand-in tritonserver."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from sllen.serving import read_model_config
from tests.deploy.conftest import MODEL_REPO

ENTRYPOINT = Path(__file__).resolve().parents[2] / "docker" / "triton-entrypoint.sh"


def run_entrypoint(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "tritonserver"
    fake.write_text('#!/bin/sh\necho "tritonserver $*"\n')
    fake.chmod(0o755)
    return subprocess.run(
        ["bash", str(ENTRYPOINT)],
        env={
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "SLLEN_TRITON_SOURCE": str(MODEL_REPO),
            "SLLEN_TRITON_RUN_DIR": str(tmp_path / "run"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def served_config(tmp_path: Path) -> str:
    return (tmp_path / "run" / "models" / "sllen" / "config.pbtxt").read_text()


def test_ort_threads_follow_the_pods_cpu_limit(tmp_path: Path) -> None:
    done = run_entrypoint(tmp_path, SLLEN_ORT_THREADS="3")
    assert done.returncode == 0, done.stderr
    assert "--model-control-mode=none" in done.stdout.split()
    served = tmp_path / "run" / "models" / "sllen"
    config = read_model_config(served / "config.pbtxt")
    assert config.parameters["intra_op_num_threads"].string_value == "3"
    # Only that parameter changes; the model's files travel with it.
    original = read_model_config(MODEL_REPO / "sllen" / "config.pbtxt")
    original.parameters["intra_op_num_threads"].string_value = "3"
    assert config == original
    models = {p.name for p in (served / "1").iterdir()}
    assert {"model.onnx", "model_enhanced.onnx", "model.py", "ort_options.py"} <= models


def test_without_a_limit_the_config_is_served_as_committed(tmp_path: Path) -> None:
    done = run_entrypoint(tmp_path)
    assert done.returncode == 0, done.stderr
    assert served_config(tmp_path) == (MODEL_REPO / "sllen" / "config.pbtxt").read_text()


def test_a_bad_thread_count_refuses_to_start(tmp_path: Path) -> None:
    done = run_entrypoint(tmp_path, SLLEN_ORT_THREADS="4k")
    assert done.returncode == 2 and "whole number" in done.stderr


def test_model_control_is_off_and_ports_follow_the_bind_address(tmp_path: Path) -> None:
    done = run_entrypoint(tmp_path, SLLEN_TRITON_BIND_ADDRESS="10.1.2.3")
    assert done.returncode == 0, done.stderr
    args = done.stdout.split()
    assert "--model-control-mode=none" in args and not any("--load-model" in a for a in args)
    for port in ("http", "grpc", "metrics"):
        assert f"--{port}-address=10.1.2.3" in args
    # Mode none loads every model in the served repository: it must hold the one model only.
    assert {p.name for p in (tmp_path / "run" / "models").iterdir()} == {"sllen"}


def test_model_control_on_asks_for_explicit_loading_of_the_one_model(tmp_path: Path) -> None:
    done = run_entrypoint(tmp_path, SLLEN_TRITON_MODEL_CONTROL="true")
    assert done.returncode == 0, done.stderr
    args = done.stdout.split()
    assert {"--model-control-mode=explicit", "--load-model=sllen"} <= set(args)
    assert "--http-address=0.0.0.0" in args


def test_a_bad_model_control_value_refuses_to_start(tmp_path: Path) -> None:
    done = run_entrypoint(tmp_path, SLLEN_TRITON_MODEL_CONTROL="maybe")
    assert done.returncode == 2 and "true or false" in done.stderr
