"""whnode.ratelimit.TokenBucket, the one token bucket every limiter is built on."""

from __future__ import annotations

import random

import pytest

from whnode.ratelimit import TokenBucket


def test_a_bucket_never_gives_more_than_burst_plus_rate_times_the_window() -> None:
    rng = random.Random(7)
    bucket = TokenBucket.filled(rate=4.0, burst=3, now=0.0)
    now, taken = 0.0, []
    for _ in range(2000):
        now += rng.choice((0.0, 0.01, 0.05, 0.3))
        if bucket.take(now):
            taken.append(now)
    assert len(taken) > 100
    for i, start in enumerate(taken):
        for j in range(i, min(len(taken), i + 40)):
            assert j - i + 1 <= 3 + 4.0 * (taken[j] - start) + 1e-6


def test_delay_says_when_the_next_token_is_there_and_changes_nothing() -> None:
    bucket = TokenBucket.filled(rate=2.0, burst=1, now=10.0)
    assert bucket.delay(10.0) == 0.0
    assert bucket.take(10.0)
    assert not bucket.take(10.0)
    assert bucket.delay(10.0) == pytest.approx(0.5)
    assert bucket.delay(10.25) == pytest.approx(0.25)
    assert bucket.delay(10.25) == pytest.approx(0.25)  # asking twice waits no less
    assert bucket.take(10.0 + bucket.delay(10.0))  # waiting exactly the delay is enough
    bucket.spend(10.5)  # a caller that waited spends unconditionally
    assert bucket.tokens < 0
    assert bucket.delay(10.5) == pytest.approx(1.0)


def test_a_bucket_refills_to_its_burst_and_no_further() -> None:
    bucket = TokenBucket.filled(rate=100.0, burst=5, now=0.0)
    assert all(bucket.take(0.0) for _ in range(5))
    assert not bucket.full(0.0)
    assert bucket.full(60.0)
    assert bucket.tokens == 5.0
    assert sum(bucket.take(60.0) for _ in range(10)) == 5


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0), (float("nan"), 1)])
def test_a_bucket_that_could_never_give_a_token_is_refused(rate: float, burst: int) -> None:
    with pytest.raises(ValueError, match="rate > 0 and burst >= 1"):
        TokenBucket.filled(rate, burst, 0.0)
