"""Per-client token buckets."""

from __future__ import annotations

import pytest

from whnode.api.ratelimit import LRU_GRANULARITY, ClientRateLimiter, client_key


def test_burst_then_refill_at_rate() -> None:
    limiter = ClientRateLimiter(rate=10.0, burst=3)
    assert [limiter.check("a", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.check("a", 100.0)
    assert wait == pytest.approx(0.1)
    assert limiter.check("b", 100.0) == 0.0  # other clients are not affected
    assert limiter.check("a", 100.11) == 0.0  # one token back after 1/rate seconds
    assert limiter.check("a", 100.11) > 0
    stats = limiter.statistics()
    assert (stats.admitted, stats.refused, stats.clients) == (5, 2, 2)


def test_bucket_never_exceeds_burst_and_ignores_clock_going_back() -> None:
    limiter = ClientRateLimiter(rate=1.0, burst=2)
    limiter.check("a", 0.0)
    assert limiter.check("a", 1000.0) == 0.0
    assert limiter.check("a", 1000.0) == 0.0
    assert limiter.check("a", 1000.0) > 0
    assert limiter.check("a", 500.0) > 0  # a clock going backwards refills nothing


def test_table_is_bounded() -> None:
    limiter = ClientRateLimiter(rate=1.0, burst=1, max_clients=100)
    for index in range(1000):
        limiter.check(f"client-{index}", 0.0)
    assert limiter.statistics().clients == 100


def test_the_least_recently_seen_client_is_forgotten_first_to_within_a_second() -> None:
    assert LRU_GRANULARITY == 1.0
    limiter = ClientRateLimiter(rate=0.001, burst=1, max_clients=2)
    assert limiter.check("a", 0.0) == 0.0
    assert limiter.check("b", 0.0) == 0.0
    assert limiter.check("a", 2.0) > 0  # seen again (and moved): its empty bucket is kept
    assert limiter.check("c", 2.0) == 0.0  # the table is full: b, least recently seen, goes
    assert limiter.check("a", 2.0) > 0  # a kept its state
    assert limiter.check("b", 2.0) == 0.0  # b starts afresh ... and c, now oldest, went
    assert limiter.statistics().clients == 2
    # within LRU_GRANULARITY a client keeps its place: d, seen 0.5 s after its first
    # request, is still the oldest when e arrives
    limiter = ClientRateLimiter(rate=0.001, burst=1, max_clients=2)
    limiter.check("d", 0.0)
    limiter.check("f", 0.0)
    limiter.check("d", 0.5)
    limiter.check("e", 0.5)
    assert limiter.check("d", 0.5) == 0.0  # forgotten, so a full bucket again


def test_client_keys_group_ipv6_by_slash_64() -> None:
    assert client_key("203.0.113.7") == "203.0.113.7"
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::2")
    assert client_key("2001:db8:1:2::1") != client_key("2001:db8:1:3::1")
    assert client_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_key(None) == "local"
    assert client_key("not an address") == "not an address"


def test_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        ClientRateLimiter(rate=0.0, burst=1)
    with pytest.raises(ValueError):
        ClientRateLimiter(rate=1.0, burst=0)
