"""The shipped Prometheus alert rules and Grafana dashboard (docker/monitoring/): the rules
pass ``promtool check rules``, and every metric and label either names is one a node exports
(``whnode.api.metrics``: FIGURES and HTTP_METRICS, plus prometheus_client's ``process_*``)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from tests.ops.yamlsubset import parse_yaml_subset
from whnode.api.metrics import FIGURES, HTTP_METRICS

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docker" / "monitoring" / "whnode-alerts.yml"
DASHBOARD = ROOT / "docker" / "monitoring" / "whnode-dashboard.json"
PROCESS = {"process_resident_memory_bytes", "process_cpu_seconds_total", "up"}
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
PROMQL_WORDS = {
    "sum", "rate", "increase", "histogram_quantile", "by", "le", "label_values", "instance",
    "job", "without", "max", "min", "avg",
}  # fmt: skip


def exported() -> dict[str, set[str]]:
    """Metric name -> its labels."""
    names = {figure.name: set(figure.labels) for figure in FIGURES}
    names |= {metric.name: set(metric.labels) for metric in HTTP_METRICS}
    return names


def check_expression(expression: str, metrics: dict[str, set[str]]) -> list[str]:
    """Problems with the metric and label names of one PromQL expression."""
    problems = []
    for name, selector in re.findall(r"\b([a-z_]+)(\{[^}]*\})?", expression):
        if not (name.startswith("whnode_") or name in PROCESS):
            continue
        base = name
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix) and name.removesuffix(suffix) in metrics:
                base = name.removesuffix(suffix)
        if base in PROCESS:
            continue
        if base not in metrics:
            problems.append(f"{name} is not exported")
            continue
        allowed = metrics[base] | {"instance", "job", "le"}
        for label in re.findall(r"([a-z_]+)\s*=~?", selector or ""):
            if label not in allowed:
                problems.append(f"{name} has no label {label}")
    for grouping in re.findall(r"by \(([^)]*)\)", expression):
        for label in (item.strip() for item in grouping.split(",")):
            used = list(re.findall(r"\b(whnode_[a-z_]+)", expression))
            labels = set().union(*(metrics.get(re.sub(r"_(bucket|count|sum)$", "", m), set())
                                   for m in used)) | {"instance", "job", "le"}  # fmt: skip
            if label not in labels:
                problems.append(f"grouping by {label}, which no metric here has")
    return problems


def test_alert_rules_pass_promtool_and_name_exported_metrics() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is needed (Debian: apt-get install prometheus; .ci/run installs it)"
    checked = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout
    document = parse_yaml_subset(RULES.read_text(encoding="utf-8"))
    metrics = exported()
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert len(rules) >= 5
    for rule in rules:
        assert check_expression(str(rule["expr"]), metrics) == [], rule["alert"]


def test_the_dashboard_loads_and_every_panel_names_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "whnode-nodes"
    metrics = exported()
    panels = dashboard["panels"]
    assert len(panels) >= 5
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert check_expression(target["expr"], metrics) == [], panel["title"]
    query = dashboard["templating"]["list"][1]["query"]
    assert check_expression(query, metrics) == []


def test_the_checks_catch_a_wrong_name_or_label() -> None:
    metrics = exported()
    assert check_expression("rate(whnode_no_such_thing_total[5m])", metrics)
    assert check_expression('whnode_node_healthy{route="/x"}', metrics)
    assert check_expression("sum by (colour) (rate(whnode_service_errors_total[5m]))", metrics)
    assert not check_expression("sum by (kind) (rate(whnode_service_errors_total[5m]))", metrics)
