"""Fixtures for the deployment checks: parsed Triton configs, the ONNX graph, rendered manifests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sllen.serving import read_model_config
from tests.deploy.manifests import K8S, ROOT, VARIANTS, find_kubectl, render

MODEL_REPO = ROOT / "model_repository"
ONNX_PATH = MODEL_REPO / "sllen" / "1" / "model.onnx"


def load_yaml_docs(path: Path) -> list[dict[str, Any]]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d]


@pytest.fixture(scope="session")
def sllen_config() -> Any:
    return read_model_config(MODEL_REPO / "sllen" / "config.pbtxt")


@pytest.fixture(scope="session")
def trt_config() -> Any:
    return read_model_config(MODEL_REPO / "sllen_trt" / "config.pbtxt")


@pytest.fixture(scope="session")
def kubectl() -> str:
    found = find_kubectl()
    if found is None:
        pytest.skip("kubectl not found (set KUBECTL, or run .ci/lint-deploy once)")
    return found


@pytest.fixture(scope="session")
def rendered(kubectl: str) -> dict[str, list[dict[str, Any]]]:
    return {variant: render(variant, kubectl) for variant in VARIANTS}


@pytest.fixture(scope="session")
def base_docs() -> list[dict[str, Any]]:
    """The base manifests as written (no kubectl needed)."""
    docs = []
    for path in sorted((K8S / "base").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            docs += load_yaml_docs(path)
    return docs
