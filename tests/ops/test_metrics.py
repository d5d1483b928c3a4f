"""/metrics of a real node and a real seed: Prometheus names, types and HELP text.

The lint is promtool's (``tests/ops/promlint.py``, checked here against promtool's own
messages); the catalogue test fails when a statistics field is added without a figure.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client import CollectorRegistry, generate_latest

from tests.ops.promlint import lint, parse
from whnode.api.fairness import FairShareStatistics
from whnode.api.ingress import IngressStatistics
from whnode.api.metrics import (
    FIGURES,
    HTTP_METRICS,
    NOT_EXPORTED,
    Figure,
    Kind,
    StatisticsCollector,
    counter,
)
from whnode.api.querystats import QueryStatistics
from whnode.api.ratelimit import RateLimiterStatistics
from whnode.api.render import RenderCacheStatistics
from whnode.config import build_config
from whnode.dht.statistics import DhtStatistics
from whnode.node import Node
from whnode.service.crosscheck import CrossCheckStatistics
from whnode.service.entitlement import EntitlementStatistics
from whnode.service.evidence import EvidenceStatistics
from whnode.service.types import ServiceStatistics
from whnode.store.types import HotCacheStatistics, StoreStatistics
from whnode.upstream.fetcher import FetcherStatistics
from whnode.upstream.http import UpstreamHttpStatistics
from whnode.upstream.pool import ParsePoolStatistics

COMPONENTS: dict[str, type[Any]] = {
    "service": ServiceStatistics,
    "hot_cache": HotCacheStatistics,
    "store": StoreStatistics,
    "dht": DhtStatistics,
    "entitlement": EntitlementStatistics,
    "crosscheck": CrossCheckStatistics,
    "evidence": EvidenceStatistics,
    "upstream": UpstreamHttpStatistics,
    "pool": ParsePoolStatistics,
    "fetcher": FetcherStatistics,
    "api_render_cache": RenderCacheStatistics,
    "api_queries": QueryStatistics,
    "api_rate_limiter": RateLimiterStatistics,
    "api_fair_share": FairShareStatistics,
    "http_ingress": IngressStatistics,
}
"""Component name in Node.statistics() (and the API's own) → its statistics dataclass."""

PROMTOOL_SAMPLE = """\
# HELP foo_total x
# TYPE foo_total gauge
foo_total 1
# HELP bar_count x
# TYPE bar_count counter
bar_count 1
# TYPE baz_ms gauge
baz_ms 1
# HELP q_milliseconds x
# TYPE q_milliseconds gauge
q_milliseconds{le="1"} 1
# HELP fooBar x
# TYPE fooBar gauge
fooBar 1
# HELP a_counter_x x
# TYPE a_counter_x gauge
a_counter_x 1
# HELP b:c x
# TYPE b:c gauge
b:c 1
"""
PROMTOOL_SAYS = [
    "a_counter_x metric name should not include type 'counter'",
    "b:c metric names should not contain ':'",
    'bar_count counter metrics should have "_total" suffix',
    'bar_count non-histogram and non-summary metrics should not have "_count" suffix',
    "baz_ms metric names should not contain abbreviated units",
    "baz_ms no help text",
    "fooBar metric names should be written in 'snake_case' not 'camelCase'",
    'foo_total non-counter metrics should not have "_total" suffix',
    'q_milliseconds non-histogram metrics should not have "le" label',
    'q_milliseconds use base unit "seconds" instead of "milliseconds"',
]
"""What ``promtool check metrics`` (Prometheus 2.42) prints for PROMTOOL_SAMPLE."""


def test_the_lint_reports_what_promtool_reports() -> None:
    assert lint(PROMTOOL_SAMPLE) == PROMTOOL_SAYS


def _leaf_fields(cls: type[Any], prefix: str = "") -> list[str]:
    """Every exportable field path of a statistics dataclass (numbers, dicts, enums,
    sequences of dataclasses as ``seq.field``)."""
    paths: list[str] = []
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        annotation = hints[item.name]
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is tuple and args and dataclasses.is_dataclass(args[0]):
            paths += _leaf_fields(args[0], f"{item.name}.")  # type: ignore[arg-type]
        else:
            is_enum = isinstance(annotation, type) and issubclass(annotation, enum.Enum)
            if is_enum or origin in (dict, Mapping) or annotation in (int, float, bool):
                paths.append(prefix + item.name)
    return paths


def test_every_statistics_field_has_one_figure_and_every_figure_a_field() -> None:
    declared = {(figure.component, figure.field) for figure in FIGURES}
    exportable = {
        (component, path)
        for component, cls in COMPONENTS.items()
        for path in _leaf_fields(cls)
        if (component, path.partition(".")[0]) not in NOT_EXPORTED
    }
    hint = "add one line to whnode.api.metrics.FIGURES, e.g. counter(component, field, help)"
    assert exportable - declared == set(), hint
    assert declared - exportable == set(), "figures reading no statistics field"
    names = [figure.name for figure in FIGURES] + [metric.name for metric in HTTP_METRICS]
    assert len(names) == len(set(names)), "one name per figure"
    for figure in FIGURES:
        assert figure.name.endswith("_total") == (figure.kind is Kind.COUNTER), figure.name
        assert len(figure.help) > 15, figure.name
        assert figure.help.endswith("."), figure.name


def test_one_declaration_exports_labelled_counters_read_at_scrape_time() -> None:
    @dataclasses.dataclass(frozen=True)
    class Parse:
        failures: dict[tuple[str, str], int]

    state = {"failures": {("jane", "schema"): 2}}
    figure = counter("parse", "failures", "Menus that failed to parse.", labels=("vendor", "why"))
    registry = CollectorRegistry()
    registry.register(StatisticsCollector(lambda: {"parse": Parse(state["failures"])}, [figure]))
    text = generate_latest(registry).decode()
    assert "# TYPE whnode_parse_failures_total counter" in text
    assert 'whnode_parse_failures_total{vendor="jane",why="schema"} 2.0' in text
    state["failures"] = {("jane", "schema"): 5}
    assert 'why="schema"} 5.0' in generate_latest(registry).decode()
    assert isinstance(figure, Figure)


async def _scrape(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as response:
        assert response.status == 200
        return await response.text()


async def test_node_and_seed_metrics_pass_the_lint_and_share_names(tmp_path: Path) -> None:
    config = build_config(
        environ={},
        flags={"node.data_dir": str(tmp_path / "node"), "node.port": 0, "pool.workers": 1},
    )
    async with (
        Node(
            build_config(
                environ={},
                flags={
                    "node.data_dir": str(tmp_path / "seed"),
                    "node.port": 0,
                    "node.routing_only": True,
                },
            )
        ) as seed,
        Node(config) as node,
    ):
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{node.http_url}/v1/menus/weedmaps:nowhere") as response,
        ):
            assert response.status >= 400
        node_text = await _scrape(node.http_url)
        seed_text = await _scrape(seed.http_url)
    assert lint(node_text) == []
    assert lint(seed_text) == []
    node_families, seed_families = parse(node_text), parse(seed_text)
    for name in (
        "whnode_service_requests_total",
        "whnode_dht_rpcs_sent_total",
        "whnode_http_requests_total",
        "whnode_http_request_duration_seconds",
        "process_cpu_seconds_total",
    ):
        assert node_families[name].type in ("counter", "histogram"), name
    assert node_families["process_resident_memory_bytes"].type == "gauge"
    assert node_families["whnode_service_requests_total"].help == FIGURES[0].help
    assert not any("statistics field" in (f.help or "") for f in node_families.values())
    # one name per figure: whatever a seed exports under whnode_dht_/whnode_http_/whnode_node_
    # a node exports under the same name and type
    shared = [
        n for n in seed_families if n.startswith(("whnode_dht_", "whnode_http_", "whnode_node_"))
    ]
    assert "whnode_dht_rpcs_received_total" in shared
    for name in shared:
        assert node_families[name].type == seed_families[name].type, name
    assert 'role="seed"' in seed_text
    assert 'role="node"' in node_text
