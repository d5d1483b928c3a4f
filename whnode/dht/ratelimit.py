"""Per-source token buckets (``whnode.ratelimit.TokenBucket``) and a log limiter; both take
``now`` instead of reading a clock."""

from __future__ import annotations

import logging
from collections import OrderedDict

from whnode.ratelimit import TokenBucket

__all__ = ["LogLimiter", "SourceRateLimiter"]


class SourceRateLimiter:
    """One token bucket per source address, in a table of at most ``max_sources`` entries.

    When the table is full, the least recently seen source is forgotten if its bucket has
    refilled completely (forgetting it loses nothing). If even that source is still active,
    the newcomer is charged to one shared overflow bucket: a flood from many addresses (or
    from one host hopping ports) is throttled as a whole, while the sources already tracked
    keep their own budgets.
    """

    def __init__(self, rate: float, burst: int, max_sources: int) -> None:
        if rate <= 0 or burst < 1 or max_sources < 1:
            raise ValueError("rate, burst and max_sources must be positive")
        self._rate = rate
        self._burst = float(burst)
        self._max_sources = max_sources
        self._buckets: OrderedDict[tuple[str, int], TokenBucket] = OrderedDict()
        self._overflow = TokenBucket.filled(rate, self._burst, 0.0)
        self.overflowed = 0
        """Datagrams charged to the shared overflow bucket."""

    def __len__(self) -> int:
        return len(self._buckets)

    def clear(self) -> None:
        """Forget every source (a closed protocol frees its table at once)."""
        self._buckets.clear()

    def allow(self, source: tuple[str, int], now: float) -> bool:
        """Charge one datagram from ``source``; False means drop it."""
        bucket = self._buckets.get(source)
        if bucket is not None:
            self._buckets.move_to_end(source)
            return bucket.take(now)
        if len(self._buckets) >= self._max_sources:
            oldest_source, oldest = next(iter(self._buckets.items()))
            if not oldest.full(now):
                self.overflowed += 1
                return self._overflow.take(now)
            del self._buckets[oldest_source]
        bucket = TokenBucket.filled(self._rate, self._burst, now)
        self._buckets[source] = bucket
        return bucket.take(now)


class LogLimiter:
    """Logs at most ``per_window`` lines per category per ``window`` seconds.

    The first line after a window in which lines were suppressed says how many were, so a
    flood of malformed datagrams costs a few log lines, not a traceback each.
    """

    def __init__(self, logger: logging.Logger, window: float, per_window: int = 5) -> None:
        self._logger = logger
        self._window = window
        self._per_window = per_window
        self._state: dict[str, tuple[float, int, int]] = {}

    def log(
        self,
        now: float,
        category: str,
        level: int,
        message: str,
        *args: object,
        exc_info: BaseException | None = None,
    ) -> bool:
        """Log unless ``category`` used up its window; returns whether it logged."""
        start, emitted, suppressed = self._state.get(category, (now, 0, 0))
        if now - start >= self._window:
            if suppressed:
                self._logger.log(level, "%s: %d similar messages suppressed", category, suppressed)
            start, emitted, suppressed = now, 0, 0
        if emitted >= self._per_window:
            self._state[category] = (start, emitted, suppressed + 1)
            return False
        self._state[category] = (start, emitted + 1, suppressed)
        self._logger.log(level, message, *args, exc_info=exc_info)
        return True
