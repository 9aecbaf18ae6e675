"""A real Prometheus scrapes the real stack: the rules, the dashboard and the docs hold up.

Prometheus reads the shipped local config (monitoring/prometheus/local.yml) with a 1 s scrape
and evaluation interval, the targets in the file_sd format `sllen run` writes, and a copy of the
shipped rules in which only SllenWorkersDown waits 3 s instead of 5 min.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.config import PROJECT_ROOT
from service.local.targets import GATEWAY_JOB, TRITON_JOB, WORKER_JOB, write_file_sd
from testkit.images import dark_scene, encode
from testkit.machine import free_port
from testkit.stack import Stack, wait_until
from tests.conftest import TritonPorts
from tests.deploy.conftest import load_yaml_docs
from tests.integration.conftest import StackFactory
from tests.prometheus import MONITORING, Prometheus, binary

SCRAPE_S = 1
# Grafana's $__rate_interval: max($__interval + scrape interval, 4 x scrape interval).
RATE_INTERVAL = f"{4 * SCRAPE_S}s"
RULES = MONITORING / "prometheus" / "rules" / "sllen.rules.yml"
DASHBOARD = MONITORING / "grafana" / "sllen-dashboard.json"
DRIVEN_ALERT = "SllenWorkersDown"
# Series that cannot exist on this stack, and why (checked like the rest where they do exist).
ABSENT_HERE = {
    "kube_deployment_status_replicas_available": "kube-state-metrics, on Kubernetes only",
    "nv_gpu_utilization": "Triton reports GPU metrics only where it sees a GPU",
}
# Labels whose values appear only once that thing happened (a 5xx, a failed job, an error code):
# a selector on them is checked for the label, not for a matching series.
EVENT_LABELS = {"status", "code", "outcome"}
SELECTOR = re.compile(r"\b(sllen:[a-z0-9_:]+|sllen_[a-z0-9_]+|nv_[a-z0-9_]+|kube_[a-z0-9_]+|up)\b")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


@dataclass(frozen=True)
class Use:
    """A metric as an expression uses it: its name, its label matchers, where it is used."""

    name: str
    matchers: tuple[tuple[str, str, str], ...]
    grouping: frozenset[str]
    where: str

    @property
    def selector(self) -> str:
        return self.name + "{" + ",".join(f'{k}{op}"{v}"' for k, op, v in self.matchers) + "}"


def uses_in(expr: str, where: str, prose: bool = False) -> list[Use]:
    """In prose (annotations, docs) ``up`` is a word and ``sllen:jobs`` a Redis key."""
    grouping = frozenset(
        label.strip() for labels in GROUPING.findall(expr) for label in labels.split(",")
    )
    found = []
    for match in SELECTOR.finditer(expr):
        name = match.group(1)
        if prose and (name == "up" or name.startswith("sllen:")):
            continue
        rest = expr[match.end() :]
        selector = re.match(r"\s*\{([^}]*)\}", rest)
        matchers = tuple(MATCHER.findall(selector.group(1))) if selector else ()
        found.append(Use(name, matchers, grouping - {""}, where))
    return found


def rule_uses() -> list[Use]:
    uses = []
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            name = rule.get("alert") or rule["record"]
            uses += uses_in(rule["expr"], f"rule {name}")
            for text in rule.get("annotations", {}).values():
                uses += uses_in(text, f"rule {name} annotations", prose=True)
    return uses


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, query) with the dashboard's variables filled in as Grafana would."""
    dashboard = json.loads(DASHBOARD.read_text())
    variables = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
    assert variables <= {"datasource"}, f"fill in the new dashboard variables: {variables}"
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL)
            assert "$" not in expr, f"{panel['title']}: unfilled variable in {expr}"
            queries.append((panel["title"], expr))
    return queries


def keda_prometheus_queries() -> list[tuple[str, str]]:
    """Queries of KEDA prometheus triggers (today the workers scale on Redis lag instead)."""
    queries = []
    for path in (PROJECT_ROOT / "k8s").rglob("*.yaml"):
        for doc in load_yaml_docs(path):
            if doc.get("kind") == "ScaledObject":
                for trigger in doc["spec"]["triggers"]:
                    if trigger["type"] == "prometheus":
                        queries.append((f"KEDA {path.name}", trigger["metadata"]["query"]))
    return queries


def docs_uses() -> list[Use]:
    """PromQL in the README and docs: backticked spans that call or select something."""
    uses = []
    for path in [PROJECT_ROOT / "README.md", *sorted((PROJECT_ROOT / "docs").glob("*.md"))]:
        for span in re.findall(r"`([^`\n]+)`", path.read_text()):
            if re.search(r"[({\[]", span) and not re.search(r"sllen_\w*/", span):
                uses += uses_in(span, path.name, prose=True)
    return uses


def drive_traffic(s: Stack, successes: int) -> None:
    """Successes, a refused upload (415) and an async job."""
    photo = encode(dark_scene(48, 64), "PNG")
    for _ in range(successes):
        assert s.client.post("/enhance", files={"image": ("p.png", photo)}).status_code == 200
    assert s.client.post("/enhance", files={"image": ("t.txt", b"text")}).status_code == 415
    created = s.client.post("/v1/jobs", files={"image": ("j.png", photo)})
    assert created.status_code == 202, created.text
    status_url = created.json()["status_url"]
    wait_until(lambda: s.client.get(status_url).json()["status"] == "done", 30, "async job")


def prometheus_config(tmp_path: Path, targets: Path) -> dict[str, Any]:
    """The shipped local config, faster, on the test's targets and rules."""
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == DRIVEN_ALERT:
                rule["for"] = "3s"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules, sort_keys=False))
    config = yaml.safe_load((MONITORING / "prometheus" / "local.yml").read_text())
    config["global"] = {
        "scrape_interval": f"{SCRAPE_S}s",
        "scrape_timeout": f"{SCRAPE_S}s",
        "evaluation_interval": f"{SCRAPE_S}s",
    }
    config["rule_files"] = [str(tmp_path / "rules.yml")]
    [job] = config["scrape_configs"]
    [file_sd] = job["file_sd_configs"]
    file_sd["files"] = [str(targets)]
    return config


@dataclass
class Scraped:
    stack: Stack
    prometheus: Prometheus
    targets: dict[str, str]  # metrics URL -> job
    started: float  # when the traffic began (Unix time)


def _scraped_since(prom: Prometheus, count: int, moment: float) -> bool:
    stamps = [float(r["value"][1]) for r in prom.query("timestamp(up)")]
    return len(stamps) == count and min(stamps) > moment


@pytest.fixture
def scraped(
    stack_factory: StackFactory, triton_ports: TritonPorts, tmp_path: Path
) -> Iterator[Scraped]:
    """The stack with two workers, Prometheus on it, and two rounds of traffic behind them."""
    binary("prometheus")
    s = stack_factory(workers=0)
    worker_ports = [free_port(), free_port()]
    for port in worker_ports:
        s.add_worker(metrics_port=port)
    targets = {
        GATEWAY_JOB: [f"127.0.0.1:{s.settings.port}"],
        WORKER_JOB: [f"127.0.0.1:{port}" for port in worker_ports],
        TRITON_JOB: [f"127.0.0.1:{triton_ports.metrics}"],
    }
    write_file_sd(tmp_path / "targets.json", targets)
    prom = Prometheus(prometheus_config(tmp_path, tmp_path / "targets.json"), tmp_path)
    expected = {f"http://{hp}/metrics": job for job, hps in targets.items() for hp in hps}
    try:
        wait_until(lambda: set(active_targets(prom)) == set(expected), 20, "targets found")
        started = time.time()
        # Two rounds, each seen by a scrape of every target: a labelled series is born at its
        # first event, so a rate shows only the events after a first scrape (steady traffic).
        for successes in (1, 3):
            drive_traffic(s, successes)
            scraped = partial(_scraped_since, prom, len(expected), time.time())
            wait_until(scraped, 20, "every target scraped")
        # Range-query steps and rule evaluations (each second) after the last scrape.
        time.sleep(3 * SCRAPE_S)
        yield Scraped(s, prom, expected, started)
    finally:
        prom.stop()


def active_targets(prom: Prometheus) -> dict[str, dict[str, Any]]:
    return {t["scrapeUrl"]: t for t in prom.api("targets", state="active")["activeTargets"]}


def assert_targets_up(run: Scraped) -> None:
    """Every target up, under the job the rules and the dashboard expect."""
    for url, target in active_targets(run.prometheus).items():
        assert target["health"] == "up", f"{url}: {target['lastError']}"
        assert target["labels"]["job"] == run.targets[url]


def assert_rules_evaluate(run: Scraped) -> None:
    for group in run.prometheus.api("rules")["groups"]:
        for rule in group["rules"]:
            assert rule["health"] == "ok", f"{rule['name']}: {rule.get('lastError')}"


def assert_metric_exists(prom: Prometheus, use: Use, since: float) -> None:
    """The metric has series with every label the use names; its selector matches some,
    leaving out matchers on values that only an event creates."""
    series = prom.api("series", **{"match[]": use.name, "start": since})
    assert series, f"{use.where}: no series {use.name}"
    have = {label for one in series for label in one}
    missing = ({k for k, _, _ in use.matchers} | use.grouping) - have
    assert not missing, f"{use.where}: {use.name} has no label {missing}"
    plain = tuple(m for m in use.matchers if m[0] not in EVENT_LABELS)
    selector = Use(use.name, plain, frozenset(), use.where).selector
    assert prom.api("series", **{"match[]": selector, "start": since}), (
        f"{use.where}: nothing matches {selector}"
    )


def assert_panels_show_data(run: Scraped, panels: list[tuple[str, str]]) -> None:
    """Each query over the test's window, as the panel would run it: no error, some value."""
    prom = run.prometheus
    no_gpu = prom.query('count({__name__=~"nv_gpu_.*"})') == []
    end = time.time()
    for title, expr in panels:
        result = prom.api("query_range", query=expr, start=run.started - 5, end=end, step=SCRAPE_S)
        values = [float(v) for series in result["result"] for _, v in series["values"]]
        if no_gpu and "nv_gpu_" in expr:
            assert values == [], f"{title}: {expr} has data without a GPU"
            continue
        assert any(not math.isnan(v) for v in values), f"{title}: no data from {expr}"


def assert_alert_fires(run: Scraped) -> None:
    """With every worker gone, the pager gets SllenWorkersDown in the rule's own words."""
    for worker in run.stack.workers:
        worker.stop()

    def firing() -> list[dict[str, Any]]:
        alerts = run.prometheus.api("alerts")["alerts"]
        return [
            a for a in alerts if a["labels"]["alertname"] == DRIVEN_ALERT and a["state"] == "firing"
        ]

    wait_until(lambda: bool(firing()), 20, f"{DRIVEN_ALERT} firing")
    [alert] = firing()
    [rule] = [
        r
        for g in yaml.safe_load(RULES.read_text())["groups"]
        for r in g["rules"]
        if r.get("alert") == DRIVEN_ALERT
    ]
    assert alert["labels"] == {"alertname": DRIVEN_ALERT, **rule["labels"]}
    assert alert["annotations"] == rule["annotations"]


def test_prometheus_scrapes_the_stack_and_every_rule_panel_and_doc_holds(
    scraped: Scraped,
) -> None:
    assert_targets_up(scraped)
    assert_rules_evaluate(scraped)

    panels = dashboard_queries()
    uses = rule_uses() + docs_uses()
    uses += [u for title, expr in panels + keda_prometheus_queries() for u in uses_in(expr, title)]
    assert len({u.name for u in uses}) >= 20, "the metric extraction found too little"
    for use in uses:
        if use.name in ABSENT_HERE and not scraped.prometheus.query(f"count({use.name})"):
            continue
        assert_metric_exists(scraped.prometheus, use, scraped.started - 60)

    assert_panels_show_data(scraped, panels)
    # A healthy stack fires nothing, not even pending.
    assert scraped.prometheus.api("alerts")["alerts"] == []
    assert_alert_fires(scraped)
