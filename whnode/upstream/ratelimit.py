"""Per-host pacing of upstream requests: a token bucket that hands out send times.

The core is synchronous and takes ``now`` (monotonic seconds) as a parameter; the HTTP client
sleeps for what it returns. Callers *reserve* a send time instead of polling for a token, so
waiters are served in arrival order and the bucket never has to wake anyone up.
"""

from __future__ import annotations

__all__ = ["HostPace"]


class HostPace:
    """When the next request to one host may be sent.

    A token bucket of ``rate`` tokens per second holding at most ``burst`` tokens, plus a pause
    set from the upstream's Retry-After (no request before ``paused_until``). Over any window of
    T seconds at most ``burst + rate * T`` reservations come due.
    """

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens", "paused_until")

    def __init__(self, *, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now
        self.paused_until = now
        """No request may be sent before this time (the upstream asked us to wait)."""

    def _refill(self, until: float) -> None:
        if until > self._stamp:
            self._tokens = min(self._burst, self._tokens + (until - self._stamp) * self._rate)
            self._stamp = until

    def delay(self, now: float) -> float:
        """Seconds a reservation made now would wait (the pause included); reserves nothing."""
        start = max(now, self.paused_until)
        tokens = min(self._burst, self._tokens + max(0.0, start - self._stamp) * self._rate)
        return (start - now) + (0.0 if tokens >= 1.0 else (1.0 - tokens) / self._rate)

    def reserve(self, now: float) -> float:
        """Take one token (possibly one that is not there yet); return seconds to wait.

        Tokens accrue during a pause and are spent as of its end.
        """
        start = max(now, self.paused_until)
        self._refill(start)
        self._tokens -= 1.0
        wait = start - now
        if self._tokens < 0:
            wait += -self._tokens / self._rate
        return wait

    def refund(self, now: float) -> None:
        """Give back a reserved token that will not be used (the caller gave up)."""
        self._refill(now)
        self._tokens = min(self._burst, self._tokens + 1.0)

    def pause(self, until: float) -> None:
        """Send nothing to this host before ``until`` (from a Retry-After)."""
        self.paused_until = max(self.paused_until, until)
