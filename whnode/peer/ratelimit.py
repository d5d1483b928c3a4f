"""A bounded table of token buckets, one per key (peer or client)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

__all__ = ["TokenBuckets"]


class TokenBuckets:
    """Token buckets keyed by e.g. remote address; least recently used keys are dropped.

    ``take(key, now)`` is sync and O(1); ``now`` is a monotonic time in seconds.
    """

    def __init__(self, *, rate: float, burst: float, max_keys: int) -> None:
        self._rate = rate
        self._burst = burst
        self._max_keys = max_keys
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()
        self.refused = 0

    def take(self, key: Hashable, now: float, cost: float = 1.0) -> bool:
        tokens, last = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        allowed = tokens >= cost
        if allowed:
            tokens -= cost
        else:
            self.refused += 1
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return allowed

    def retry_after(self, key: Hashable, now: float) -> float:
        """Seconds until one token is available for ``key``."""
        tokens, last = self._buckets.get(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self._rate
