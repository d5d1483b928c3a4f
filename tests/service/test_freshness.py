"""Freshness policy: heuristic lifetimes, windows and refresh-ahead (pure functions)."""

from __future__ import annotations

import random

from whnode.config import FreshnessConfig
from whnode.service.freshness import RecordAge, classify, heuristic_lifetime, refresh_ahead_due

CONFIG = FreshnessConfig(
    min_ttl=60.0,
    max_ttl=3600.0,
    heuristic_fraction=0.1,
    default_ttl=300.0,
    stale_while_revalidate=30.0,
    stale_if_error=600.0,
    refresh_ahead_requests=5,
    refresh_ahead_fraction=0.8,
)
HOUR_MS = 3_600_000


def test_lifetime_is_a_fraction_of_the_time_since_the_last_change() -> None:
    now = 10 * HOUR_MS
    # last change 5 hours ago -> 0.1 * 5 h = 30 min
    assert heuristic_lifetime([1 * HOUR_MS, 5 * HOUR_MS], now, CONFIG) == 1800.0


def test_lifetime_is_clamped_to_bounds() -> None:
    now = 1000 * HOUR_MS
    assert heuristic_lifetime([0], now, CONFIG) == CONFIG.max_ttl
    assert heuristic_lifetime([now - 1000], now, CONFIG) == CONFIG.min_ttl


def test_lifetime_without_history_is_the_default() -> None:
    assert heuristic_lifetime([], 5 * HOUR_MS, CONFIG) == CONFIG.default_ttl


def test_classify_windows_in_order() -> None:
    fetched = 1_000_000
    lifetime = 100.0
    end = fetched + 100_000

    def age(now: int, revalidate: bool = True) -> RecordAge:
        return classify(fetched, now, lifetime, CONFIG, allow_revalidate=revalidate).age

    assert age(end) is RecordAge.FRESH
    assert age(end + 1) is RecordAge.STALE_WHILE_REVALIDATE
    assert age(end + 30_000) is RecordAge.STALE_WHILE_REVALIDATE
    assert age(end + 30_001) is RecordAge.STALE_IF_ERROR
    assert age(end + 1, revalidate=False) is RecordAge.STALE_IF_ERROR
    assert age(end + 600_000) is RecordAge.STALE_IF_ERROR
    assert age(end + 600_001) is RecordAge.EXPIRED
    assert classify(fetched, end, lifetime, CONFIG, allow_revalidate=True).fresh_until_ms == end


def test_refresh_ahead_only_for_popular_records_late_in_their_life() -> None:
    rng = random.Random(1)
    fetched = 0
    lifetime = 100.0
    assert not refresh_ahead_due(fetched, 95_000, lifetime, 4, CONFIG, rng)
    assert refresh_ahead_due(fetched, 95_000, lifetime, 5, CONFIG, rng)
    assert not refresh_ahead_due(fetched, 60_000, lifetime, 50, CONFIG, rng)


def test_refresh_ahead_threshold_is_jittered() -> None:
    rng = random.Random(7)
    due = [refresh_ahead_due(0, 80_000, 100.0, 10, CONFIG, rng) for _ in range(200)]
    assert 40 < sum(due) < 160  # 0.8 +- 0.1: about half fire at exactly 0.8
