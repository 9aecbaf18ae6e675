"""Render the Kubernetes variants and validate every object, offline.

Core objects are checked with kubernetes-validate --strict against each supported Kubernetes
version. Its schemas do not hold CRDs (KEDA, Prometheus Operator), so those are checked against
k8s/schemas/crds.json: subsets of the real CRD schemas that refuse unknown fields.

    python -m tests.deploy.manifests [--kubectl PATH]     (what .ci/lint-deploy runs)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
VARIANTS = ("cpu", "gpu")
# Supported Kubernetes versions (kubectl 1.32 renders; the cluster may be any of these).
K8S_VERSIONS = ("1.31.0", "1.32.0", "1.33.0", "1.34.0")
CRD_GROUPS = ("keda.sh", "monitoring.coreos.com")
CACHED_KUBECTL = ROOT / ".cache" / "lint-deploy" / "bin" / "kubectl"

Doc = dict[str, Any]


def find_kubectl() -> str | None:
    for candidate in (os.environ.get("KUBECTL"), shutil.which("kubectl"), str(CACHED_KUBECTL)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def render(variant: str, kubectl: str) -> list[Doc]:
    out = subprocess.run(
        [kubectl, "kustomize", str(K8S / "overlays" / variant)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def is_crd_object(doc: Doc) -> bool:
    return str(doc["apiVersion"]).split("/")[0] in CRD_GROUPS


def name_of(doc: Doc) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


def validate_core(docs: Iterable[Doc], versions: Iterable[str] = K8S_VERSIONS) -> list[str]:
    import kubernetes_validate

    errors = []
    for version in versions:
        for doc in docs:
            if is_crd_object(doc):
                continue
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except Exception as exc:  # ValidationError, SchemaNotFoundError, InvalidSchemaError
                errors.append(f"k8s {version} {name_of(doc)}: {type(exc).__name__}: {exc}")
    return errors


def crd_schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = json.loads((K8S / "schemas" / "crds.json").read_text())
    return schemas


def validate_crds(docs: Iterable[Doc]) -> list[str]:
    import jsonschema

    schemas = crd_schemas()
    errors = []
    for doc in docs:
        if not is_crd_object(doc):
            continue
        schema = schemas.get(f"{doc['apiVersion']}/{doc['kind']}")
        if schema is None:
            errors.append(f"{name_of(doc)}: no schema for {doc['apiVersion']} in k8s/schemas")
            continue
        validator = jsonschema.Draft202012Validator(schema)
        errors += [
            f"{name_of(doc)}: {e.json_path}: {e.message}" for e in validator.iter_errors(doc)
        ]
    return errors


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubectl", default=None)
    args = parser.parse_args(argv)
    kubectl = args.kubectl or find_kubectl()
    if kubectl is None:
        print("manifests: no kubectl (set KUBECTL)", file=sys.stderr)
        return 2
    failed = False
    for variant in VARIANTS:
        docs = render(variant, kubectl)
        errors = validate_core(docs) + validate_crds(docs)
        for error in errors:
            print(f"{variant}: {error}", file=sys.stderr)
        n_crd = sum(is_crd_object(d) for d in docs)
        n_core, n_versions = len(docs) - n_crd, len(K8S_VERSIONS)
        print(
            f"manifests: {variant}: {n_core} core objects x {n_versions} versions (strict), "
            f"{n_crd} CRD objects: {'FAILED' if errors else 'ok'}"
        )
        failed |= bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
