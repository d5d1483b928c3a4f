"""The reference caches that the cluster benchmark compares against."""

from __future__ import annotations

import random
from collections import Counter

from whnode.testing.replay import (
    Request,
    central_cache_calls,
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
