"""DHT counters (mutable, owned by one node) and their frozen snapshot."""

from __future__ import annotations

from dataclasses import dataclass, fields

__all__ = ["DhtCounters", "DhtStatistics"]


@dataclass(slots=True)
class DhtCounters:
    """Monotonic counters, incremented by the protocol, the lookups and the node."""

    datagrams_received: int = 0
    """Datagrams read from the socket (before any check)."""
    datagrams_sent: int = 0
    """Datagrams handed to the socket (requests and replies)."""
    rpcs_sent: int = 0
    """Requests sent."""
    rpcs_received: int = 0
    """Well-formed requests from valid identities that were answered."""
    replies_received: int = 0
    """Replies matched to an outstanding request from the right address."""
    rpc_timeouts: int = 0
    """Requests that got no (valid) reply within rpc_timeout."""
    malformed_datagrams: int = 0
    """Datagrams refused by framing, msgpack or shape checks."""
    oversize_datagrams: int = 0
    """Datagrams over limits.MAX_DATAGRAM_BYTES, dropped unread."""
    unknown_rpcs: int = 0
    """Requests naming an RPC this node does not answer."""
    handler_errors: int = 0
    """Unexpected exceptions while handling a datagram (bugs; logged rate-limited)."""
    rate_limited_drops: int = 0
    """Datagrams dropped by the per-source or the per-IP token bucket."""
    ip_rate_limited_drops: int = 0
    """Of those, datagrams dropped by the per-IP bucket (a source within its own budget)."""
    flood_blocks: int = 0
    """Sources blocked in the kernel for flooding (whnode/dht/blocklist.py)."""
    amplification_trimmed: int = 0
    """find_node replies to an unverified address cut to 3x the bytes it sent."""
    amplification_dropped: int = 0
    """Replies to an unverified address not sent: even their shortest form was over 3x."""
    verification_pings: int = 0
    """Pings sent to unverified requesters so that their next requests get full replies."""
    rejected_ids: int = 0
    """Requests or replies with an id of the wrong length, an id that is not SHA-1 of the key
    sent with it, or a reply from another id than the one asked."""
    invalid_replies: int = 0
    """Replies with a malformed body (counted as a miss for the peer)."""
    wrong_source_replies: int = 0
    """Replies whose source address is not where the request was sent (ignored)."""
    unexpected_replies: int = 0
    """Replies to no outstanding request (late, duplicated or forged)."""
    store_refused: int = 0
    """store requests answered False."""
    send_errors: int = 0
    """Socket errors reported through error_received (e.g. EMSGSIZE, EACCES)."""
    evictions: int = 0
    """Contacts removed from the routing table after misses_before_eviction misses."""
    address_conflicts: int = 0
    """Known ids claimed from a new address (the known address is kept until it fails)."""
    weak_ids: int = 0
    """Node ids under config.node_id_difficulty (the id puzzle): senders refused, listed
    contacts dropped."""
    ip_cap_refusals: int = 0
    """Contacts kept out of the routing table because their IP address (IPv6: /64) already
    has config.ids_per_ip ids there."""
    lookups: int = 0
    """Iterative lookups run (owner lookups, self lookups, refreshes)."""
    lookup_rpcs: int = 0
    """find_node requests sent by lookups."""
    lookup_deadline_hits: int = 0
    """Lookups that ended at their deadline rather than by converging."""
    owner_cache_hits: int = 0
    """find_owners calls answered from the short-lived cache."""
    owner_lookups: int = 0
    """Owner lookups started (find_owners calls neither cached nor joined to one running)."""
    bootstrap_rounds: int = 0
    """Bootstrap rounds (ping seeds and saved peers, then self lookup)."""
    rebootstraps: int = 0
    """Bootstrap rounds started by maintenance because the table was empty."""
    seed_pin_mismatches: int = 0
    """Seeds that answered with another node id than the one pinned in the seeds list."""
    callback_errors: int = 0
    """Exceptions raised by the on_new_contact callback."""
    maintenance_errors: int = 0
    """Unexpected exceptions in a maintenance round (the task keeps running)."""
    peers_saved: int = 0
    """Times the persisted peer list was written."""


@dataclass(frozen=True, slots=True)
class DhtStatistics:
    """A snapshot of a DHT node's counters and gauges (see DhtCounters for each counter)."""

    datagrams_received: int
    datagrams_sent: int
    rpcs_sent: int
    rpcs_received: int
    replies_received: int
    rpc_timeouts: int
    malformed_datagrams: int
    oversize_datagrams: int
    unknown_rpcs: int
    handler_errors: int
    rate_limited_drops: int
    ip_rate_limited_drops: int
    flood_blocks: int
    amplification_trimmed: int
    amplification_dropped: int
    verification_pings: int
    rejected_ids: int
    invalid_replies: int
    wrong_source_replies: int
    unexpected_replies: int
    store_refused: int
    send_errors: int
    evictions: int
    address_conflicts: int
    weak_ids: int
    ip_cap_refusals: int
    lookups: int
    lookup_rpcs: int
    lookup_deadline_hits: int
    owner_cache_hits: int
    owner_lookups: int
    bootstrap_rounds: int
    rebootstraps: int
    seed_pin_mismatches: int
    callback_errors: int
    maintenance_errors: int
    peers_saved: int
    table_size: int
    """Contacts in the routing table (replacement caches excluded)."""
    outstanding_rpcs: int
    """Requests waiting for a reply."""
    tracked_sources: int
    """Source addresses in the rate limiter's table."""
    receive_buffer_bytes: int
    """SO_RCVBUF as granted by the kernel (0 when not listening)."""

    @classmethod
    def capture(
        cls,
        counters: DhtCounters,
        *,
        table_size: int,
        outstanding_rpcs: int,
        tracked_sources: int,
        receive_buffer_bytes: int,
    ) -> DhtStatistics:
        values = {item.name: getattr(counters, item.name) for item in fields(counters)}
        return cls(
            **values,
            table_size=table_size,
            outstanding_rpcs=outstanding_rpcs,
            tracked_sources=tracked_sources,
            receive_buffer_bytes=receive_buffer_bytes,
        )
