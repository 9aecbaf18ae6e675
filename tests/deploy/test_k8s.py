"""The Kubernetes manifests: they render, validate strictly, and meet the deployment rules."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from service.config import Settings
from service.queue.keys import GROUP, Keys
from tests.deploy.manifests import is_crd_object, validate_core, validate_crds

Docs = list[dict[str, Any]]
WORKLOADS = {"Deployment", "StatefulSet"}
NGINX_SIZE = re.compile(r"^(\d+)([kKmMgG]?)$")


def of_kind(docs: Docs, kind: str) -> Docs:
    return [d for d in docs if d["kind"] == kind]


def one(docs: Docs, kind: str, name: str) -> dict[str, Any]:
    [found] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def test_variants_render_with_every_component(rendered: dict[str, Docs]) -> None:
    for variant, docs in rendered.items():
        names = {(d["kind"], d["metadata"]["name"]) for d in docs}
        for expected in [
            ("Deployment", "sllen-gateway"),
            ("Deployment", "sllen-worker"),
            ("Deployment", "sllen-triton"),
            ("StatefulSet", "sllen-redis"),
            ("Ingress", "sllen"),
            ("HorizontalPodAutoscaler", "sllen-gateway"),
            ("ScaledObject", "sllen-worker"),
            ("PrometheusRule", "sllen"),
        ]:
            assert expected in names, (variant, expected)
        assert all(
            d["metadata"].get("namespace") == "sllen" for d in docs if d["kind"] != "Namespace"
        )


def test_core_objects_validate_strictly(rendered: dict[str, Docs]) -> None:
    pytest.importorskip("kubernetes_validate")
    for variant, docs in rendered.items():
        assert validate_core(docs) == [], variant


def test_strict_validation_catches_a_misspelt_field(rendered: dict[str, Docs]) -> None:
    pytest.importorskip("kubernetes_validate")
    bad = copy.deepcopy(one(rendered["cpu"], "Deployment", "sllen-gateway"))
    bad["spec"]["template"]["spec"]["containers"][0]["resource"] = {}
    assert validate_core([bad], versions=["1.32.0"])


def test_crd_objects_match_their_schemas(rendered: dict[str, Docs]) -> None:
    pytest.importorskip("jsonschema")
    for variant, docs in rendered.items():
        assert any(is_crd_object(d) for d in docs)
        assert validate_crds(docs) == [], variant
    bad = copy.deepcopy(one(rendered["cpu"], "ScaledObject", "sllen-worker"))
    bad["spec"]["triggers"][0]["metadata"]["lagCount"] = 8  # KEDA metadata values are strings
    assert validate_crds([bad])


def pod_specs(docs: Docs) -> list[tuple[str, dict[str, Any]]]:
    return [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for d in docs
        if d["kind"] in WORKLOADS
    ]


def test_workloads_are_locked_down(base_docs: Docs) -> None:
    specs = pod_specs(base_docs)
    assert len(specs) == 4
    for name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["capabilities"] == {"drop": ["ALL"]}, (name, c["name"])
            assert "privileged" not in sc


def test_workloads_have_resources_and_probes(base_docs: Docs) -> None:
    for name, spec in pod_specs(base_docs):
        for c in spec["containers"]:
            res = c["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]) and "memory" in res["limits"], name
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in c, (name, probe)


def test_triton_pod(rendered: dict[str, Docs]) -> None:
    for variant, docs in rendered.items():
        deploy = one(docs, "Deployment", "sllen-triton")
        spec = deploy["spec"]["template"]["spec"]
        [c] = spec["containers"]
        shm = next(v for v in spec["volumes"] if v["name"] == "dshm")["emptyDir"]
        assert shm["medium"] == "Memory"
        assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]
        assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
        assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
        threads = next(e for e in c["env"] if e["name"] == "SLLEN_ORT_THREADS")
        assert threads["valueFrom"]["resourceFieldRef"]["resource"] == "limits.cpu"
        startup_s = c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"]
        gpus = c["resources"]["limits"].get("nvidia.com/gpu")
        config = one(docs, "ConfigMap", "sllen-config")["data"]
        # The entrypoint reads the same settings as the service: no model control in a cluster.
        env = {e["name"]: e.get("valueFrom", {}).get("configMapKeyRef", {}) for e in c["env"]}
        for name in ("SLLEN_TRITON_BIND_ADDRESS", "SLLEN_TRITON_MODEL_CONTROL"):
            assert env[name] == {"name": "sllen-config", "key": name}
        assert config["SLLEN_TRITON_MODEL_CONTROL"] == "false"
        if variant == "gpu":
            assert gpus == "1" and c["resources"]["requests"]["nvidia.com/gpu"] == "1"
            assert config["SLLEN_TRITON_MODEL"] == "sllen_trt"
            assert startup_s >= 1800, "an engine build for the 4096 px profile takes minutes"
        else:
            assert gpus is None and config["SLLEN_TRITON_MODEL"] == "sllen"
            assert startup_s >= 300


def test_only_the_model_name_differs_between_variants(rendered: dict[str, Docs]) -> None:
    cpu, gpu = rendered["cpu"], rendered["gpu"]
    for kind, name in [("Deployment", "sllen-worker"), ("Deployment", "sllen-gateway")]:
        assert one(cpu, kind, name) == one(gpu, kind, name)
    cpu_cfg = dict(one(cpu, "ConfigMap", "sllen-config")["data"])
    gpu_cfg = dict(one(gpu, "ConfigMap", "sllen-config")["data"])
    assert {k for k in cpu_cfg if cpu_cfg[k] != gpu_cfg[k]} == {"SLLEN_TRITON_MODEL"}


def test_configmap_is_a_valid_settings_object(base_docs: Docs) -> None:
    data = one(base_docs, "ConfigMap", "sllen-config")["data"]
    fields = {f"SLLEN_{name.upper()}" for name in Settings.model_fields}
    assert set(data) <= fields, f"unknown settings: {set(data) - fields}"
    kwargs = {k.removeprefix("SLLEN_").lower(): v for k, v in data.items()}
    settings = Settings(**kwargs, redis_password="a-real-secret-from-the-cluster")
    assert settings.host == "0.0.0.0" and settings.worker_metrics_port == 9100


def nginx_bytes(value: str) -> int:
    m = NGINX_SIZE.match(value)
    assert m, value
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]


def test_ingress_body_limit_fits_uploads(base_docs: Docs) -> None:
    data = one(base_docs, "ConfigMap", "sllen-config")["data"]
    max_upload = int(
        data.get("SLLEN_MAX_UPLOAD_BYTES", Settings.model_fields["max_upload_bytes"].default)
    )
    ingress = one(base_docs, "Ingress", "sllen")
    limit = nginx_bytes(
        ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    )
    # The multipart envelope (boundaries, part headers, form fields) rides on top of the file.
    assert limit >= max_upload + 64 * 1024
    [rule] = ingress["spec"]["rules"]
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == "sllen-gateway"


def allowed_sources(policy: dict[str, Any]) -> list[dict[str, Any]]:
    return [src for rule in policy["spec"].get("ingress", []) for src in rule.get("from", [])]


def component(selector: dict[str, Any]) -> str | None:
    return selector.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")


def test_network_policies(base_docs: Docs) -> None:
    policies = {p["metadata"]["name"]: p for p in of_kind(base_docs, "NetworkPolicy")}
    deny = policies["default-deny-ingress"]["spec"]
    assert (
        deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    )
    for name, clients in [
        ("sllen-redis", {"gateway", "worker"}),
        ("sllen-triton", {"gateway", "worker"}),
    ]:
        policy = policies[name]
        target = policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"]
        assert target == name.removeprefix("sllen-")
        sources = allowed_sources(policy)
        assert all(src for src in sources), f"{name}: an empty peer admits everyone"
        assert {component(s) for s in sources if "podSelector" in s} == clients
        # Other namespaces only by name (KEDA, Prometheus), never the whole cluster or outside.
        assert all("ipBlock" not in s for s in sources)
        for s in sources:
            if "namespaceSelector" in s:
                assert s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] in {
                    "keda",
                    "monitoring",
                }
    # Only the gateway admits the ingress controller's namespace.
    outside = {
        n
        for n, p in policies.items()
        for s in allowed_sources(p)
        if s.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
        == "ingress-nginx"
    }
    assert outside == {"sllen-gateway"}


def test_services_are_cluster_internal(base_docs: Docs) -> None:
    for svc in of_kind(base_docs, "Service"):
        assert svc["spec"].get("type", "ClusterIP") == "ClusterIP", svc["metadata"]["name"]


def test_autoscaling_and_disruption_budgets(base_docs: Docs) -> None:
    hpa = one(base_docs, "HorizontalPodAutoscaler", "sllen-gateway")
    assert (
        hpa["spec"]["scaleTargetRef"]["name"] == "sllen-gateway" and hpa["spec"]["minReplicas"] >= 2
    )
    scaled = one(base_docs, "ScaledObject", "sllen-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "sllen-worker"
    [trigger] = scaled["spec"]["triggers"]
    meta = trigger["metadata"]
    prefix = Settings.model_fields["key_prefix"].default
    assert trigger["type"] == "redis-streams"
    assert meta["stream"] == Keys(prefix).stream and meta["consumerGroup"] == GROUP
    assert meta["address"].startswith("sllen-redis.sllen.svc")
    budgets = {
        p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"]
        for p in of_kind(base_docs, "PodDisruptionBudget")
    }
    assert budgets == {"gateway", "worker", "triton"}


def test_redis_has_a_volume_and_a_password(base_docs: Docs) -> None:
    redis = one(base_docs, "StatefulSet", "sllen-redis")
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    [c] = redis["spec"]["template"]["spec"]["containers"]
    assert "--requirepass" in c["args"] and "$(REDIS_PASSWORD)" in c["args"]
    assert c["args"][c["args"].index("--maxmemory-policy") + 1] == "noeviction"
    for name in ("sllen-gateway", "sllen-worker"):
        [app] = one(base_docs, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        secret = {e["name"]: e.get("valueFrom", {}).get("secretKeyRef") for e in app["env"]}
        assert secret["SLLEN_REDIS_PASSWORD"] == {"name": "sllen-redis", "key": "password"}
