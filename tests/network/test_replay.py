"""The reference caches that the cluster benchmark compares against."""

from __future__ import annotations

import random
from collections import Counter

from whnode.testing.replay import (
    Fetch,
    Request,
    central_cache_calls,
    duplicate_fills,
    latency_aware_central_calls,
    per_node_cache_calls,
    zipf_choices,
    zipf_trace,
)


def test_central_cache_counts_one_call_per_dispensary_per_window() -> None:
    trace = [
        Request(0, "a", 0),
        Request(500, "a", 1),  # fresh (age 500 <= 1000)
        Request(1000, "a", 2),  # age exactly max_age: still fresh
        Request(1001, "a", 0),  # stale: refetch, window restarts at 1001
        Request(1500, "b", 1),
        Request(2001, "a", 1),  # age 1000 since 1001: fresh
        Request(2002, "a", 1),  # stale
    ]
    assert central_cache_calls(trace, 1000) == 4


def test_per_node_caches_do_not_share() -> None:
    trace = [Request(0, "a", 0), Request(1, "a", 1), Request(2, "a", 0), Request(3, "a", 2)]
    assert central_cache_calls(trace, 1000) == 1
    assert per_node_cache_calls(trace, 1000) == 3


def test_zipf_favours_low_ranks() -> None:
    counts = Counter(zipf_choices(["x", "y", "z"], 6000, exponent=1.0, rng=random.Random(3)))
    # weights 1, 1/2, 1/3 -> shares 6/11, 3/11, 2/11
    assert 3000 < counts["x"] < 3550
    assert 1450 < counts["y"] < 1820
    assert 950 < counts["z"] < 1250


def test_trace_is_ordered_and_spread_over_nodes() -> None:
    trace = zipf_trace([f"d{i}" for i in range(10)], 1000, nodes=4, duration_ms=10_000)
    times = [request.time_ms for request in trace]
    assert times == sorted(times)
    assert times[-1] < 10_000
    assert {request.node for request in trace} == {0, 1, 2, 3}


def test_latency_aware_central_cache_joins_running_fills() -> None:
    trace = [
        Request(0, "a", 0),  # fill stamped 0, done at 400
        Request(100, "a", 1),  # joins the running fill
        Request(500, "a", 2),  # the record of 0 (age 500 <= 1000)
        Request(1200, "a", 0),  # too old: a fill stamped 1200
        Request(1300, "b", 0),
    ]
    assert latency_aware_central_calls(trace, 1000, [400.0]) == 3
    assert latency_aware_central_calls(trace, 1000, []) == central_cache_calls(trace, 1000)
    # a fill slower than max_age: a request after max_age does not join it
    slow = [Request(0, "a", 0), Request(1500, "a", 1), Request(2000, "a", 2)]
    assert latency_aware_central_calls(slow, 1000, [5000.0]) == 2


def test_duplicate_fills_are_overlapping_windows_named_by_cause() -> None:
    fetches = [
        Fetch("a", 0, "n1", "miss"),
        Fetch("a", 300, "n2", "miss"),  # another node inside the window
        Fetch("a", 600, "n2", "failover"),
        Fetch("a", 900, "n2", "too_old_join"),
        Fetch("a", 1000, "n2", "miss"),  # same node, inside the window of 900
        Fetch("a", 2100, "n1", "miss"),  # after the window: not a duplicate
        Fetch("b", 50, "n3", "miss"),
    ]
    causes = duplicate_fills(fetches, 1000)
    assert causes == {
        "owner disagreement": 1,
        "failover": 1,
        "too-old join": 1,
        "expiry during fill": 1,
    }
