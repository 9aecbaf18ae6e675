"""Container images and the single-host compose file (static checks; hadolint runs in CI)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from sllen.serving import read_model_config
from tests.deploy.manifests import ROOT

DOCKER = ROOT / "docker"


def instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    return [
        (ln.split(None, 1)[0].upper(), ln.split(None, 1)[1] if " " in ln else "") for ln in lines
    ]


def test_service_image_is_multistage_nonroot_pinned_with_healthcheck() -> None:
    ins = instructions(DOCKER / "service.Dockerfile")
    froms = [arg for op, arg in ins if op == "FROM"]
    assert len(froms) >= 2, "multi-stage"
    args = dict(arg.split("=", 1) for op, arg in ins if op == "ARG" and "=" in arg)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", args["PYTHON_IMAGE"])
    users = [arg for op, arg in ins if op == "USER"]
    assert users and not users[-1].startswith(("0", "root"))
    assert any(op == "HEALTHCHECK" for op, _ in ins)
    run = " ".join(arg for op, arg in ins if op == "RUN")
    assert "torch" not in run and "onnxruntime" not in run and "[local]" not in run


def test_service_constraints_pin_every_base_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (DOCKER / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    for dep in project["dependencies"]:
        req = Requirement(dep)
        name = canonicalize_name(req.name)
        assert name in pins, f"{req.name} is not pinned in docker/constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), (dep, pins[name])
    assert not {"torch", "onnxruntime", "nvidia-pytriton"} & set(pins)


def test_triton_image_from_ngc_with_trtexec_and_nonroot() -> None:
    ins = instructions(DOCKER / "triton.Dockerfile")
    args = dict(arg.split("=", 1) for op, arg in ins if op == "ARG" and "=" in arg)
    assert re.fullmatch(r"nvcr\.io/nvidia/tritonserver:\d\d\.\d\d-py3", args["TRITON_IMAGE"])
    assert [arg for op, arg in ins if op == "USER"][-1].startswith("1000")
    assert any(op == "HEALTHCHECK" for op, _ in ins)
    text = (DOCKER / "triton.Dockerfile").read_text()
    assert "trtexec" in text and "build_engine.sh" in text and "onnxruntime==" in text
    ignore = (DOCKER / "triton.Dockerfile.dockerignore").read_text()
    assert "model.plan" not in ignore.replace("#", "")  # engines never enter the image


def test_triton_image_carries_every_file_the_cpu_model_loads() -> None:
    served = ROOT / "model_repository" / "sllen"
    params = read_model_config(served / "config.pbtxt").parameters
    onnx = {params[k].string_value for k in ("onnx_file", "onnx_file_enhanced_only")}
    needed = {f"1/{p.name}" for p in (served / "1").glob("*.py")} | {f"1/{f}" for f in onnx}
    text = (DOCKER / "triton.Dockerfile").read_text()
    ignore = (DOCKER / "triton.Dockerfile.dockerignore").read_text().splitlines()
    for name in sorted(needed):
        assert f"model_repository/sllen/{name}" in text, name
        assert f"!model_repository/sllen/{name}" in ignore, name


def test_compose_stack() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    services = compose["services"]
    assert {"gateway", "worker", "redis", "triton", "prometheus"} <= set(services)
    triton = services["triton"]
    [device] = triton["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    assert "/v2/health/ready" in " ".join(triton["healthcheck"]["test"])
    assert "start_period" in triton["healthcheck"]
    for name in ("gateway", "worker"):
        env = services[name]["environment"]
        assert env["SLLEN_REDIS_URL"].startswith("redis://redis:")
        assert env["SLLEN_TRITON_GRPC_URL"] == "triton:8001"
        assert services[name]["read_only"] is True and services[name]["cap_drop"] == ["ALL"]
    assert services["worker"]["environment"]["HEALTHCHECK_URL"].endswith(":9100/metrics")
    assert "--requirepass" in " ".join(services["redis"]["command"])
