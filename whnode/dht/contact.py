"""A node's address in the DHT.

Node ids are bound to keys: ``node_id_for`` (SHA-1 of the 32 raw Ed25519 public key bytes)
and the ``NodeId``/``PublicKey`` types come from ``whnode.record.keys`` and are re-exported.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from functools import lru_cache

from whnode.dht.exceptions import DhtUsageError
from whnode.record.keys import NodeId, PublicKey, node_id_for

__all__ = [
    "NODE_ID_BYTES",
    "PUBLIC_KEY_BYTES",
    "Contact",
    "NodeId",
    "PublicKey",
    "is_loopback",
    "node_id_for",
    "packed_address",
    "xor_distance",
]

ADDRESS_CACHE_ENTRIES = 4096
"""Parsed IP addresses remembered (parsing is a visible cost per datagram)."""

NODE_ID_BYTES = 20
"""Length of a node id and of a routing key (SHA-1, 160 bits)."""
PUBLIC_KEY_BYTES = 32
"""Length of a raw Ed25519 public key."""


def xor_distance(first: bytes, second: bytes) -> int:
    """Kademlia's XOR metric between two 20-byte ids."""
    return int.from_bytes(first, "big") ^ int.from_bytes(second, "big")


@dataclass(frozen=True, slots=True)
class Contact:
    """Where a node can be reached: its id and its UDP (and HTTP) address.

    ``host`` is an IP literal in canonical form (hostnames are resolved before they become
    contacts). ``routing_only`` tells whether the node declared itself a routing-only seed;
    it is not part of equality (the same node seen with a stale flag is the same node).
    """

    node_id: NodeId
    host: str
    port: int
    routing_only: bool = field(default=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.node_id, bytes) or len(self.node_id) != NODE_ID_BYTES:
            raise DhtUsageError(f"a node id is {NODE_ID_BYTES} bytes")
        if not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise DhtUsageError(f"invalid port {self.port!r}")
        canonical = _canonical_host(self.host) if isinstance(self.host, str) else None
        if canonical is None:
            raise DhtUsageError(f"a contact host is an IP address, not {self.host!r}")
        if canonical != self.host:
            object.__setattr__(self, "host", canonical)

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) pair to send datagrams to."""
        return (self.host, self.port)

    def distance_to(self, key: bytes) -> int:
        """XOR distance from this node's id to ``key``."""
        return xor_distance(self.node_id, key)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.node_id.hex()[:12]}@{host}:{self.port}"


@lru_cache(maxsize=ADDRESS_CACHE_ENTRIES)
def _canonical_host(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


@lru_cache(maxsize=ADDRESS_CACHE_ENTRIES)
def packed_address(host: str) -> bytes:
    """The 4 (IPv4, also for IPv4-mapped IPv6) or 16 raw bytes of an IP literal."""
    return _address(host).packed


@lru_cache(maxsize=ADDRESS_CACHE_ENTRIES)
def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback IP literal (False for anything else)."""
    try:
        return _address(host).is_loopback
    except ValueError:
        return False
