"""Why each upstream fetch was made: the record a node keeps of its own fills.

Every upstream fetch a node makes is described by an ``UpstreamFetch``: which dispensary,
the snapshot time, how long it took and what started it (``FillReason``). The service hands
each one to the observers registered with ``MenuService.observe_fills``; the cluster
benchmark collects them network-wide to find duplicate fills (two fetches of one dispensary
whose freshness windows overlap) and to name their cause.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FillObserver", "FillReason", "UpstreamFetch"]


class FillReason(enum.StrEnum):
    """What made an owner call upstream."""

    MISS = "miss"
    """No record fresh enough was held or could be had from the other owners."""
    FAILOVER = "failover"
    """A requester sent the fill here after an owner closer to the key did not answer."""
    TOO_OLD_JOIN = "too_old_join"
    """A request joined a running fill whose record was too old for its ``max_age``."""
    REFRESH = "refresh"
    """A background refresh (stale-while-revalidate, refresh-ahead)."""


@dataclass(frozen=True, slots=True)
class UpstreamFetch:
    """One upstream fetch made by one node."""

    dispensary_id: str
    node_id: bytes
    reason: FillReason
    fetched_at_ms: int
    """The snapshot time (when upstream was asked)."""
    duration_ms: float
    """From the start of the fill (replica round included) to the signed record."""
    upstream_ms: float
    """The upstream fetch and parse alone."""


FillObserver = Callable[[UpstreamFetch], None]
