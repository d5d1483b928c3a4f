"""Prometheus metrics of a node and of a seed, on a registry of their own (never the global one).

Every figure has one name, one type and one HELP text, declared once in :data:`FIGURES` (a
component statistic) or :data:`HTTP_METRICS` (a request metric the API layer keeps):

- component statistics are read at scrape time: the node's ``statistics()`` maps a component
  name to a frozen statistics dataclass, and each :class:`Figure` names the field it exports.
  A counter's name ends in ``_total``; a gauge's never does. A ``dict`` field exports one
  sample per key, the key as the label value (a tuple key, or a dict of dicts, fills several
  labels); ``"hosts.requests"`` with ``each="host"`` exports one sample per item of the
  sequence ``hosts``, labelled with the item's ``host``; an enum field exports 1 labelled with
  its value (a state set). Booleans are 0/1.
- request metrics (requests by route, method and status; latency histograms by route and
  answer path; problem documents by type; unexpected errors) are kept by the API guards.
- ``process_*`` (CPU seconds, resident memory, open file descriptors, start time) and
  ``python_info`` come from prometheus_client's own collectors.

**Adding a figure** is one line in :data:`FIGURES`: the component, the statistics field, its
kind and its HELP text, e.g.::

    counter("upstream", "parse_failures_by_vendor", "Menus that failed to parse, by vendor.",
            labels=("vendor",)),

``tests/ops/test_metrics.py`` fails on a numeric statistics field that no figure exports, and
lints every exported name as ``promtool check metrics`` does. docs/api.md lists them all.
A node and a seed export the same figure under the same name (a seed exports the ``dht``
component, the HTTP request counters and health).
"""

from __future__ import annotations

import bisect
import enum
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from whnode.version import VERSION

__all__ = [
    "FIGURES",
    "HTTP_METRICS",
    "NOT_EXPORTED",
    "ApiMetrics",
    "Figure",
    "Kind",
    "MetricDefinition",
    "StatisticsCollector",
    "counter",
    "describe_metrics",
    "gauge",
    "new_registry",
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


class Kind(enum.StrEnum):
    COUNTER = "counter"
    """Only goes up (since the process started); the name ends in ``_total``."""
    GAUGE = "gauge"
    """Goes up and down."""
    HISTOGRAM = "histogram"


@dataclass(frozen=True, slots=True)
class Figure:
    """One exported statistic: where it is read and how it is named and explained."""

    component: str
    """Key of the snapshot in ``statistics()`` (``service``, ``dht``, ...)."""
    field: str
    """Field of the snapshot; ``"seq.field"`` reads a field of each item of a sequence."""
    kind: Kind
    help: str
    name: str
    """The exported name (counters end in ``_total``)."""
    labels: tuple[str, ...] = ()
    """Label names, filled from dict keys, ``each`` and enum values, in that order."""
    each: str | None = None
    """For ``"seq.field"``: the item field whose value is the first label."""


def _default_name(component: str, field: str, kind: Kind) -> str:
    head, _, tail = field.rpartition(".")
    stem = tail.partition("_by_")[0] or tail
    parts = [NAMESPACE, component, head.removesuffix("s") if head else "", stem]
    name = "_".join(part for part in parts if part)
    return name + "_total" if kind is Kind.COUNTER else name


def counter(
    component: str,
    field: str,
    help: str,
    *,
    labels: Sequence[str] = (),
    name: str | None = None,
    each: str | None = None,
) -> Figure:
    """A monotonic figure; named ``whnode_<component>_<field>_total`` unless ``name`` says
    otherwise (a ``_by_...`` suffix of the field is left out of the name)."""
    return Figure(
        component,
        field,
        Kind.COUNTER,
        help,
        name or _default_name(component, field, Kind.COUNTER),
        tuple(labels),
        each,
    )


def gauge(
    component: str,
    field: str,
    help: str,
    *,
    labels: Sequence[str] = (),
    name: str | None = None,
    each: str | None = None,
) -> Figure:
    """A figure that goes up and down; named ``whnode_<component>_<field>``."""
    return Figure(
        component,
        field,
        Kind.GAUGE,
        help,
        name or _default_name(component, field, Kind.GAUGE),
        tuple(labels),
        each,
    )


# ---------------------------------------------------------------------------------------------
# The catalogue: one line per figure.

FIGURES: Final[tuple[Figure, ...]] = (
    # service (whnode.service.types.ServiceStatistics)
    counter("service", "requests", "Menu requests the service answered or refused."),
    counter(
        "service",
        "answers_by_path",
        "Menu answers by path: hot (memory), store (SQLite), owner (an owner node), fill (an "
        "upstream fetch), stale.",
        labels=("path",),
    ),
    counter("service", "upstream_calls", "Upstream menu fetches this node made."),
    counter(
        "service",
        "upstream_calls_saved",
        "Requests answered without an upstream fetch by this node or its peers.",
    ),
    counter(
        "service",
        "fills_coalesced",
        "Requests that waited on a fill already running (single-flight).",
    ),
    counter(
        "service",
        "peer_rejections",
        "Records refused from peers, by reason.",
        labels=("reason",),
    ),
    counter(
        "service",
        "errors_by_kind",
        "Menu requests that ended in an error, by kind.",
        labels=("kind",),
    ),
    counter(
        "service",
        "duplicate_puts",
        "Records put by peers that this node already held byte for byte (not re-verified).",
    ),
    counter(
        "service",
        "hand_offs_skipped",
        "Re-admitted nodes not handed records again within a republish interval.",
    ),
    counter(
        "service",
        "failovers",
        "Owners skipped for the next one, by cause (unreachable, bad_answer, a refusal kind).",
        labels=("cause",),
    ),
    counter(
        "service",
        "hedges",
        "Hedged fills to a second owner: sent, won (answered first), declined; requests sent "
        "again to the same owner: resent (a fill), replica_resent (a replica-round hedge).",
        labels=("outcome",),
    ),
    counter(
        "service",
        "fills_by_reason",
        "Upstream menu fetches by what started them: miss, failover, too_old_join, refresh.",
        labels=("reason",),
    ),
    counter(
        "service",
        "records_opened",
        "Kept records opened in the parse pool (pool) or, small or with the pool "
        "unavailable, in the node's process (inline).",
        labels=("where",),
    ),
    counter(
        "service",
        "owner_lists",
        "Owner lists by how they were made: awaited (a lookup waited for), reused (a "
        "remembered lookup answer), from_table (the routing table holds the key's "
        "neighbourhood), refreshed and refresh_failed (background lookups).",
        labels=("kind",),
    ),
    # hot cache (whnode.store.types.HotCacheStatistics)
    counter("hot_cache", "hits", "Hot-cache lookups answered from memory."),
    counter("hot_cache", "misses", "Hot-cache lookups that found nothing usable."),
    counter(
        "hot_cache",
        "evictions",
        "Records removed from the hot cache to keep within its byte budget.",
    ),
    gauge("hot_cache", "bytes", "Bytes of the records held in the hot cache."),
    gauge("hot_cache", "entries", "Records held in the hot cache."),
    gauge("hot_cache", "dispensaries", "Dispensaries with at least one record in the hot cache."),
    gauge("hot_cache", "max_bytes", "Byte budget of the hot cache (cache.hot_cache_bytes)."),
    # durable store (whnode.store.types.StoreStatistics)
    gauge("store", "bytes", "Bytes of the snapshots in the SQLite store."),
    gauge("store", "records", "Snapshots in the SQLite store."),
    gauge("store", "dispensaries", "Dispensaries with at least one snapshot in the store."),
    gauge("store", "max_bytes", "Byte quota of the store (cache.store_max_bytes)."),
    gauge(
        "store",
        "history_per_dispensary",
        "Snapshots kept per dispensary (cache.history_per_dispensary).",
    ),
    counter("store", "puts", "Snapshots added to the store."),
    counter(
        "store",
        "refused",
        "Puts that added nothing: a duplicate, a record older than the history window, or one "
        "the quota would evict at once.",
    ),
    counter("store", "reads", "Store read operations completed."),
    counter("store", "trimmed", "Snapshots dropped by the per-dispensary history cap."),
    counter("store", "evictions", "Snapshots dropped by the store's byte quota."),
    counter(
        "store",
        "quarantined",
        "Snapshots moved aside: unreadable rows or records refused on the way out.",
    ),
    counter("store", "expired", "Snapshots dropped for being older than cache.expire_after."),
    counter("store", "deleted", "Snapshots dropped by discard and delete."),
    counter("store", "checkpoints", "Background SQLite WAL checkpoints completed."),
    counter(
        "store",
        "errors",
        "Store operations that failed (and failed background checkpoints).",
    ),
    # DHT (whnode.dht.statistics.DhtStatistics; a seed exports these too)
    counter("dht", "datagrams_received", "Datagrams read from the UDP socket (before any check)."),
    counter("dht", "datagrams_sent", "Datagrams handed to the UDP socket (requests and replies)."),
    counter("dht", "rpcs_sent", "DHT requests sent."),
    counter(
        "dht", "rpcs_received", "Well-formed DHT requests from valid identities that were answered."
    ),
    counter(
        "dht",
        "replies_received",
        "Replies matched to an outstanding request from the right address.",
    ),
    counter("dht", "rpc_timeouts", "DHT requests that got no valid reply within node.rpc_timeout."),
    counter("dht", "malformed_datagrams", "Datagrams refused by framing, msgpack or shape checks."),
    counter("dht", "oversize_datagrams", "Datagrams over the size limit, dropped unread."),
    counter("dht", "unknown_rpcs", "Requests naming an RPC this node does not answer."),
    counter(
        "dht",
        "handler_errors",
        "Unexpected exceptions while handling a datagram (bugs; logged rate-limited).",
    ),
    counter(
        "dht",
        "rate_limited_drops",
        "Datagrams dropped by the per-source or the per-IP token bucket.",
    ),
    counter(
        "dht",
        "ip_rate_limited_drops",
        "Of the rate-limited datagrams, those dropped by the per-IP bucket.",
    ),
    counter("dht", "flood_blocks", "Flooding sources blocked in the kernel (BPF socket filter)."),
    counter(
        "dht",
        "amplification_trimmed",
        "find_node replies to an unverified address cut to 3x the bytes it sent.",
    ),
    counter(
        "dht",
        "amplification_dropped",
        "Replies to an unverified address not sent: over 3x the bytes it sent.",
    ),
    counter(
        "dht",
        "verification_pings",
        "Pings sent to unverified requesters so that their next requests get full replies.",
    ),
    counter(
        "dht",
        "rejected_ids",
        "Requests or replies with a malformed node id, an id not derived from the key sent with "
        "it, or a reply from another id than the one asked.",
    ),
    counter("dht", "invalid_replies", "Replies with a malformed body (a miss for the peer)."),
    counter(
        "dht",
        "wrong_source_replies",
        "Replies from another address than the one the request went to (ignored).",
    ),
    counter(
        "dht",
        "unexpected_replies",
        "Replies to no outstanding request (late, duplicated or forged).",
    ),
    counter("dht", "store_refused", "DHT store requests answered False."),
    counter("dht", "send_errors", "Socket errors reported on send (e.g. EMSGSIZE, EACCES)."),
    counter("dht", "evictions", "Contacts removed from the routing table after repeated misses."),
    counter(
        "dht",
        "address_conflicts",
        "Known node ids claimed from a new address (the known address is kept until it fails).",
    ),
    counter(
        "dht",
        "weak_ids",
        "Node ids under the id-puzzle difficulty: senders refused, listed contacts dropped.",
    ),
    counter(
        "dht",
        "ip_cap_refusals",
        "Contacts kept out of the routing table: their IP already has trust.ids_per_ip ids.",
    ),
    counter("dht", "lookups", "Iterative lookups run (owner lookups, self lookups, refreshes)."),
    counter("dht", "lookup_rpcs", "find_node requests sent by lookups."),
    counter(
        "dht",
        "lookup_deadline_hits",
        "Lookups that ended at node.lookup_deadline rather than by converging.",
    ),
    counter("dht", "owner_cache_hits", "Owner lookups answered from the short-lived cache."),
    counter("dht", "owner_lookups", "Owner lookups started (neither cached nor joined)."),
    counter(
        "dht",
        "bootstrap_rounds",
        "Bootstrap rounds (ping seeds and saved peers, then a self lookup).",
    ),
    counter(
        "dht",
        "rebootstraps",
        "Bootstrap rounds started by maintenance because the routing table was empty.",
    ),
    counter(
        "dht",
        "seed_pin_mismatches",
        "Seeds that answered with another node id than the one pinned in the seeds list.",
    ),
    counter("dht", "callback_errors", "Exceptions raised by the new-contact callback."),
    counter(
        "dht",
        "maintenance_errors",
        "Unexpected exceptions in a DHT maintenance round (the task keeps running).",
    ),
    counter("dht", "peers_saved", "Times the persisted peer list was written."),
    gauge("dht", "table_size", "Contacts in the routing table (replacement caches excluded)."),
    gauge("dht", "outstanding_rpcs", "DHT requests waiting for a reply."),
    gauge("dht", "tracked_sources", "Source addresses in the datagram rate limiter's table."),
    gauge(
        "dht",
        "receive_buffer_bytes",
        "UDP receive buffer (SO_RCVBUF) as granted by the kernel; 0 when not listening.",
    ),
    # upstream HTTP client (whnode.upstream.http.UpstreamHttpStatistics)
    counter("upstream", "requests", "HTTP requests sent upstream (retries included)."),
    counter("upstream", "retries", "Upstream requests sent again after a retryable answer."),
    counter("upstream", "ok", "Upstream calls answered with a usable response."),
    counter(
        "upstream",
        "refused",
        "Upstream calls refused (401, 403, 406, or an HTML page instead of JSON); not retried.",
    ),
    counter(
        "upstream",
        "rate_limited",
        "Upstream 429 answers, plus calls given up because the pace or Retry-After passed the "
        "deadline.",
    ),
    counter("upstream", "timeouts", "Upstream calls that timed out after their retries."),
    counter(
        "upstream",
        "bad_responses",
        "Upstream calls that ended in an unusable answer (server errors, broken or oversize "
        "bodies) after their retries.",
    ),
    counter("upstream", "unavailable", "Upstream connection failures (refused, reset, DNS)."),
    counter(
        "upstream",
        "circuit_open",
        "Upstream calls refused by an open circuit breaker: nothing was sent.",
    ),
    counter(
        "upstream",
        "bytes_received",
        "Bytes of upstream response bodies received.",
        name="whnode_upstream_received_bytes_total",
    ),
    gauge(
        "upstream",
        "hosts.breaker",
        "Circuit breaker state of one upstream host: 1 for its current state.",
        labels=("host", "state"),
        each="host",
    ),
    gauge(
        "upstream",
        "hosts.consecutive_failures",
        "Consecutive failed requests to one upstream host.",
        labels=("host",),
        each="host",
    ),
    counter(
        "upstream",
        "hosts.breaker_opened",
        "Times the circuit breaker of one upstream host has opened.",
        labels=("host",),
        each="host",
        name="whnode_upstream_host_breaker_openings_total",
    ),
    counter(
        "upstream",
        "hosts.requests",
        "HTTP requests sent to one upstream host.",
        labels=("host",),
        each="host",
    ),
    gauge(
        "upstream",
        "hosts.in_flight",
        "Requests in flight to one upstream host.",
        labels=("host",),
        each="host",
    ),
    gauge(
        "upstream",
        "hosts.peak_in_flight",
        "Most requests in flight at once to one upstream host.",
        labels=("host",),
        each="host",
    ),
    # parse pool (whnode.upstream.pool.ParsePoolStatistics)
    gauge("pool", "workers", "Parse worker processes (pool.workers, 0 = one per core)."),
    gauge("pool", "queue_depth", "Parse jobs admitted at once (pool.queue_depth)."),
    gauge("pool", "in_flight", "Parse jobs admitted and not finished."),
    gauge("pool", "waiting", "Callers waiting for admission to the parse pool (back-pressure)."),
    counter("pool", "completed", "Parse jobs that finished."),
    counter("pool", "failed", "Parse jobs that raised (parse errors included)."),
    counter("pool", "rebuilds", "Parse executors replaced because a worker died."),
    counter("pool", "rotations", "Parse executors replaced to recycle workers."),
    counter("pool", "isolated_retries", "Suspect parse jobs run again alone after a worker death."),
    counter("pool", "worker_killers", "Parse jobs refused because they killed a worker twice."),
    # upstream fetches (whnode.upstream.fetcher.FetcherStatistics)
    counter("fetcher", "fetches", "Menus fetched from upstream and parsed."),
    counter("fetcher", "failures", "Upstream menu fetches that failed (parse failures included)."),
    counter("fetcher", "pages", "Upstream pages fetched."),
    counter("fetcher", "products", "Products in the menus fetched from upstream."),
    counter(
        "fetcher",
        "items_seen_by_vendor",
        "Items in the upstream pages parsed, by vendor.",
        labels=("vendor",),
    ),
    counter(
        "fetcher",
        "items_dropped_by_vendor",
        "Upstream items the parse left out, by vendor and reason (no_size, no_price, "
        "duplicate, sentinel...; docs/record-format.md).",
        labels=("vendor", "reason"),
    ),
    counter(
        "fetcher",
        "options_dropped_by_vendor",
        "Price options (sizes) the parse left out of upstream items, by vendor and reason.",
        labels=("vendor", "reason"),
    ),
    # Who may publish (whnode.service.entitlement.EntitlementStatistics)
    counter("entitlement", "checks", "Records from peers checked for the right to publish."),
    counter(
        "entitlement",
        "refused_publishers",
        "Records refused: their publisher is not an owner of the dispensary.",
    ),
    counter(
        "entitlement",
        "refused_senders",
        "Records refused: the peer that sent them is neither an owner nor the publisher.",
    ),
    counter(
        "entitlement",
        "weak_ids",
        "Records refused: their publisher's node id is under the id-puzzle difficulty.",
    ),
    gauge("entitlement", "remembered", "Node ids remembered for deciding who may publish."),
    counter(
        "entitlement",
        "refused_blocked",
        "Records refused: evidence of misbehaviour blocks their publisher.",
    ),
    # Owner cross-check and evidence (whnode.service.crosscheck, whnode.service.evidence)
    counter("crosscheck", "checks", "Owner answers cross-checked with the other owners."),
    counter("crosscheck", "rpcs", "RPCs sent by the cross-check (history reads and reports)."),
    counter(
        "crosscheck",
        "outcomes",
        "Cross-check outcomes (agreed, conflicts, verify, refuted, upheld, settled_upheld...).",
        labels=("outcome",),
    ),
    counter(
        "crosscheck",
        "resolutions",
        "Conflicts met as an owner and how they were resolved (fetches, contradicted...).",
        labels=("step",),
    ),
    gauge("evidence", "held", "Pieces of evidence of misbehaviour held."),
    gauge("evidence", "blocked_publishers", "Publishers blocked for every dispensary."),
    gauge("evidence", "blocked_pairs", "Publishers blocked for one dispensary."),
    counter(
        "evidence",
        "learned",
        "Evidence learned, by kind (equivocation, contradiction, untrusted, invalid).",
        labels=("kind",),
    ),
    # API render cache (whnode.api.render.RenderCacheStatistics)
    counter("api_render_cache", "hits", "Menu renderings answered from the render cache."),
    counter("api_render_cache", "misses", "Menu renderings not found in the render cache."),
    counter(
        "api_render_cache",
        "coalesced",
        "Render-cache misses that waited for a rendering of the same key already running.",
    ),
    counter("api_render_cache", "evictions", "Renderings evicted from the render cache."),
    gauge("api_render_cache", "entries", "Renderings held in the render cache."),
    gauge("api_render_cache", "bytes", "Bytes of the renderings held in the render cache."),
    gauge("api_render_cache", "max_bytes", "Byte budget of the render cache."),
    counter(
        "api_render_cache",
        "compressions",
        "Menu bodies compressed (br, zstd or gzip), once per record, representation and coding.",
    ),
    # query endpoints (whnode.api.querystats.QueryStatistics)
    counter(
        "api_queries", "product_queries", "Product queries answered (/v1/menus/{id}/products)."
    ),
    counter("api_queries", "diffs_computed", "Snapshot diffs computed (each pair once)."),
    counter("api_queries", "diff_cpu_seconds", "CPU seconds spent computing snapshot diffs."),
    counter("api_queries", "streams_opened", "Change streams (Server-Sent Events) opened."),
    gauge("api_queries", "streams_open", "Change streams open now."),
    counter("api_queries", "streams_refused", "Change streams refused by the stream limits."),
    counter(
        "api_queries", "streams_dropped_slow", "Change streams ended because the reader lagged."
    ),
    counter("api_queries", "stream_events_sent", "Snapshot events sent on change streams."),
    gauge("api_queries", "watched", "Dispensaries kept fresh ahead of expiry for listeners."),
    counter("api_queries", "searches", "Searches answered (/v1/search)."),
    gauge("api_queries", "search_index_dispensaries", "Dispensaries in the search index."),
    counter("api_queries", "search_index_updates", "Snapshots indexed for search."),
    # API per-client rate limiter (whnode.api.ratelimit.RateLimiterStatistics)
    counter(
        "api_rate_limiter", "admitted", "Public API requests admitted by the per-client limiter."
    ),
    counter(
        "api_rate_limiter",
        "refused",
        "Public API requests refused with 429 by the per-client limiter.",
    ),
    gauge("api_rate_limiter", "clients", "Client addresses tracked by the per-client limiter."),
    # fair shares of a busy node (whnode.api.fairness.FairShareStatistics)
    gauge(
        "api_fair_share",
        "share",
        "Requests/s a public API client may make while the node is contended (+Inf: none).",
    ),
    counter("api_fair_share", "shaped", "Public API requests delayed for their fair turn."),
    counter(
        "api_fair_share", "refused", "Public API requests refused: their turn was over 2 s away."
    ),
    counter("api_fair_share", "contended_periods", "0.2 s periods in which the event loop lagged."),
    gauge("api_fair_share", "active_clients", "Public API clients seen in the last second."),
    # http_ingress (whnode.api.ingress.IngressStatistics)
    counter(
        "http_ingress",
        "malformed_by_kind",
        "HTTP requests refused by the parser or broken off by the client, by kind "
        "(line_too_long, too_many_headers, bad_chunking, bad_method, client_disconnect, ...).",
        labels=("kind",),
    ),
    counter(
        "http_ingress",
        "connections_by_event",
        "HTTP connections closed or refused by the connection guard, by event "
        "(header_timeout, shed_idle, refused_total, refused_per_ip).",
        labels=("event",),
    ),
    gauge("http_ingress", "open_connections", "HTTP connections open now."),
    counter(
        "http_ingress",
        "server_errors",
        "Errors the HTTP server logged that were not the client's (each an ERROR line).",
    ),
)

NOT_EXPORTED: Final[Mapping[tuple[str, str], str]] = {
    ("service", "recent_fills"): "a list of recent events, shown by /v1/node and the status page",
}
"""Statistics fields deliberately left out of /metrics, and why."""


# ---------------------------------------------------------------------------------------------
# Reading figures from statistics snapshots


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _label(value: object) -> str:
    return str(value.value if isinstance(value, enum.Enum) else value)[:MAX_LABEL_VALUE_CHARS]


LabelledValue = tuple[tuple[str, ...], float]


def _values(value: object, labels: tuple[str, ...]) -> Iterator[LabelledValue]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            keys = key if isinstance(key, tuple) else (key,)
            yield from _values(item, (*labels, *(_label(part) for part in keys)))
        return
    if isinstance(value, enum.Enum):
        yield (*labels, _label(value)), 1.0
        return
    number = _number(value)
    if number is not None:
        yield labels, number


def figure_values(figure: Figure, snapshot: object) -> Iterator[LabelledValue]:
    """(label values, value) of ``figure`` in one component's ``snapshot``."""
    head, sep, tail = figure.field.partition(".")
    value = getattr(snapshot, head, None)
    if value is None:
        return
    if not sep:
        found = _values(value, ())
    elif isinstance(value, Sequence) and figure.each is not None:
        found = (
            sample
            for item in value
            for sample in _values(getattr(item, tail, None), (_label(getattr(item, figure.each)),))
        )
    else:
        return
    width = len(figure.labels)
    for labels, number in found:
        if len(labels) == width:
            yield labels, number


class StatisticsCollector(Collector):
    """The figures of :data:`FIGURES` read from statistics snapshots at scrape time.

    ``sources`` returns component name → snapshot; components it does not return (a node
    not started, a seed's missing store) export nothing.
    """

    def __init__(
        self,
        sources: Callable[[], Mapping[str, object]],
        figures: Iterable[Figure] = FIGURES,
    ) -> None:
        self._sources = sources
        self._figures = tuple(figures)

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        try:
            snapshots = dict(self._sources())
        except Exception as exc:  # a node not started yet has no snapshots to give
            LOG.debug("statistics unavailable for /metrics: %s", exc)
            return []
        families: list[Metric] = []
        for figure in self._figures:
            snapshot = snapshots.get(figure.component)
            if snapshot is None:
                continue
            family: CounterMetricFamily | GaugeMetricFamily
            if figure.kind is Kind.COUNTER:
                family = CounterMetricFamily(
                    figure.name.removesuffix("_total"), figure.help, labels=list(figure.labels)
                )
            else:
                family = GaugeMetricFamily(figure.name, figure.help, labels=list(figure.labels))
            for labels, number in figure_values(figure, snapshot):
                family.add_metric(list(labels), number)
            families.append(family)
        return families


# ---------------------------------------------------------------------------------------------
# Request metrics (kept by the API guards) and health


@dataclass(frozen=True, slots=True)
class MetricDefinition:
    """A metric the API layer keeps itself."""

    name: str
    kind: Kind
    labels: tuple[str, ...]
    help: str


HTTP_METRICS: Final = (
    MetricDefinition(
        "whnode_http_requests_total",
        Kind.COUNTER,
        ("route", "method", "status"),
        "HTTP requests answered, by route template (unmatched for unknown paths), method "
        "and status.",
    ),
    MetricDefinition(
        "whnode_http_request_duration_seconds",
        Kind.HISTOGRAM,
        ("route", "answer_path"),
        "Time to answer an HTTP request, by route and answer path (hot, store, owner, fill, "
        "stale; empty when the route serves no menu).",
    ),
    MetricDefinition(
        "whnode_http_problems_total",
        Kind.COUNTER,
        ("type",),
        "Problem documents sent, by problem type slug.",
    ),
    MetricDefinition(
        "whnode_http_unexpected_errors_total",
        Kind.COUNTER,
        ("route", "exception"),
        "Unexpected exceptions turned into 500 internal-error (each is logged).",
    ),
    MetricDefinition(
        "whnode_node_healthy",
        Kind.GAUGE,
        (),
        "1 while /healthz answers 200.",
    ),
    MetricDefinition(
        "whnode_node_ready",
        Kind.GAUGE,
        (),
        "1 while /readyz answers 200.",
    ),
    MetricDefinition(
        "whnode_node_info",
        Kind.GAUGE,
        ("node_id", "version", "role"),
        "Constant 1, labelled with the node id, the whnode version and the role (node or seed).",
    ),
)
_REQUESTS, _DURATION, _PROBLEMS, _UNEXPECTED, _HEALTHY, _READY, _INFO = HTTP_METRICS

PROCESS_METRICS_NOTE: Final = (
    "process_cpu_seconds_total, process_resident_memory_bytes, process_open_fds, "
    "process_max_fds, process_start_time_seconds, process_virtual_memory_bytes, python_info"
)


def new_registry() -> CollectorRegistry:
    """A registry of whnode's own, with the process and platform collectors registered."""
    registry = CollectorRegistry(auto_describe=False)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


class HttpCounters:
    """The request counters of a listener (node or seed): problems and unexpected errors."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.problems = Counter(
            _PROBLEMS.name.removesuffix("_total"),
            _PROBLEMS.help,
            list(_PROBLEMS.labels),
            registry=registry,
        )
        self.unexpected = Counter(
            _UNEXPECTED.name.removesuffix("_total"),
            _UNEXPECTED.help,
            list(_UNEXPECTED.labels),
            registry=registry,
        )


class ApiMetrics:
    """A node's (or a seed's) metrics registry and the request metrics its guards update."""

    def __init__(
        self,
        *,
        snapshots: Callable[[], Mapping[str, object]],
        healthy: Callable[[], bool],
        ready: Callable[[], bool] | None,
        identity: Callable[[], tuple[str, str]] = lambda: ("", "node"),
    ) -> None:
        """``identity`` returns (node id hex, role); ``ready`` None for a seed (no /readyz)."""
        self.registry = new_registry()
        self._requests = _RequestCounts()
        counters = HttpCounters(self.registry)
        self.problems = counters.problems
        self.unexpected = counters.unexpected
        self.registry.register(self._requests)
        self.registry.register(_HealthCollector(healthy, ready, identity))
        self.registry.register(StatisticsCollector(snapshots))

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
            _REQUESTS.name.removesuffix("_total"), _REQUESTS.help, labels=list(_REQUESTS.labels)
        )
        for (route, method, status), count in list(self._counts.items()):
            requests.add_metric([route, method, str(status)], count)
        duration = HistogramMetricFamily(
            _DURATION.name, _DURATION.help, labels=list(_DURATION.labels)
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
    def __init__(
        self,
        healthy: Callable[[], bool],
        ready: Callable[[], bool] | None,
        identity: Callable[[], tuple[str, str]],
    ) -> None:
        self._probes = [(_HEALTHY, healthy)]
        if ready is not None:
            self._probes.append((_READY, ready))
        self._identity = identity

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        families: list[Metric] = []
        for definition, probe in self._probes:
            try:
                value = 1.0 if probe() else 0.0
            except Exception:  # a probe that fails means "no"
                value = 0.0
            families.append(GaugeMetricFamily(definition.name, definition.help, value=value))
        info = GaugeMetricFamily(_INFO.name, _INFO.help, labels=list(_INFO.labels))
        try:
            node_id, role = self._identity()
        except Exception:  # not started yet
            node_id, role = "", "node"
        info.add_metric([node_id, VERSION, role], 1.0)
        families.append(info)
        return families


def describe_metrics() -> list[tuple[str, str, str, str]]:
    """(name, type, labels, help) of every metric a node exports (docs/api.md)."""
    rows = [
        (definition.name, definition.kind.value, ", ".join(definition.labels), definition.help)
        for definition in HTTP_METRICS
    ]
    rows += [
        (figure.name, figure.kind.value, ", ".join(figure.labels), figure.help)
        for figure in FIGURES
    ]
    rows.append(
        (
            "process_*, python_info",
            "mixed",
            "",
            f"The process's own figures from prometheus_client ({PROCESS_METRICS_NOTE}).",
        )
    )
    return rows
