"""The token bucket: the one rate-limiting mechanism of whnode.

Every limiter is built on :class:`TokenBucket`: the DHT's per-source and per-IP datagram
limits (``whnode.dht.ratelimit``), the public and node-to-node API's per-client limits
(``whnode.api.ratelimit``, ``whnode.peer.ratelimit``), the pace of requests to one upstream
host (``whnode.upstream.ratelimit``) and the sandbox's simulated upstream limit. Pure and
synchronous: time is a parameter (monotonic seconds), never read here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Self

__all__ = ["WHOLE_TOKEN", "TokenBucket"]

WHOLE_TOKEN: Final = 1.0 - 1e-9
"""A token, give or take float rounding after waiting exactly :meth:`TokenBucket.delay`."""


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` banked. Over any window of T seconds at
    most ``burst + rate * T`` tokens are taken."""

    rate: float
    burst: float
    tokens: float
    """Tokens banked at ``stamp``."""
    stamp: float
    """When ``tokens`` was last brought up to date."""

    @classmethod
    def filled(cls, rate: float, burst: float, now: float) -> Self:
        """A bucket holding its whole burst at ``now``; ``rate`` > 0 and ``burst`` >= 1."""
        if not rate > 0 or not burst >= 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        return cls(rate, float(burst), float(burst), now)

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def take(self, now: float) -> bool:
        """Spend one token if there is one."""
        self.refill(now)
        if self.tokens >= WHOLE_TOKEN:
            self.tokens -= 1.0
            return True
        return False

    def spend(self, now: float) -> None:
        """Spend one token whether or not there is one (the caller waited :meth:`delay`)."""
        self.refill(now)
        self.tokens -= 1.0

    def delay(self, now: float) -> float:
        """Seconds from ``now`` until a token is there (0 when one is); changes nothing."""
        tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        return 0.0 if tokens >= WHOLE_TOKEN else (1.0 - tokens) / self.rate

    def full(self, now: float) -> bool:
        """Whether the whole burst is banked (forgetting this bucket loses nothing)."""
        self.refill(now)
        return self.tokens >= self.burst
