"""Values the service hands to the API layer."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from whnode.record.signed import SignedRecord

__all__ = ["AnswerPath", "MenuAnswer", "RecentFill", "ServiceStatistics"]


class AnswerPath(enum.StrEnum):
    """Where an answer came from (a metric label and a response header)."""

    HOT = "hot"
    """This node's in-memory hot cache."""
    STORE = "store"
    """This node's SQLite store."""
    OWNER = "owner"
    """A remote owner that already held a fresh record."""
    FILL = "fill"
    """An upstream fetch made for this request (here or at the owner)."""
    STALE = "stale"
    """A stale record served under stale-while-revalidate or stale-if-error."""


@dataclass(frozen=True, slots=True)
class MenuAnswer:
    """A verified record and how it was obtained."""

    record: SignedRecord
    path: AnswerPath
    fresh_until_ms: int
    """Until when the record counts as fresh under the policy that answered."""
    stale: bool = False


@dataclass(frozen=True, slots=True)
class RecentFill:
    dispensary_id: str
    fetched_at_ms: int
    duration_ms: float
    product_count: int
    changed: bool


@dataclass(frozen=True, slots=True)
class ServiceStatistics:
    """A frozen snapshot of the service's counters."""

    requests: int
    answers_by_path: dict[str, int]
    upstream_calls: int
    """Upstream menu fetches this node made."""
    upstream_calls_saved: int
    """Requests answered without an upstream fetch by this node or its peers."""
    fills_coalesced: int
    """Requests that waited on a fill already running (single-flight)."""
    peer_rejections: dict[str, int]
    """Records refused from peers, by reason."""
    errors_by_kind: dict[str, int]
    recent_fills: tuple[RecentFill, ...]
    duplicate_puts: int = 0
    """Records put by peers that this node already held byte for byte (not re-verified)."""
    hand_offs_skipped: int = 0
    """Re-admitted nodes not handed records again within a republish interval."""
    failovers: dict[str, int] = field(default_factory=dict)
    """Owners skipped for the next one, by cause (unreachable, bad_answer, a refusal kind)."""
    hedges: dict[str, int] = field(default_factory=dict)
    """Hedged fills sent to a second owner, won (answered first) and declined."""
    fills_by_reason: dict[str, int] = field(default_factory=dict)
    """Upstream fetches by what started them (whnode.service.filllog.FillReason)."""
    records_opened: dict[str, int] = field(default_factory=dict)
    """Kept records whose payload was opened in the parse pool (pool) or, small or with the
    pool unavailable, on the event loop's side (inline; whnode.service.opening)."""
    owner_lists: dict[str, int] = field(default_factory=dict)
    """Owner lists made from a lookup waited for (awaited), a remembered one (reused) or the
    routing table alone (from_table), and background lookups (refreshed, refresh_failed)."""
