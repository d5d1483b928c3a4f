"""Per-source token buckets with a bounded table, and the log limiter."""

from __future__ import annotations

import logging

import pytest

from whnode.dht.ratelimit import LogLimiter, SourceRateLimiter


def test_each_source_gets_its_own_burst_then_the_rate() -> None:
    limiter = SourceRateLimiter(rate=10.0, burst=5, max_sources=100)
    a, b = ("192.0.2.1", 1000), ("192.0.2.2", 1000)
    assert [limiter.allow(a, 0.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert all(limiter.allow(b, 0.0) for _ in range(5))
    assert not limiter.allow(a, 0.05)  # half a token
    assert limiter.allow(a, 0.1)  # one token after 0.1 s at 10/s
    assert not limiter.allow(a, 0.1)
    assert sum(limiter.allow(a, 10.0) for _ in range(10)) == 5  # refill caps at the burst


def test_table_is_bounded_and_forgets_idle_sources() -> None:
    limiter = SourceRateLimiter(rate=1.0, burst=2, max_sources=3)
    for port in range(3):
        assert limiter.allow(("192.0.2.1", port), 0.0)
    assert len(limiter) == 3
    # every tracked source is still active (bucket not full): a newcomer uses the overflow
    assert limiter.allow(("192.0.2.9", 9), 0.0)
    assert len(limiter) == 3
    assert limiter.overflowed == 1
    # once the oldest source has refilled, it is forgotten to make room
    assert limiter.allow(("192.0.2.10", 10), 5.0)
    assert len(limiter) == 3
    assert limiter.overflowed == 1


def test_a_flood_from_new_sources_shares_one_overflow_bucket() -> None:
    limiter = SourceRateLimiter(rate=1.0, burst=4, max_sources=2)
    limiter.allow(("192.0.2.1", 1), 0.0)
    limiter.allow(("192.0.2.2", 2), 0.0)
    allowed = sum(limiter.allow(("198.51.100.1", port), 0.0) for port in range(1000))
    assert allowed == 4
    assert len(limiter) == 2
    # tracked sources keep their own budget
    assert limiter.allow(("192.0.2.1", 1), 0.0)


def test_invalid_parameters_are_refused() -> None:
    with pytest.raises(ValueError):
        SourceRateLimiter(rate=0.0, burst=1, max_sources=1)


def test_log_limiter_caps_lines_and_reports_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.dht.limiter")
    limiter = LogLimiter(logger, window=10.0, per_window=3)
    with caplog.at_level(logging.INFO, logger="test.dht.limiter"):
        logged = [limiter.log(1.0, "malformed", logging.INFO, "bad %d", n) for n in range(100)]
        assert logged == [True] * 3 + [False] * 97
        assert limiter.log(1.0, "other", logging.INFO, "other category")
        assert limiter.log(12.0, "malformed", logging.INFO, "bad again")
    messages = [record.getMessage() for record in caplog.records]
    assert messages[:3] == ["bad 0", "bad 1", "bad 2"]
    assert "malformed: 97 similar messages suppressed" in messages
    assert messages[-1] == "bad again"
    assert len(messages) == 6
