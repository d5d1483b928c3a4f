"""Per-host pacing of upstream requests: a token bucket that hands out send times.

The core is synchronous and takes ``now`` (monotonic seconds) as a parameter: ``delay`` says
how long until a token is there, ``take`` spends it. The HTTP client sleeps in between, one
waiter at a time in arrival order, and takes the token right before sending, so that what
the host sees, not only what was planned, keeps to the pace.
"""

from __future__ import annotations

from whnode.ratelimit import TokenBucket

__all__ = ["HostPace"]


class HostPace:
    """When the next request to one host may be sent.

    A token bucket of ``rate`` tokens per second holding at most ``burst`` tokens, plus a pause
    set from the upstream's Retry-After (no request before ``paused_until``). Over any window of
    T seconds at most ``burst + rate * T`` tokens are taken.
    """

    __slots__ = ("_bucket", "paused_until")

    def __init__(self, *, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._bucket = TokenBucket.filled(rate, burst, now)
        self.paused_until = now
        """No request may be sent before this time (the upstream asked us to wait)."""

    def delay(self, now: float) -> float:
        """Seconds until a token may be taken (the pause included); 0 when one is there."""
        start = max(now, self.paused_until)
        return (start - now) + self._bucket.delay(start)

    def take(self, now: float) -> None:
        """Spend one token (call when ``delay(now)`` is 0)."""
        self._bucket.spend(now)

    def pause(self, until: float) -> None:
        """Send nothing to this host before ``until`` (from a Retry-After)."""
        self.paused_until = max(self.paused_until, until)
