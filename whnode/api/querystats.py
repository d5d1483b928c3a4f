"""Counters of the query endpoints (products, changes, change streams, search), one frozen
snapshot for the metrics (``whnode_api_queries_*``) and ``GET /v1/node``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["QueryStatistics", "query_statistics"]


@dataclass(frozen=True, slots=True)
class QueryStatistics:
    product_queries: int
    diffs_computed: int
    diff_cpu_seconds: float
    streams_opened: int
    streams_open: int
    streams_refused: int
    streams_dropped_slow: int
    stream_events_sent: int
    watched: int
    """Dispensaries kept fresh ahead of expiry because a change stream listens."""
    searches: int
    search_index_dispensaries: int
    search_index_updates: int


def query_statistics(api: Any) -> QueryStatistics:
    """The counters of ``api`` (a ``PublicApi``) and of its context's search index."""
    feed = getattr(api.context, "search_feed", None)
    index = None if feed is None else feed.index
    return QueryStatistics(
        product_queries=api.products.queries,
        diffs_computed=api.changes.computed,
        diff_cpu_seconds=api.changes.cpu_seconds,
        streams_opened=api.streams.opened,
        streams_open=api.streams.open_streams(),
        streams_refused=api.streams.refused,
        streams_dropped_slow=api.streams.slow_dropped,
        stream_events_sent=api.streams.events_sent,
        watched=api.streams.watched(),
        searches=api.searches.searches,
        search_index_dispensaries=0 if index is None else len(index),
        search_index_updates=0 if index is None else index.updates,
    )
