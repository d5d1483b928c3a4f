"""Per-client token buckets for the public API.

A client is its IP address, except that IPv6 clients are grouped by /64 (one subscriber
usually holds a whole /64, so per-address buckets would be trivially evaded). The table of
buckets is bounded (least recently seen clients are forgotten first), so a flood of source
addresses costs bounded memory. ``check`` is sync and O(1); time is a parameter.
"""

from __future__ import annotations

import functools
import ipaddress
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from whnode import limits
from whnode.ratelimit import TokenBucket

__all__ = ["LRU_GRANULARITY", "ClientRateLimiter", "RateLimiterStatistics", "client_key"]

LRU_GRANULARITY: Final = 1.0
"""Seconds: a client's place in the least-recently-seen order is refreshed at most this
often (forgetting the least recently seen client when the table is full is exact to within
this)."""


@functools.lru_cache(maxsize=4096)
def client_key(remote: str | None) -> str:
    """The rate-limit key of a remote address: IPv4 address, IPv6 /64, or the raw text."""
    if not remote:
        return "local"
    try:
        address = ipaddress.ip_address(remote)
    except ValueError:
        return remote[:64]
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


@dataclass(frozen=True, slots=True)
class RateLimiterStatistics:
    """A frozen snapshot of the limiter's counters."""

    admitted: int
    refused: int
    clients: int
    """Clients currently tracked."""


@dataclass(slots=True)
class _ClientBucket(TokenBucket):
    moved: float = 0.0
    """When the client last moved to the recent end of the least-recently-seen order."""


class ClientRateLimiter:
    """One token bucket per client key: ``rate`` tokens per second up to ``burst``."""

    def __init__(
        self, *, rate: float, burst: float, max_clients: int = limits.MAX_TRACKED_SOURCES
    ) -> None:
        if rate <= 0 or burst < 1 or max_clients < 1:
            raise ValueError("rate must be > 0, burst >= 1 and max_clients >= 1")
        self._rate = rate
        self._burst = float(burst)
        self._max_clients = max_clients
        self._buckets: OrderedDict[str, _ClientBucket] = OrderedDict()
        """Least recently seen first."""
        self._admitted = 0
        self._refused = 0

    def check(self, key: str, now: float) -> float:
        """Take one token for ``key``: 0.0 when admitted, else seconds until one is available.

        ``now`` is a monotonic time in seconds.
        """
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _ClientBucket(self._rate, self._burst, self._burst, now, now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_clients:
                self._buckets.popitem(last=False)
        elif now - bucket.moved > LRU_GRANULARITY:
            # least recently seen first, to within LRU_GRANULARITY: a busy client's
            # entry moves at most once per that many seconds, not on every request
            self._buckets.move_to_end(key)
            bucket.moved = now
        if bucket.take(now):
            self._admitted += 1
            return 0.0
        self._refused += 1
        return bucket.delay(now)

    def statistics(self) -> RateLimiterStatistics:
        return RateLimiterStatistics(
            admitted=self._admitted, refused=self._refused, clients=len(self._buckets)
        )
