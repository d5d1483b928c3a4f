"""The request limiter of the node-to-node API: per IP first, per announced node inside it.

A peer is its IP address (IPv6: its /64, as on the public API: ``whnode.api.ratelimit``), not
the node id it announces in ``X-Whnode-Node``: that header is whatever the client writes, so
a bucket keyed by it alone is evaded by sending a new value per request. Each IP gets one
bucket (``PEER_REQUESTS_PER_IP_PER_SECOND``); inside it, each (IP, announced node id) pair
gets a smaller one (``PEER_REQUESTS_PER_SECOND``), so that one of several nodes behind a NAT
cannot use up the others' share. A request must pass both. Loopback addresses skip the IP
bucket by default (every node of a local test network shares 127.0.0.1, and no remote host
can send from a loopback address); the per-node bucket still applies to them.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass

from whnode import limits
from whnode.api.ratelimit import ClientRateLimiter, client_key

__all__ = ["PeerRateLimiter", "PeerRateStatistics"]

MAX_NODE_ID_CHARS = 40
"""Longest announced node id used as a bucket key (a node id is 40 hex digits)."""


@dataclass(frozen=True, slots=True)
class PeerRateStatistics:
    refused_by_ip: int
    refused_by_node: int
    ips: int
    """IP addresses (IPv6 /64s) currently tracked."""


class PeerRateLimiter:
    """Two levels of token buckets; ``check`` is sync and O(1), ``now`` is monotonic seconds."""

    def __init__(
        self,
        *,
        ip_rate: float = limits.PEER_REQUESTS_PER_IP_PER_SECOND,
        ip_burst: float = limits.PEER_REQUEST_BURST_PER_IP,
        node_rate: float = limits.PEER_REQUESTS_PER_SECOND,
        node_burst: float = limits.PEER_REQUEST_BURST,
        exempt_loopback: bool = True,
        max_keys: int = limits.MAX_TRACKED_SOURCES,
    ) -> None:
        self._ips = ClientRateLimiter(rate=ip_rate, burst=ip_burst, max_clients=max_keys)
        self._nodes = ClientRateLimiter(rate=node_rate, burst=node_burst, max_clients=max_keys)
        self._exempt_loopback = exempt_loopback
        self.refused_by_ip = 0
        self.refused_by_node = 0

    def check(self, remote: str | None, node_id: str, now: float) -> float:
        """Charge one request: 0.0 when admitted, else seconds until the caller may retry."""
        ip = client_key(remote)
        wait = self._nodes.check(f"{ip}|{node_id[:MAX_NODE_ID_CHARS]}", now)
        if wait > 0:
            self.refused_by_node += 1
            return wait
        if self._exempt_loopback and _is_loopback(remote):
            return 0.0
        wait = self._ips.check(ip, now)
        if wait > 0:
            self.refused_by_ip += 1
        return wait

    def statistics(self) -> PeerRateStatistics:
        return PeerRateStatistics(
            refused_by_ip=self.refused_by_ip,
            refused_by_node=self.refused_by_node,
            ips=self._ips.statistics().clients,
        )


@functools.lru_cache(maxsize=4096)
def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote).is_loopback
    except ValueError:
        return False
