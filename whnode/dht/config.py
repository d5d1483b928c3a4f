"""The DHT configuration: one frozen object, documented field by field.

Some fields are copies of user keys of ``whnode.config.Config`` (``USER_KEYS``): their
defaults and rules are the user keys' own (``default_of``, ``check_key``), and a node builds
its DhtConfig with :meth:`DhtConfig.from_config`, so a value is checked once, under the name
a user sets (``node.ksize``), before anything starts. The other fields are the DHT layer's
own tuning, set by code (seeds, benches, tests).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Final, Self

from whnode import limits
from whnode.config import Config, check_key, default_of, values_of
from whnode.errors import ConfigError

__all__ = ["USER_KEYS", "DhtConfig"]

USER_KEYS: Final[Mapping[str, str]] = {
    "ksize": "node.ksize",
    "alpha": "node.alpha",
    "rpc_timeout": "node.rpc_timeout",
    "lookup_deadline": "node.lookup_deadline",
    "routing_only": "node.routing_only",
    "advertise_host": "node.advertise_host",
    "node_id_difficulty": "trust.node_id_difficulty",
    "ids_per_ip": "trust.ids_per_ip",
    "owner_ids_per_ip": "trust.owner_ids_per_ip",
}
"""DhtConfig fields that copy a user key of Config (field name → key)."""


@dataclass(frozen=True, slots=True)
class DhtConfig:
    """How a DHT node routes, times out, retries and protects itself."""

    ksize: int = default_of("node.ksize")
    """Kademlia bucket size k; also how many contacts one find_node reply carries (capped by
    ``limits.MAX_CONTACTS_PER_REPLY``) and how many closest nodes a lookup converges on."""
    bucket_size: int | None = None
    """Contacts kept per k-bucket (None: ksize). Seeds may keep more: a seed answers the
    find_node of every newcomer, and a wider view gives each one its true neighbours even
    when many join at once."""
    alpha: int = default_of("node.alpha")
    """Lookup concurrency: find_node requests kept in flight by one lookup."""
    rpc_timeout: float = default_of("node.rpc_timeout")
    """Seconds to wait for the reply to one RPC (rpcudp's own timer, never ``wait_for``)."""
    misses_before_eviction: int = 3
    """Unanswered RPCs in a row after which a contact leaves the routing table."""
    suspect_seconds: float = 300.0
    """After a miss, the node is a suspect for this long, or until any datagram from it
    arrives (0 disables): lookups still ask it but never wait for it, find_node replies do
    not list it, and cached owner lists naming it are not used. It stays in the routing table
    until misses_before_eviction. Long, because live peers may go on listing a crashed node
    for a while: every node that meets it pays one rpc_timeout, once."""
    lookup_deadline: float = default_of("node.lookup_deadline")
    """Overall deadline in seconds for one iterative lookup; the best live nodes found by then
    are returned."""
    lookup_width: int | None = 8
    """Owner lookups and find_closest stop once this many closest known nodes have answered
    (capped at ksize; None: ksize, the textbook Kademlia termination). Measured on 100 and
    300 nodes: 8 gives the exact owners in every lookup for half the RPCs of 20
    (docs/dht.md); a smaller width is cheaper still and less tolerant of stale tables."""
    stall_timeout: float = 0.5
    """A lookup request unanswered after this many seconds stops counting towards alpha, so
    that the lookup asks another node meanwhile (the request itself waits rpc_timeout)."""
    routing_only: bool = default_of("node.routing_only")
    """Seed mode: answer find_node and route, but never be listed as an owner."""
    owner_cache_seconds: float = 5.0
    """How long an owner lookup result is reused (0 disables the cache)."""
    advertise_host: str | None = default_of("node.advertise_host")
    """IP address reported in ``self_contact`` (default: the bound host). Peers learn a
    node's address from its datagrams; this only names this node in its own owner lists."""
    bootstrap_attempts: int = 4
    """Rounds of bootstrap (ping every seed and saved peer, then a self lookup) before
    ``bootstrap()`` gives up; the maintenance task keeps trying afterwards."""
    bootstrap_backoff: float = 0.5
    """First back-off in seconds between bootstrap rounds; doubles each round, with jitter."""
    bootstrap_backoff_max: float = 10.0
    """Largest back-off in seconds between bootstrap rounds."""
    maintenance_interval: float = 10.0
    """Seconds between maintenance rounds (re-bootstrap when the table is empty, bucket
    refresh, periodic peer-list save); each round is jittered by up to 25 %."""
    liveness_interval: float = 30.0
    """Maintenance pings table contacts not heard from for this many seconds (at most
    liveness_pings per round), so that a crashed node leaves the tables, and the find_node
    replies, of peers that had no reason to talk to it."""
    liveness_pings: int = 8
    """Most silent contacts pinged per maintenance round (0 disables the sweep)."""
    recall_seconds: float = 3600.0
    """How long a contact evicted for missing requests is still pinged now and then (with a
    doubling delay up to recall_interval_max): the two sides of a network partition evict
    each other, and without recall they would stay apart after it heals."""
    recall_interval_max: float = 30.0
    """Longest delay in seconds between two pings of an evicted contact (bounds how long
    the halves of a healed partition may stay apart; at most liveness_pings per round)."""
    refresh_interval: float = 3600.0
    """A bucket not used by any lookup for this many seconds is refreshed by a lookup of a
    random id in its range."""
    peers_save_interval: float = 300.0
    """Seconds between saves of the persisted peer list (it is also saved on stop)."""
    max_saved_peers: int = 64
    """Most contacts written to the persisted peer list."""
    receive_buffer_bytes: int = 4 * 1024 * 1024
    """SO_RCVBUF requested for the UDP socket (the kernel may cap it at net.core.rmem_max)."""
    datagrams_per_source_per_second: float = limits.DATAGRAMS_PER_SOURCE_PER_SECOND
    """Token-bucket refill rate for datagrams from one source address."""
    datagram_burst_per_source: int = limits.DATAGRAM_BURST_PER_SOURCE
    """Token-bucket burst for datagrams from one source address."""
    datagrams_per_ip_per_second: float = limits.DATAGRAMS_PER_IP_PER_SECOND
    """Token-bucket refill rate for datagrams from one IP address (IPv6: one /64), whatever
    their source port; checked after the per-source bucket."""
    datagram_burst_per_ip: int = limits.DATAGRAM_BURST_PER_IP
    """Token-bucket burst for datagrams from one IP address (IPv6: one /64)."""
    ip_limit_exempts_loopback: bool = True
    """Loopback sources (127.0.0.0/8, ::1) skip the per-IP bucket, not the per-source one:
    every process of a local network shares 127.0.0.1, and no remote host can send from a
    loopback address."""
    flood_block_after_drops: int = 1000
    """Datagrams from one IP (IPv6: one /64) refused by the rate limits within one second
    after which that source is dropped in the kernel (whnode/dht/blocklist.py)."""
    flood_block_seconds: float = 30.0
    """How long a flooding source stays blocked in the kernel (0 disables blocking)."""
    flood_block_max: int = 64
    """Most sources blocked at once (the oldest block is lifted first)."""
    amplification_factor: float = 3.0
    """Bytes sent to an address that has not answered one of our requests, at most this many
    times the bytes received from it (QUIC's anti-amplification rule; loopback exempt when
    ip_limit_exempts_loopback)."""
    verified_seconds: float = 600.0
    """How long an address that answered one of our requests counts as verified."""
    node_id_difficulty: int = 0
    """Leading zero bits required of SHA-256 over a node id (S/Kademlia's static crypto
    puzzle, ``whnode.record.puzzle``): requests and replies from weaker ids are refused, and
    weaker contacts listed in replies are dropped. Network-wide. 0 for a DhtNode built alone
    (tests, benches); a node passes ``trust.node_id_difficulty`` (default 14)."""
    ids_per_ip: int = default_of("trust.ids_per_ip")
    """Most node ids from one IP address (IPv6: one /64) in the routing table (BEP 42 in
    spirit: one host cannot fill a region of the key space)."""
    owner_ids_per_ip: int = default_of("trust.owner_ids_per_ip")
    """Most node ids from one IP address (IPv6: one /64) in one owner list."""
    id_caps_exempt_loopback: bool = True
    """Loopback contacts are not counted against ids_per_ip and owner_ids_per_ip (a local
    network of many nodes shares 127.0.0.1). Distinct loopback addresses (127.0.0.2, ...)
    are distinct IPs: tests turn this off and give nodes their own addresses."""
    log_interval: float = 10.0
    """Window in seconds of the log limiter: each problem category logs at most a few lines
    per window, then one summary of what was suppressed."""

    @classmethod
    def from_config(cls, config: Config, **changes: Any) -> Self:
        """The DHT configuration of a node built from ``config`` (checked already), with the
        DHT layer's own fields at their defaults unless ``changes`` sets them."""
        return cls(**{**values_of(config, USER_KEYS), **changes})

    def __post_init__(self) -> None:
        for name, key in USER_KEYS.items():
            check_key(key, getattr(self, name), label=f"dht.{name}")
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"dht.{item.name} must be finite, not {value!r}")
        positive_ints = {
            "misses_before_eviction": self.misses_before_eviction,
            "bootstrap_attempts": self.bootstrap_attempts,
            "max_saved_peers": self.max_saved_peers,
            "receive_buffer_bytes": self.receive_buffer_bytes,
            "datagram_burst_per_source": self.datagram_burst_per_source,
            "datagram_burst_per_ip": self.datagram_burst_per_ip,
        }
        for name, number in positive_ints.items():
            if number < 1:
                raise ConfigError(f"dht.{name} must be at least 1, not {number}")
        positive_floats = {
            "stall_timeout": self.stall_timeout,
            "bootstrap_backoff": self.bootstrap_backoff,
            "bootstrap_backoff_max": self.bootstrap_backoff_max,
            "maintenance_interval": self.maintenance_interval,
            "refresh_interval": self.refresh_interval,
            "peers_save_interval": self.peers_save_interval,
            "datagrams_per_source_per_second": self.datagrams_per_source_per_second,
            "datagrams_per_ip_per_second": self.datagrams_per_ip_per_second,
            "log_interval": self.log_interval,
            "amplification_factor": self.amplification_factor,
            "verified_seconds": self.verified_seconds,
            "liveness_interval": self.liveness_interval,
            "recall_seconds": self.recall_seconds,
            "recall_interval_max": self.recall_interval_max,
        }
        for name, seconds in positive_floats.items():
            if seconds <= 0:
                raise ConfigError(f"dht.{name} must be positive, not {seconds}")
        if self.flood_block_seconds < 0 or self.flood_block_after_drops < 1:
            raise ConfigError("dht.flood_block_seconds must be >= 0, flood_block_after_drops >= 1")
        if self.flood_block_max < 1:
            raise ConfigError("dht.flood_block_max must be at least 1")
        if self.liveness_pings < 0:
            raise ConfigError("dht.liveness_pings must not be negative")
        if self.suspect_seconds < 0:
            raise ConfigError("dht.suspect_seconds must not be negative")
        if self.owner_cache_seconds < 0:
            raise ConfigError("dht.owner_cache_seconds must not be negative")
        if self.bucket_size is not None and self.bucket_size < self.ksize:
            raise ConfigError(f"dht.bucket_size must be at least ksize ({self.ksize})")
        if self.lookup_width is not None and self.lookup_width < 1:
            raise ConfigError("dht.lookup_width must be at least 1")

    @property
    def table_bucket_size(self) -> int:
        """Contacts kept per k-bucket."""
        return self.ksize if self.bucket_size is None else self.bucket_size

    @property
    def contacts_per_reply(self) -> int:
        """Contacts sent in one find_node reply."""
        return min(self.ksize, limits.MAX_CONTACTS_PER_REPLY)

    @property
    def stop_width(self) -> int:
        """Closest answered nodes at which an owner lookup or find_closest stops."""
        return self.ksize if self.lookup_width is None else min(self.lookup_width, self.ksize)
