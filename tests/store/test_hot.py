"""The hot cache on its own: byte budget, LRU order, statistics."""

from __future__ import annotations

import pytest

from tests.store.conftest import make_record
from whnode.store import HotCache, StoreUsageError


def test_budget_evicts_least_recently_used_dispensaries_first() -> None:
    cache = HotCache(3_000)
    for name in ("a", "b", "c"):
        assert cache.put(make_record(name, 1, size=1_000))
    assert cache.newest("a") is not None  # a is now the most recently used
    assert cache.put(make_record("d", 1, size=1_000))
    assert cache.dispensaries() == ["c", "a", "d"]
    assert "b" not in cache
    statistics = cache.statistics()
    assert (statistics.bytes, statistics.entries, statistics.evictions) == (3_000, 3, 1)


def test_at_also_counts_as_use() -> None:
    cache = HotCache(2_000)
    cache.put(make_record("a", 1, size=1_000))
    cache.put(make_record("b", 1, size=1_000))
    assert cache.at("a", 5) is not None
    cache.put(make_record("c", 1, size=1_000))
    assert cache.dispensaries() == ["a", "c"]


def test_a_dispensary_alone_over_budget_loses_its_oldest_records() -> None:
    cache = HotCache(2_500, history_per_dispensary=4)
    for t in (1, 2, 3):
        cache.put(make_record("a", t, size=1_000))
    assert [r.fetched_at_ms for r in cache.history("a", 10)] == [3, 2]
    assert cache.statistics().evictions == 1
    # the dropped record and anything older are refused: the held window stays complete
    assert not cache.put(make_record("a", 1, size=10))
    assert not cache.put(make_record("a", 0, size=10))
    assert cache.at("a", 1) is None
    assert cache.put(make_record("a", 4, size=10))


def test_a_record_larger_than_the_budget_is_not_cached() -> None:
    cache = HotCache(1_000)
    cache.put(make_record("a", 1, size=600))
    assert not cache.put(make_record("b", 1, size=1_001))
    assert cache.newest("a") is not None
    assert cache.statistics().evictions == 0


def test_statistics_count_hits_and_misses() -> None:
    cache = HotCache(10_000)
    cache.put(make_record("a", 10))
    cache.newest("a")
    cache.at("a", 10)
    cache.newest("b")
    cache.at("a", 9)
    cache.history("a", 5)  # not a lookup
    statistics = cache.statistics()
    assert (statistics.hits, statistics.misses) == (2, 2)
    assert (statistics.dispensaries, statistics.max_bytes) == (1, 10_000)


def test_statistics_is_a_frozen_snapshot() -> None:
    cache = HotCache(10_000)
    before = cache.statistics()
    cache.put(make_record("a", 10))
    assert before.entries == 0
    with pytest.raises(AttributeError):
        before.entries = 3  # type: ignore[misc]


@pytest.mark.parametrize("budget", [0, -1, True])
def test_a_budget_must_be_a_positive_int(budget: int) -> None:
    with pytest.raises(StoreUsageError):
        HotCache(budget)


def test_by_default_only_the_newest_is_kept_and_the_cache_never_goes_back() -> None:
    cache = HotCache(10_000)
    assert cache.put(make_record("a", 10))
    assert not cache.put(make_record("a", 5))
    assert cache.put(make_record("a", 20))
    assert [r.fetched_at_ms for r in cache.history("a", 10)] == [20]
    assert cache.statistics().entries == 1
