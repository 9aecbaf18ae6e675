"""Alerts and the dashboard use metrics the service really exports, with labels it really sets."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import load_yaml_docs
from tests.deploy.manifests import K8S, ROOT

RULES = ROOT / "monitoring" / "prometheus" / "rules" / "sllen.rules.yml"
PROMETHEUS = ROOT / "monitoring" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "monitoring" / "grafana" / "sllen-dashboard.json"
PROMETHEUS_RULE = K8S / "components" / "monitoring" / "prometheusrule.yaml"
MONITORS = K8S / "components" / "monitoring" / "monitors.yaml"
JOBS = {"sllen-gateway", "sllen-worker", "sllen-triton"}

METRIC_DEF = re.compile(
    r"(Counter|Gauge|Histogram|Summary)\(\s*\"(sllen_\w+)\",\s*\"[^\"]*\"(?:,\s*\[([^\]]*)\])?",
    re.S,
)
METRIC_USE = re.compile(r"\b(sllen_[a-z0-9_]+)(\{[^}]*\})?")
SUFFIXES = {
    "Counter": ("", "_created"),
    "Gauge": ("",),
    "Summary": ("", "_sum", "_count"),
    "Histogram": ("_bucket", "_sum", "_count"),
}
GENERIC_LABELS = {"job", "instance", "namespace", "pod", "container", "service", "endpoint"}


def exported_metrics() -> dict[str, set[str]]:
    """Series names service/metrics.py exposes, each with the labels it may carry."""
    source = (ROOT / "service" / "metrics.py").read_text()
    series: dict[str, set[str]] = {}
    for kind, name, labels in METRIC_DEF.findall(source):
        label_set = set(re.findall(r"\"(\w+)\"", labels or ""))
        for suffix in SUFFIXES[kind]:
            extra = {"le"} if suffix == "_bucket" else set()
            series[name + suffix] = label_set | extra
    assert series, "no metrics parsed from service/metrics.py"
    return series


def rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r["expr"] for g in groups for r in g["rules"]]


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_used_metrics_exist_with_their_labels(source: str) -> None:
    exported = exported_metrics()
    exprs = rule_exprs() if source == "rules" else dashboard_exprs()
    used = 0
    for expr in exprs:
        for name, selector in METRIC_USE.findall(expr):
            assert name in exported, f"{source}: {name} is not exported by service/metrics.py"
            labels = set(re.findall(r"(\w+)\s*[=!]~?", selector))
            unknown = labels - exported[name] - GENERIC_LABELS
            assert not unknown, f"{source}: {name} has no label(s) {unknown}"
            used += 1
    assert used >= 8


def test_operator_rules_equal_the_rule_file() -> None:
    [rule] = load_yaml_docs(PROMETHEUS_RULE)
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def test_rules_cover_the_on_call_basics() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
    for needed in (
        "SllenHighErrorRate",
        "SllenP99LatencyHigh",
        "SllenQueueLagHigh",
        "SllenTritonNotReady",
    ):
        assert needed in alerts
    for name, alert in alerts.items():
        assert alert["labels"]["severity"] in {"critical", "warning"}, name
        assert alert["annotations"]["summary"] and alert["annotations"]["description"], name
        assert re.fullmatch(r"\d+[smh]", alert["for"]), name


def test_job_names_agree_between_compose_and_kubernetes() -> None:
    compose_jobs = {j["job_name"] for j in yaml.safe_load(PROMETHEUS.read_text())["scrape_configs"]}
    k8s_jobs = {
        r["replacement"]
        for m in load_yaml_docs(MONITORS)
        for e in m["spec"].get("endpoints", []) + m["spec"].get("podMetricsEndpoints", [])
        for r in e["relabelings"]
        if r["targetLabel"] == "job"
    }
    assert compose_jobs == k8s_jobs == JOBS
    used: set[str] = set()
    for expr in rule_exprs() + dashboard_exprs():
        used |= set(re.findall(r'job="([^"]+)"', expr))
    assert used <= JOBS


def test_dashboard_is_importable() -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel.get("datasource", {"uid": "${datasource}"})["uid"] == "${datasource}"
    assert Path(DASHBOARD).stat().st_size < 200_000
