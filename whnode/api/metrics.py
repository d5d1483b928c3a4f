"""Prometheus metrics of a node, on a registry of whnode's own (never the global one).

Two kinds:

- request metrics kept by the API guards (``HTTP_METRICS``: requests by route, method and
  status; latency by route and answer path; problems by type; unexpected errors);
- component statistics read at scrape time: ``SnapshotCollector`` calls
  ``context.statistics()`` (component name → frozen statistics dataclass) and flattens every
  numeric field into a gauge ``whnode_<component>_<field>``. A ``dict`` field becomes one
  gauge with a label: the part of the field name after ``_by_`` (``answers_by_path`` →
  ``whnode_service_answers{path="hot"}``), else ``key``. Nested dataclasses extend the name;
  text, sequences and other values are skipped. Booleans are 0/1.

The table in docs/api.md is generated from ``describe_metrics()``.
"""

from __future__ import annotations

import bisect
import dataclasses
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

__all__ = [
    "HTTP_METRICS",
    "ApiMetrics",
    "MetricDefinition",
    "SnapshotCollector",
    "describe_metrics",
    "flatten",
]

LOG = logging.getLogger(__name__)

NAMESPACE: Final = "whnode"
LATENCY_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
"""Latency histogram buckets in seconds: hot hits take well under a millisecond, fills seconds."""
MAX_LABEL_VALUE_CHARS: Final = 120
"""Longest label value exported (dict keys read from snapshots are cut to this)."""

_NAME_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """A metric the API layer defines itself (for the docs table)."""

    name: str
    kind: str
    labels: tuple[str, ...]
    help: str


HTTP_METRICS: Final = (
    MetricDefinition(
        "whnode_http_requests_total",
        "counter",
        ("route", "method", "status"),
        "HTTP requests answered, by route template (`unmatched` for unknown paths), method "
        "and status.",
    ),
    MetricDefinition(
        "whnode_http_request_duration_seconds",
        "histogram",
        ("route", "answer_path"),
        "Time to answer, by route and answer path (hot, store, owner, fill, stale; empty "
        "when the route serves no menu).",
    ),
    MetricDefinition(
        "whnode_http_problems_total",
        "counter",
        ("type",),
        "Problem documents sent, by problem type slug.",
    ),
    MetricDefinition(
        "whnode_http_unexpected_errors_total",
        "counter",
        ("route", "exception"),
        "Unexpected exceptions turned into 500 internal-error (each is logged).",
    ),
    MetricDefinition(
        "whnode_node_healthy",
        "gauge",
        (),
        "1 while /healthz answers 200.",
    ),
    MetricDefinition(
        "whnode_node_ready",
        "gauge",
        (),
        "1 while /readyz answers 200.",
    ),
    MetricDefinition(
        "whnode_<component>_<field>",
        "gauge",
        ("(dict key)",),
        "Every numeric field of every component's statistics snapshot, read at scrape "
        "time (module docstring of whnode.api.metrics).",
    ),
)


def _metric_name(*parts: str) -> str:
    return _NAME_UNSAFE.sub("_", "_".join(part for part in parts if part)).lower()


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _label_for(field_name: str) -> tuple[str, str]:
    """(metric name part, label name) for a dict field."""
    head, sep, tail = field_name.partition("_by_")
    if sep and head and tail:
        return head, _metric_name(tail)
    return field_name, "key"


Sample = tuple[str, tuple[tuple[str, str], ...], float]
"""(metric name, labels, value)."""


def flatten(
    prefix: str, value: object, labels: tuple[tuple[str, str], ...] = ()
) -> Iterator[Sample]:
    """Numeric samples of a statistics snapshot (see the module docstring)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            child = getattr(value, field.name)
            if isinstance(child, Mapping):
                name, label = _label_for(field.name)
                for key, item in child.items():
                    key_text = str(key)[:MAX_LABEL_VALUE_CHARS]
                    yield from flatten(
                        _metric_name(prefix, name), item, (*labels, (label, key_text))
                    )
            else:
                yield from flatten(_metric_name(prefix, field.name), child, labels)
        return
    number = _number(value)
    if number is not None:
        yield prefix, labels, number


class SnapshotCollector(Collector):
    """Reads statistics snapshots at scrape time and exports them as gauges."""

    def __init__(self, sources: Callable[[], Mapping[str, object]]) -> None:
        self._sources = sources

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        try:
            snapshots = dict(self._sources())
        except Exception as exc:  # a node not started yet has no snapshots to give
            LOG.debug("statistics unavailable for /metrics: %s", exc)
            return []
        families: dict[str, GaugeMetricFamily] = {}
        label_names: dict[str, tuple[str, ...]] = {}
        for component, snapshot in snapshots.items():
            prefix = _metric_name(NAMESPACE, component)
            for name, labels, number in flatten(prefix, snapshot):
                names = tuple(label for label, _ in labels)
                family = families.get(name)
                if family is None:
                    family = GaugeMetricFamily(
                        name, f"{component} statistics field", labels=list(names)
                    )
                    families[name] = family
                    label_names[name] = names
                elif label_names[name] != names:
                    continue
                family.add_metric([value for _, value in labels], number)
        return list(families.values())


class ApiMetrics:
    """The node's metrics registry and the request metrics the API guards update."""

    def __init__(
        self,
        *,
        snapshots: Callable[[], Mapping[str, object]],
        healthy: Callable[[], bool],
        ready: Callable[[], bool],
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._requests = _RequestCounts()
        self.problems = Counter(
            "whnode_http_problems", HTTP_METRICS[2].help, ["type"], registry=self.registry
        )
        self.unexpected = Counter(
            "whnode_http_unexpected_errors",
            HTTP_METRICS[3].help,
            ["route", "exception"],
            registry=self.registry,
        )
        self.registry.register(self._requests)
        self.registry.register(_HealthCollector(healthy, ready))
        self.registry.register(SnapshotCollector(snapshots))

    def observe(
        self, *, route: str, method: str, status: int, answer_path: str, seconds: float
    ) -> None:
        """Count one answered request and its latency (a few dict operations)."""
        self._requests.observe(route, method, status, answer_path, seconds)

    @property
    def observe_request(self) -> Callable[[str, str, int, str, float], None]:
        """``observe`` with positional arguments (route, method, status, answer path,
        seconds) and no extra call: what the API's guards bind once per route."""
        return self._requests.observe

    def exposition(self) -> bytes:
        """The text exposition format of every metric (sync, cheap)."""
        return generate_latest(self.registry)


def _bound_text(bound: float) -> str:
    """A bucket bound as prometheus_client writes it (``+Inf``, ``0.005``, ``1.0``)."""
    return "+Inf" if bound == math.inf else repr(float(bound))


class _RequestCounts(Collector):
    """Request counts and latency histograms kept as plain numbers, exported when scraped.

    The API guards update them on every request, so they are cheaper than prometheus_client
    children (no lock: they are only touched from the event loop thread; a scrape from
    another thread reads a possibly torn but never corrupt snapshot).
    """

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str, int], int] = {}
        # (route, answer_path) -> [count per bucket (last: above every bound), sum]
        self._latency: dict[tuple[str, str], list[float]] = {}

    def observe(
        self, route: str, method: str, status: int, answer_path: str, seconds: float
    ) -> None:
        key = (route, method, status)
        self._counts[key] = self._counts.get(key, 0) + 1
        series = self._latency.get((route, answer_path))
        if series is None:
            series = self._latency[(route, answer_path)] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        series[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        series[-1] += seconds

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        requests = CounterMetricFamily(
            HTTP_METRICS[0].name.removesuffix("_total"),
            HTTP_METRICS[0].help,
            labels=list(HTTP_METRICS[0].labels),
        )
        for (route, method, status), count in list(self._counts.items()):
            requests.add_metric([route, method, str(status)], count)
        duration = HistogramMetricFamily(
            HTTP_METRICS[1].name, HTTP_METRICS[1].help, labels=list(HTTP_METRICS[1].labels)
        )
        for labels, series in list(self._latency.items()):
            cumulative = 0.0
            buckets: list[tuple[str, float]] = []
            for bound, observed in zip((*LATENCY_BUCKETS, math.inf), series[:-1], strict=True):
                cumulative += observed
                buckets.append((_bound_text(bound), cumulative))
            duration.add_metric(list(labels), buckets, sum_value=series[-1])
        return [requests, duration]


class _HealthCollector(Collector):
    def __init__(self, healthy: Callable[[], bool], ready: Callable[[], bool]) -> None:
        self._healthy = healthy
        self._ready = ready

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        families = []
        for definition, probe in ((HTTP_METRICS[4], self._healthy), (HTTP_METRICS[5], self._ready)):
            try:
                value = 1.0 if probe() else 0.0
            except Exception:  # a probe that fails means "no"
                value = 0.0
            families.append(GaugeMetricFamily(definition.name, definition.help, value=value))
        return families


def describe_metrics() -> list[tuple[str, str, str, str]]:
    """(name, type, labels, help) for each metric the API layer defines."""
    return [
        (definition.name, definition.kind, ", ".join(definition.labels), definition.help)
        for definition in HTTP_METRICS
    ]
