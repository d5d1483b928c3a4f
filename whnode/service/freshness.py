"""Freshness policy: pure functions of history, configuration and ``now``.

Without a requested ``max_age`` a record's lifetime is heuristic, in the spirit of RFC 9111
section 4.2.2: a fraction of the time since the menu last changed, clamped to configured
bounds. Menus that rarely change are refetched rarely. Stale-while-revalidate and
stale-if-error windows (RFC 5861) extend past the lifetime.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Sequence
from dataclasses import dataclass

from whnode.config import FreshnessConfig

__all__ = ["Freshness", "RecordAge", "classify", "heuristic_lifetime", "refresh_ahead_due"]


def heuristic_lifetime(
    change_times_ms: Sequence[int], now_ms: int, config: FreshnessConfig
) -> float:
    """Lifetime in seconds from the times the menu content changed (oldest first or any order).

    With no history, ``default_ttl``; otherwise ``heuristic_fraction`` of the time since the
    last change. Both clamped to [min_ttl, max_ttl].
    """
    if change_times_ms:
        since_change = max(0.0, (now_ms - max(change_times_ms)) / 1000.0)
        lifetime = config.heuristic_fraction * since_change
    else:
        lifetime = config.default_ttl
    return min(config.max_ttl, max(config.min_ttl, lifetime))


class RecordAge(enum.Enum):
    FRESH = "fresh"
    STALE_WHILE_REVALIDATE = "stale_while_revalidate"
    STALE_IF_ERROR = "stale_if_error"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Freshness:
    """The freshness of one record under one policy."""

    age: RecordAge
    fresh_until_ms: int


def classify(
    fetched_at_ms: int,
    now_ms: int,
    lifetime_seconds: float,
    config: FreshnessConfig,
    *,
    allow_revalidate: bool,
) -> Freshness:
    """Classify a record fetched at ``fetched_at_ms`` with the given lifetime.

    ``allow_revalidate`` is False when the requester gave an explicit ``max_age``: that is a
    hard bound, so stale-while-revalidate does not apply (stale-if-error still does).
    """
    fresh_until = fetched_at_ms + int(lifetime_seconds * 1000)
    if now_ms <= fresh_until:
        return Freshness(RecordAge.FRESH, fresh_until)
    past = (now_ms - fresh_until) / 1000.0
    if allow_revalidate and past <= config.stale_while_revalidate:
        return Freshness(RecordAge.STALE_WHILE_REVALIDATE, fresh_until)
    if past <= config.stale_if_error:
        return Freshness(RecordAge.STALE_IF_ERROR, fresh_until)
    return Freshness(RecordAge.EXPIRED, fresh_until)


def refresh_ahead_due(
    fetched_at_ms: int,
    now_ms: int,
    lifetime_seconds: float,
    requests_in_lifetime: int,
    config: FreshnessConfig,
    rng: random.Random,
) -> bool:
    """Whether a popular, still fresh record should be refreshed in the background now.

    The threshold is jittered by +-10% of the lifetime so that popular menus filled together
    are not refreshed together.
    """
    if requests_in_lifetime < config.refresh_ahead_requests:
        return False
    jitter = rng.uniform(-0.1, 0.1)
    threshold = (config.refresh_ahead_fraction + jitter) * lifetime_seconds * 1000
    return now_ms - fetched_at_ms >= threshold
