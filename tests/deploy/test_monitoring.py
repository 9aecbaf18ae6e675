"""Alerts and the dashboard use metrics the service really exports, with labels it really sets."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import load_yaml_docs
from tests.deploy.manifests import K8S, ROOT
from tests.prometheus import binary

RULES = ROOT / "monitoring" / "prometheus" / "rules" / "sllen.rules.yml"
RULE_TESTS = ROOT / "monitoring" / "prometheus" / "tests" / "sllen.rules.test.yml"
PROMETHEUS = ROOT / "monitoring" / "prometheus" / "prometheus.yml"
PROMETHEUS_LOCAL = ROOT / "monitoring" / "prometheus" / "local.yml"
DASHBOARD = ROOT / "monitoring" / "grafana" / "sllen-dashboard.json"
PROMETHEUS_RULE = K8S / "components" / "monitoring" / "prometheusrule.yaml"
MONITORS = K8S / "components" / "monitoring" / "monitors.yaml"
GENERATOR = ROOT / "scripts" / "prometheusrule.py"
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


def test_operator_rules_are_generated_from_the_rule_file() -> None:
    spec = importlib.util.spec_from_file_location("prometheusrule", GENERATOR)
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert PROMETHEUS_RULE.read_text() == generator.render(RULES.read_text()), (
        "k8s PrometheusRule is stale: run python scripts/prometheusrule.py"
    )
    [rule] = load_yaml_docs(PROMETHEUS_RULE)
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]


def _promtool(*args: str) -> str:
    done = subprocess.run(
        [binary("promtool"), *args], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


@pytest.mark.parametrize("config", [PROMETHEUS, PROMETHEUS_LOCAL], ids=lambda p: p.name)
def test_promtool_checks_the_shipped_configs(config: Path) -> None:
    # Each config loads the rule file by a path relative to itself: a check that found no rule
    # file would pass while the server would load none.
    assert "SUCCESS: 1 rule files found" in _promtool("check", "config", str(config))


def test_promtool_checks_every_rule_file() -> None:
    files = sorted((ROOT / "monitoring" / "prometheus" / "rules").glob("*.yml"))
    assert files == [RULES]
    assert "SUCCESS: 13 rules found" in _promtool("check", "rules", *map(str, files))


def test_promtool_unit_tests_cover_every_rule() -> None:
    """`promtool test rules`: each alert fires after its `for:` and stays silent when healthy."""
    _promtool("test", "rules", str(RULE_TESTS))
    groups = yaml.safe_load(RULES.read_text())["groups"]
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    for rule in (r for g in groups for r in g["rules"]):
        if "alert" in rule:
            cases = [c for t in tests for c in t.get("alert_rule_test", [])]
            mine = [c for c in cases if c["alertname"] == rule["alert"]]
            assert any(c["exp_alerts"] for c in mine), f"{rule['alert']} never shown firing"
            assert any(not c["exp_alerts"] for c in mine), f"{rule['alert']} never shown silent"
        else:
            exprs = [c["expr"] for t in tests for c in t.get("promql_expr_test", [])]
            assert rule["record"] in exprs, f"{rule['record']} has no test"


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
