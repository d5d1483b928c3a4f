"""``DhtNode``: an identity-bound Kademlia node with bootstrap, maintenance and owner lookup.

The node owns one UDP socket (through ``WhnodeProtocol``), a maintenance task and every
request task it starts; ``stop()`` ends them all and saves the peer list.

Owner lookup: the owners of a key are the ``count`` live nodes closest to it by XOR distance,
this node included, routing-only nodes excluded. "Live" means the node answered during the
lookup (or is this node). Results are sorted by distance (never bucket-walk order), bounded
by ``config.lookup_deadline``, cached for ``config.owner_cache_seconds`` and shared by
concurrent callers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import random
import socket
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final

from whnode import limits
from whnode.dht.config import DhtConfig
from whnode.dht.contact import (
    NODE_ID_BYTES,
    PUBLIC_KEY_BYTES,
    Contact,
    NodeId,
    PublicKey,
    is_loopback,
    node_id_for,
    xor_distance,
)
from whnode.dht.exceptions import DhtUsageError, PeersFileError
from whnode.dht.lookup import LookupResult, iterative_lookup
from whnode.dht.peers_file import load_peers, save_peers
from whnode.dht.protocol import WhnodeProtocol, ip_group
from whnode.dht.ratelimit import LogLimiter
from whnode.dht.statistics import DhtCounters, DhtStatistics
from whnode.dht.wire import Hello
from whnode.lifecycle import deprecated_alias

__all__ = ["MAX_OWNER_CACHE_ENTRIES", "DhtNode"]

LOG = logging.getLogger(__name__)

MAX_OWNER_CACHE_ENTRIES: Final = limits.MAX_OWNER_CACHE_ENTRIES
"""See whnode.limits."""
REFRESH_WIDTH = 5
"""Bucket refresh lookups after a join stop once this many closest nodes answered: a few
contacts per distance are enough to make every region reachable."""
MAX_REFRESH_LEVELS = 40
"""Deepest distance level refreshed after a join (2**40 nodes is beyond any real network)."""

Address = tuple[str, int]


class DhtNode:
    """One node of the whnode DHT.

    ``node_id`` is SHA-1 of ``public_key`` (32 raw Ed25519 bytes). Call ``listen``, then
    ``bootstrap``; ``stop`` when done. ``on_new_contact`` (settable) is called when a node
    that can own records (not routing-only) enters the routing table: the service hands it
    the records it now owns.
    """

    def __init__(
        self,
        public_key: PublicKey,
        config: DhtConfig | None = None,
        *,
        peers_file: Path | None = None,
        cache_clock: Callable[[], float] | None = None,
    ) -> None:
        """``cache_clock`` times the owner cache (by default the running loop's clock;
        tests move it by hand)."""
        if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_BYTES:
            raise DhtUsageError(f"a public key is {PUBLIC_KEY_BYTES} raw bytes")
        self.public_key = public_key
        self.node_id: NodeId = node_id_for(public_key)
        self.config = config if config is not None else DhtConfig()
        self.peers_file = peers_file
        self._cache_clock = cache_clock
        self.on_new_contact: Callable[[Contact], None] | None = None
        """Called with each owner-capable contact entering the routing table."""
        self._hello = Hello(self.node_id, public_key, self.config.routing_only)
        self._counters = DhtCounters()
        self._protocol: WhnodeProtocol | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._self_contact: Contact | None = None
        self._seeds: list[Address] = []
        self._pins: dict[Address, bytes] = {}
        self._fallback: list[Contact] = []
        self._introducers: list[Contact] = []
        self._level_retry: dict[int, tuple[float, float]] = {}
        self._recalls: dict[bytes, tuple[float, float]] = {}
        self._owner_cache: OrderedDict[tuple[bytes, int], tuple[float, list[Contact]]] = (
            OrderedDict()
        )
        self._owner_lookups: dict[tuple[bytes, int], asyncio.Task[list[Contact]]] = {}
        self._maintenance: asyncio.Task[None] | None = None
        self._random = random.Random()
        self._empty_rounds = 0
        self._last_save = 0.0
        self._stopped = False
        self._log = LogLimiter(LOG, self.config.log_interval)

    # ------------------------------------------------------------------ lifetime
    async def listen(self, host: str, port: int) -> int:
        """Bind the UDP socket (port 0 picks one); returns the bound port.

        Loads the persisted peer list (if any) and starts the maintenance task. Raises
        OSError when the address cannot be bound.
        """
        if self._transport is not None or self._stopped:
            raise DhtUsageError("listen() is called once per DhtNode")
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: WhnodeProtocol(
                self._hello, self.config, self._counters, on_table_add=self._contact_added
            ),
            local_addr=(host, port),
        )
        bound_host, bound_port = transport.get_extra_info("sockname")[:2]
        try:
            self._self_contact = Contact(
                self.node_id,
                self.config.advertise_host or bound_host,
                bound_port,
                routing_only=self.config.routing_only,
            )
        except BaseException:
            transport.close()
            raise
        self._transport = transport
        self._protocol = protocol
        if self.peers_file is not None:
            try:
                self._fallback = await asyncio.to_thread(
                    load_peers, self.peers_file, limit=self.config.max_saved_peers
                )
            except PeersFileError as exc:
                LOG.warning("ignoring the persisted peer list: %s", exc)
        self._fallback = [contact for contact in self._fallback if protocol.reachable(contact)]
        self._maintenance = loop.create_task(self._maintain(), name="dht maintenance")
        LOG.info("DHT node %s listening on %s:%d", self.node_id.hex()[:12], bound_host, bound_port)
        return int(bound_port)

    async def aclose(self) -> None:
        """Save the peer list, end every task, close the socket. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self._maintenance is not None:
            self._maintenance.cancel()
            await asyncio.gather(self._maintenance, return_exceptions=True)
        if self._protocol is not None:
            await self._save_peers()
            await self._protocol.aclose()
        if self._transport is not None:
            self._transport.close()
        self._owner_cache.clear()

    stop = deprecated_alias(aclose, "stop")
    """Deprecated name of :meth:`aclose`, kept for a release."""

    # ------------------------------------------------------------------ properties
    @property
    def port(self) -> int:
        return self.self_contact.port

    @property
    def self_contact(self) -> Contact:
        """This node as others reach it (host from config.advertise_host or the bound one)."""
        if self._self_contact is None:
            raise DhtUsageError("the DHT node is not listening")
        return self._self_contact

    @property
    def routing_only(self) -> bool:
        return self.config.routing_only

    def knows_neighbourhood(self, key: bytes) -> bool:
        """Whether the routing table most likely holds the nodes closest to ``key``: the
        bucket ``key`` falls in has room (Kademlia: a node knows its own neighbourhood, and
        in a network smaller than a bucket, everyone). A lookup then names no one else."""
        return self._protocol is not None and self._protocol.bucket_has_room(key)

    def contacts(self) -> list[Contact]:
        """Every contact in the routing table (routing-only ones carry the flag)."""
        return [] if self._protocol is None else self._protocol.contacts()

    def statistics(self) -> DhtStatistics:
        protocol = self._protocol
        return DhtStatistics.capture(
            self._counters,
            table_size=0 if protocol is None else protocol.table_size(),
            outstanding_rpcs=0 if protocol is None else protocol.outstanding(),
            tracked_sources=0 if protocol is None else protocol.tracked_sources(),
            receive_buffer_bytes=0 if protocol is None else protocol.receive_buffer_bytes,
        )

    # ------------------------------------------------------------------ bootstrap
    async def bootstrap(
        self,
        seeds: Sequence[tuple[str, int]],
        *,
        pins: Mapping[tuple[str, int], bytes] | None = None,
    ) -> int:
        """Join the network through ``seeds`` (host, port) and the persisted peer list.

        ``pins`` maps a seed (host, port), as given in ``seeds``, to the node id it must
        have: a seed that answers with another id is not used to join, is dropped from the
        routing table and is counted (``seed_pin_mismatches``) and logged.

        Each round pings every seed and saved peer in parallel, then looks up this node's own
        id through those that answered. Rounds are retried ``config.bootstrap_attempts``
        times with exponential back-off and jitter. Returns the routing table size; 0 means
        nobody answered (the maintenance task keeps trying, and re-bootstraps whenever the
        table becomes empty). A node without seeds or saved peers returns 0 at once.
        """
        protocol = self._require_protocol()
        self._seeds = [(str(host), int(port)) for host, port in seeds]
        self._pins = {
            (str(host), int(port)): bytes(pin) for (host, port), pin in (pins or {}).items()
        }
        for attempt in range(self.config.bootstrap_attempts):
            if not self._seeds and not self._fallback and not protocol.table_size():
                return 0
            size = await self._bootstrap_round()
            if size:
                self._empty_rounds = 0
                return size
            if attempt + 1 < self.config.bootstrap_attempts:
                await asyncio.sleep(self._backoff(attempt))
        LOG.warning(
            "bootstrap: no answer from %d seeds and %d saved peers; retrying in the background",
            len(self._seeds),
            len(self._fallback),
        )
        return protocol.table_size()

    async def _bootstrap_round(self) -> int:
        """Ping seeds and saved peers, look up our own id, then refresh the farther buckets.

        The refresh (Kademlia paper, section 2.3) looks up a random id at each distance
        level, asking the seeds first: without it, nodes that join at the same moment only
        ever meet their own neighbourhood, and lookups started elsewhere cannot find them.
        """
        protocol = self._require_protocol()
        self._counters.bootstrap_rounds += 1
        own = self.self_contact.address
        seed_addresses: list[Address] = []
        pinned: dict[Address, bytes] = {}
        for seed in self._seeds:
            resolved = await self._resolve([seed])
            seed_addresses.extend(resolved)
            pin = self._pins.get(seed)
            if pin is not None:
                pinned.update((address, pin) for address in resolved)
        addresses = [*seed_addresses, *(contact.address for contact in self._fallback)]
        unique = [address for address in dict.fromkeys(addresses) if address != own]
        answers = await asyncio.gather(*(protocol.ping_address(address) for address in unique))
        responders = [contact for contact in answers if contact is not None]
        impostors = [
            contact
            for contact in responders
            if contact.address in pinned and contact.node_id != pinned[contact.address]
        ]
        for contact in impostors:
            self._counters.seed_pin_mismatches += 1
            protocol.forget(contact.node_id)
            self._log.log(
                asyncio.get_running_loop().time(),
                "pin",
                logging.WARNING,
                "seed %s:%d answered as node %s, not the pinned %s: not used",
                contact.address[0],
                contact.address[1],
                contact.node_id.hex(),
                pinned[contact.address].hex(),
            )
        responders = [contact for contact in responders if contact not in impostors]
        if not responders and not protocol.table_size():
            return 0
        seeds = set(seed_addresses)
        self._introducers = [c for c in responders if c.address in seeds] or responders
        found = await self._lookup(
            self.node_id,
            width=self.config.ksize,
            start=responders,
            first=self._introducers_for(self.node_id),
        )
        if found.answered:
            await self._refresh_levels()
        return protocol.table_size()

    def _introducers_for(self, target: bytes) -> list[Contact]:
        """The ``alpha`` seeds (or first peers) that answered, closest to ``target`` first."""
        ordered = sorted(self._introducers, key=lambda contact: contact.distance_to(target))
        return ordered[: self.config.alpha]

    async def _refresh_levels(self) -> None:
        """Look up a random id at each distance level, farthest first, asking the seeds first,
        until two levels in a row turn out empty: about log2(network size) + 2 lookups."""
        empty_levels = 0
        for bit in range(MAX_REFRESH_LEVELS):
            if empty_levels >= 2:
                break
            empty_levels = 0 if await self._refresh_level(bit) else empty_levels + 1

    async def _refresh_level(self, bit: int) -> bool:
        """One lookup in the region sharing exactly ``bit`` leading bits with this node;
        whether a node of that region answered."""
        target = _random_id_at(self.node_id, bit)
        result = await self._lookup(
            target, width=REFRESH_WIDTH, first=self._introducers_for(target)
        )
        return any(_shared_prefix_bits(self.node_id, c.node_id) == bit for c in result.answered)

    async def _repair_levels(self, now: float) -> None:
        """Refresh the distance levels that have no contact although deeper ones do.

        After a crowded join some lookups time out and a whole region can stay unknown; this
        finds it again. At most one level is refreshed per round, and an empty level is
        retried with a doubling delay (a small network may simply have nobody there), so a
        healthy table costs no lookup at all.
        """
        protocol = self._require_protocol()
        counts = protocol.level_counts()
        if not counts:
            return
        for bit in range(min(max(counts), MAX_REFRESH_LEVELS)):
            if counts.get(bit):
                self._level_retry.pop(bit, None)
                continue
            due, delay = self._level_retry.get(bit, (0.0, self.config.maintenance_interval))
            if now < due:
                continue
            if not await self._refresh_level(bit):
                delay = min(delay * 2, self.config.refresh_interval)
                self._level_retry[bit] = (now + delay, delay)
            return

    async def _resolve(self, seeds: Sequence[Address]) -> list[Address]:
        """IP literals as they are; host names through getaddrinfo (failures logged)."""
        protocol = self._require_protocol()
        loop = asyncio.get_running_loop()
        addresses: list[Address] = []
        for host, port in seeds:
            try:
                addresses.append((str(ipaddress.ip_address(host)), port))
                continue
            except ValueError:
                pass
            family = protocol.family
            try:
                infos = await loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM)
            except OSError as exc:
                self._log.log(
                    loop.time(), "resolve", logging.WARNING, "cannot resolve seed %s: %s", host, exc
                )
                continue
            for info in infos:
                addresses.append((str(info[4][0]), int(info[4][1])))
        return addresses

    def _backoff(self, attempt: int) -> float:
        ceiling = min(
            self.config.bootstrap_backoff_max, self.config.bootstrap_backoff * 2.0**attempt
        )
        return ceiling / 2 + self._random.uniform(0, ceiling / 2)

    # ------------------------------------------------------------------ lookups
    async def find_owners(self, key: bytes, count: int, *, fresh: bool = False) -> list[Contact]:
        """The ``count`` live owner-capable nodes closest to ``key``, closest first.

        Includes this node when it is among them (and not routing-only). Bounded by
        ``config.lookup_deadline``; never raises for a peer's misbehaviour. With an empty
        routing table the answer is this node alone (or nothing for a routing-only node).
        Answers are cached briefly; ``fresh`` skips the cached answer (republish uses it, so
        that records reach the owners of now, not those of a few seconds ago).
        """
        self._check_key(key)
        if count < 1:
            raise DhtUsageError("count must be at least 1")
        protocol = self._require_protocol()
        cache_key = (bytes(key), count)
        now = self._cache_now()
        cached = None if fresh else self._owner_cache.get(cache_key)
        if cached is not None:
            if cached[0] > now and not any(protocol.is_suspect(c.node_id) for c in cached[1]):
                self._counters.owner_cache_hits += 1
                return list(cached[1])
            del self._owner_cache[cache_key]  # expired, or an owner in it failed since
        task = self._owner_lookups.get(cache_key)
        if task is None:
            self._counters.owner_lookups += 1
            task = protocol.spawn(self._owner_lookup(cache_key[0], count))
            self._owner_lookups[cache_key] = task
            task.add_done_callback(lambda _: self._owner_lookups.pop(cache_key, None))
        try:
            return list(await asyncio.shield(task))
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                raise DhtUsageError("the DHT node stopped during the lookup") from None
            raise

    def _cache_now(self) -> float:
        if self._cache_clock is not None:
            return self._cache_clock()
        return asyncio.get_running_loop().time()

    async def _owner_lookup(self, key: bytes, count: int) -> list[Contact]:
        width = max(count, self.config.stop_width)
        result = await self._lookup(key, width=width, wanted=_owner_capable)
        owners = [contact for contact in result.answered if not contact.routing_only]
        if not self.config.routing_only:
            owners.append(self.self_contact)
        owners.sort(key=lambda contact: contact.distance_to(key))
        owners = self.cap_per_ip(owners)[:count]
        if self.config.owner_cache_seconds > 0 and not self._stopped:
            expires = self._cache_now() + self.config.owner_cache_seconds
            self._owner_cache[(key, count)] = (expires, owners)
            while len(self._owner_cache) > MAX_OWNER_CACHE_ENTRIES:
                self._owner_cache.popitem(last=False)
        return list(owners)

    def cap_per_ip(self, owners: Sequence[Contact]) -> list[Contact]:
        """At most config.owner_ids_per_ip owners per IP address (IPv6: /64), the closest
        kept (``owners`` closest first): one host with many ids holds few places in any
        owner set. Owner lookups apply it, and so do owner lists merged from other sources
        (whnode.service.requester.merge_owners)."""
        cap = self.config.owner_ids_per_ip
        per_ip: dict[str, int] = {}
        kept = []
        for contact in owners:
            if not (self.config.id_caps_exempt_loopback and is_loopback(contact.host)):
                group = ip_group(contact.host)
                if per_ip.get(group, 0) >= cap:
                    continue
                per_ip[group] = per_ip.get(group, 0) + 1
            kept.append(contact)
        return kept

    async def find_closest(self, key: bytes, count: int) -> list[Contact]:
        """The ``count`` live nodes closest to ``key`` (routing-only ones included, this node
        excluded), closest first; a plain Kademlia node lookup, never cached."""
        self._check_key(key)
        if count < 1:
            raise DhtUsageError("count must be at least 1")
        result = await self._lookup(key, width=max(count, self.config.stop_width))
        return result.answered[:count]

    def note_unreachable(self, contact: Contact) -> None:
        """Tell the DHT that ``contact`` did not answer (e.g. over HTTP): it counts as a miss,
        and cached owner lists naming it are dropped."""
        if self._protocol is not None:
            self._protocol.record_miss(contact.node_id)
        for cache_key, (_, owners) in list(self._owner_cache.items()):
            if any(owner.node_id == contact.node_id for owner in owners):
                del self._owner_cache[cache_key]

    async def _lookup(
        self,
        target: bytes,
        *,
        width: int,
        start: list[Contact] | None = None,
        first: list[Contact] | None = None,
        wanted: Callable[[Contact], bool] | None = None,
    ) -> LookupResult:
        result = await iterative_lookup(
            self._require_protocol(),
            target,
            width=width,
            alpha=self.config.alpha,
            deadline=self.config.lookup_deadline,
            stall_timeout=self.config.stall_timeout,
            start=start,
            first=first,
            wanted=wanted,
        )
        self._counters.lookups += 1
        self._counters.lookup_rpcs += result.rpcs
        if not result.converged:
            self._counters.lookup_deadline_hits += 1
        return result

    # ------------------------------------------------------------------ maintenance
    async def _maintain(self) -> None:
        """Re-bootstrap an empty table (back-off, jitter), ping suspects, repair empty levels,
        refresh stale buckets, save peers."""
        loop = asyncio.get_running_loop()
        while True:
            protocol = self._require_protocol()
            empty = protocol.table_size() == 0 and bool(self._seeds or self._fallback)
            if empty:
                delay = self._backoff(self._empty_rounds)
            else:
                delay = self.config.maintenance_interval * self._random.uniform(0.75, 1.0)
            await asyncio.sleep(delay)
            try:
                await self._maintenance_round(loop.time())
            except Exception as exc:  # keep maintaining; the failure is counted and logged
                self._counters.maintenance_errors += 1
                self._log.log(
                    loop.time(),
                    "maintenance",
                    logging.ERROR,
                    "DHT maintenance round failed",
                    exc_info=exc,
                )

    async def _maintenance_round(self, now: float) -> None:
        protocol = self._require_protocol()
        if protocol.table_size() == 0:
            if self._seeds or self._fallback:
                self._counters.rebootstraps += 1
                if await self._bootstrap_round():
                    self._empty_rounds = 0
                    LOG.info("DHT re-bootstrapped: %d contacts", protocol.table_size())
                else:
                    self._empty_rounds += 1
            return
        # Settle suspects: a live one is cleared, a dead one moves towards eviction.
        suspects = protocol.suspect_contacts()[: 2 * self.config.alpha]
        # Liveness: contacts silent for a while are pinged (a crashed node leaves the table,
        # and our find_node replies, even when no lookup of ours meets it).
        chosen = {contact.node_id for contact in suspects}
        silent = [
            contact
            for contact in protocol.silent_contacts(now, self.config.liveness_interval)
            if contact.node_id not in chosen
        ][: self.config.liveness_pings]
        await asyncio.gather(
            *(protocol.request_ping(contact) for contact in [*suspects, *silent]),
            *(protocol.ping_address(contact.address) for contact in self._recall_due(now)),
        )
        await self._repair_levels(now)
        for target in protocol.stale_bucket_ids(now):
            await self._lookup(target, width=self.config.ksize)
        if now - self._last_save >= self.config.peers_save_interval:
            await self._save_peers()

    def _recall_due(self, now: float) -> list[Contact]:
        """Evicted contacts to ping this round: each one first a maintenance interval after
        its eviction, then with a doubling delay up to ``recall_interval_max``, for
        ``recall_seconds``; at most ``liveness_pings`` per round. One that answers is back
        in the table (and, answering our ping, it puts us back in its own)."""
        protocol = self._require_protocol()
        due: list[Contact] = []
        for node_id, (contact, evicted_at) in list(protocol.departed.items()):
            if now - evicted_at > self.config.recall_seconds:
                del protocol.departed[node_id]
                self._recalls.pop(node_id, None)
                continue
            first = self.config.maintenance_interval
            next_at, delay = self._recalls.get(node_id, (evicted_at + first, first))
            if now < next_at or len(due) >= self.config.liveness_pings:
                self._recalls[node_id] = (next_at, delay)
                continue
            delay = min(delay * 2, self.config.recall_interval_max)
            self._recalls[node_id] = (now + delay, delay)
            due.append(contact)
        for node_id in [n for n in self._recalls if n not in protocol.departed]:
            del self._recalls[node_id]
        return due

    def _peers_to_save(self) -> list[Contact]:
        """Up to max_saved_peers contacts, most recently seen first, spread over buckets."""
        protocol = self._protocol
        if protocol is None:
            return []
        columns = [list(reversed(bucket.get_nodes())) for bucket in protocol.router.buckets]
        chosen: list[Contact] = []
        row = 0
        while len(chosen) < self.config.max_saved_peers and any(row < len(c) for c in columns):
            for column in columns:
                if row < len(column) and len(chosen) < self.config.max_saved_peers:
                    chosen.append(column[row].contact)
            row += 1
        return chosen

    async def _save_peers(self) -> None:
        protocol = self._protocol
        if protocol is None or protocol.table_size() == 0:
            return  # never overwrite a useful list with an empty one
        peers = self._peers_to_save()
        self._fallback = peers
        self._last_save = asyncio.get_running_loop().time()
        if self.peers_file is None:
            return
        try:
            await asyncio.to_thread(save_peers, self.peers_file, self.node_id, peers)
        except OSError as exc:
            LOG.warning("cannot save the peer list to %s: %s", self.peers_file, exc)
            return
        self._counters.peers_saved += 1

    # ------------------------------------------------------------------ helpers
    def _contact_added(self, contact: Contact) -> None:
        if contact.routing_only or self.on_new_contact is None:
            return
        try:
            self.on_new_contact(contact)
        except Exception as exc:  # the callback's bug must not break datagram handling
            self._counters.callback_errors += 1
            loop = asyncio.get_running_loop()
            self._log.log(
                loop.time(),
                "callback",
                logging.ERROR,
                "on_new_contact failed for %s",
                contact,
                exc_info=exc,
            )

    def _require_protocol(self) -> WhnodeProtocol:
        if self._protocol is None:
            raise DhtUsageError("the DHT node is not listening")
        if self._stopped:
            raise DhtUsageError("the DHT node is stopped")
        return self._protocol

    @staticmethod
    def _check_key(key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != NODE_ID_BYTES:
            raise DhtUsageError(f"a DHT key is {NODE_ID_BYTES} bytes")

    def distance_to(self, key: bytes) -> int:
        """XOR distance from this node's id to ``key``."""
        return xor_distance(self.node_id, key)


def _owner_capable(contact: Contact) -> bool:
    return not contact.routing_only


def _shared_prefix_bits(first: bytes, second: bytes) -> int:
    return NODE_ID_BYTES * 8 - xor_distance(first, second).bit_length()


def _random_id_at(node_id: bytes, bit: int) -> bytes:
    """A random id sharing ``node_id``'s first ``bit`` bits and differing at the next one."""
    total = NODE_ID_BYTES * 8
    own = int.from_bytes(node_id, "big")
    prefix = (own >> (total - bit)) << (total - bit) if bit else 0
    flipped = (~own) & (1 << (total - bit - 1))
    suffix = int.from_bytes(os.urandom(NODE_ID_BYTES), "big") & ((1 << (total - bit - 1)) - 1)
    return (prefix | flipped | suffix).to_bytes(NODE_ID_BYTES, "big")
