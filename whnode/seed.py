"""What only a seed does: a seed is a :class:`whnode.Node` with ``node.routing_only``.

``whnode seed`` (and ``whnode run --set node.routing_only=true``) runs the node daemon with
``node.routing_only``. Such a node binds the same UDP and TCP port, joins and keeps the DHT
routing table, persists its peer table (``peers.json``) and serves ``/healthz``, ``/readyz``,
``/metrics``, ``/v1/node`` and ``/openapi.json`` through the node's own HTTP server and
metrics registry. It opens no store, builds no read-through service, calls no upstream API,
runs no parse pool and serves no node-to-node routes; every menu route
(``/v1/menus/...``, ``/v1/search``, ``/v1/dispensaries``) answers a 404 problem document
saying that the node routes only. Its DHT layer is never chosen as the owner of a record.

This module holds the rest, :class:`SeedRole`, which the node builds when it routes only:

- the DHT configuration (:func:`seed_dht_config`): routing only, the ``[seed]`` datagram
  limits (tighter than a node's), the ``[seed]`` peer-table settings;
- the health rule (:meth:`SeedRole.health`): the UDP socket must be up, and the routing
  table must be non-empty, except during the first ``seed.health_grace`` seconds (60 by
  default) after start as long as no peer has ever been known. A fresh seed of a new network
  is healthy for a minute while the first nodes arrive; a seed that had peers and lost them
  all, or that found none within the grace period, is unhealthy. ``/healthz`` carries
  ``reason``, ``role``, ``node_id``, ``peers`` and ``uptime_seconds`` (also in its 503);
- pinned peer seeds (``node.seeds`` lines with a node id): watched every second, a pinned
  address answering with another id is logged once and counted in
  ``whnode_seed_pin_mismatches``; ``whnode_seed_contacts{kind}`` counts contacts by kind;
- a stats line every ``seed.stats_interval`` seconds (peers, RPCs answered and sent,
  datagrams dropped), with the same figures in a ``seed_stats`` field of JSON logs;
- the seeds line logged at start (the line other operators put in their seeds lists).

The bootstrap runs in the background (a seed serves before any other seed answers), through
``node.seeds`` and ``node.seeds_file`` and the saved peers. HTTP requests are limited per
client IP by ``seed.http_requests_per_second`` and ``seed.http_burst``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from whnode.config import Config
from whnode.dht import Contact, DhtConfig, DhtNode, DhtStatistics, NodeId
from whnode.errors import ConfigError
from whnode.seeds import Seed, configured_seeds, format_seed

__all__ = [
    "DEFAULT_DATA_DIR",
    "PEERS_FILE_NAME",
    "ROUTING_ONLY_DETAIL",
    "Health",
    "SeedRole",
    "seed_dht_config",
]

LOG = logging.getLogger(__name__)

WATCH_INTERVAL: Final = 1.0
"""Seconds between two looks at the routing table (for the health rule and pin checks)."""
DEFAULT_DATA_DIR: Final = Path("./whnode-seed-data")
"""Default data directory of ``whnode seed`` (when neither ``--data-dir`` nor
``WHNODE_NODE_DATA_DIR`` names one): apart from a node's (./whnode-data), so the two never
share a key."""
PEERS_FILE_NAME: Final = "peers.json"
"""The persisted peer table, inside the data directory."""
ROUTING_ONLY_DETAIL: Final = (
    "this node routes only (a seed): it holds and serves no menus; ask a full node"
)
"""The detail of the 404 problem a routing-only node answers every menu route with."""


def seed_dht_config(config: Config) -> DhtConfig:
    """The routing-only DHT configuration of a seed built from ``config``."""
    seed = config.seed
    return DhtConfig.from_config(
        config,
        routing_only=True,
        owner_cache_seconds=0.0,
        max_saved_peers=seed.max_saved_peers,
        peers_save_interval=seed.peers_save_interval,
        datagrams_per_source_per_second=seed.datagrams_per_source_per_second,
        datagram_burst_per_source=seed.datagram_burst_per_source,
        datagrams_per_ip_per_second=seed.datagrams_per_ip_per_second,
        datagram_burst_per_ip=seed.datagram_burst_per_ip,
    )


@dataclass(frozen=True, slots=True)
class Health:
    """The seed's health (``/healthz``)."""

    healthy: bool
    reason: str
    """Why, in a few words (``"12 peers"``, ``"routing table empty"``, ...)."""


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


class SeedRole:
    """The seed-only part of a routing-only node: health rule, pins, stats line, metrics.

    The node calls :meth:`start` once its DHT socket is bound and :meth:`aclose` when it
    stops; :meth:`health` is its ``/healthz`` rule. ``clock`` is monotonic seconds.
    """

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.peers: tuple[Seed, ...] = ()
        """The other seeds joined (``node.seeds`` and ``node.seeds_file``; read at start)."""
        self._clock = clock
        self._dht: DhtNode | None = None
        self._listening: Callable[[], bool] = lambda: False
        self._tasks: list[asyncio.Task[None]] = []
        self._started_at = 0.0
        self._peer_seen = False
        self._pinned: dict[tuple[str, int], NodeId] = {}
        self._mismatches: dict[tuple[str, int], NodeId] = {}
        self.port = 0

    # ------------------------------------------------------------------ lifetime
    def begin(self) -> None:
        """The grace period counts from here (called once the identity is loaded)."""
        self._started_at = self._clock()

    async def start(self, dht: DhtNode, port: int, listening: Callable[[], bool]) -> None:
        """Read the other seeds, resolve pins, start bootstrap, stats and watch tasks."""
        self._dht, self.port, self._listening = dht, port, listening
        if not self._started_at:
            self.begin()
        node = self.config.node
        self.peers = tuple(await asyncio.to_thread(configured_seeds, node.seeds, node.seeds_file))
        self._pinned = await self._resolve_pins()
        self._spawn(self._bootstrap(), "seed bootstrap")
        self._spawn(self._stats_loop(), "seed stats")
        self._spawn(self._watch_loop(), "seed watch")
        LOG.info(
            "seed %s serving UDP+TCP %s:%d (routing only); seeds line: %s",
            dht.node_id.hex(),
            node.host,
            port,
            self.seeds_line(),
        )

    async def aclose(self) -> None:
        """End the background tasks (the node closes the DHT, which saves the peer table)."""
        if self._dht is not None and self._tasks:
            LOG.info("seed stopping: saving the peer table (%d peers)", len(self.contacts()))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def _spawn(self, coroutine: Awaitable[None], name: str) -> None:
        async def guarded() -> None:
            try:
                await coroutine
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug in a background task: say so, keep the seed serving
                LOG.exception("%s failed", name)

        self._tasks.append(asyncio.create_task(guarded(), name=name))

    # ------------------------------------------------------------------ views
    def uptime(self) -> float:
        return self._clock() - self._started_at if self._started_at else 0.0

    def contacts(self) -> list[Contact]:
        return self._dht.contacts() if self._dht is not None else []

    def pin_mismatches(self) -> dict[tuple[str, int], NodeId]:
        """Pinned peer addresses that answer with another node id (address → id seen)."""
        return dict(self._mismatches)

    def seeds_line(self) -> str:
        """The line other operators put in their seeds list to pin this seed."""
        node = self.config.node
        node_id = self._dht.node_id if self._dht is not None else NodeId(bytes(20))
        host = self.config.seed.public_address or node.advertise_host or node.host
        if _is_wildcard(host):
            return f"PUBLIC-ADDRESS:{self.port} {node_id.hex()}"
        try:
            return format_seed(Seed(host, self.port, node_id))
        except ConfigError:
            return f"{host}:{self.port} {node_id.hex()}"

    def health(self) -> Health:
        """The /healthz rule (module docstring): socket up, and peers known after the grace."""
        if self._dht is None or not self._listening():
            return Health(False, "UDP socket not listening")
        size = len(self._dht.contacts())
        if size:
            self._peer_seen = True
            return Health(True, f"{size} peer{'s' if size != 1 else ''}")
        if self._peer_seen:
            return Health(False, "routing table empty (every known peer was lost)")
        grace = self.config.seed.health_grace
        if self.uptime() < grace:
            return Health(True, "starting: no peer yet (within the grace period)")
        return Health(False, f"no peer within {grace:g} s of start")

    def health_members(self) -> dict[str, object]:
        """The members ``/healthz`` adds to its answer (200 or 503)."""
        return {
            "reason": self.health().reason,
            "role": "seed",
            "node_id": self._dht.node_id.hex() if self._dht is not None else "",
            "peers": len(self.contacts()),
            "uptime_seconds": round(self.uptime(), 1),
        }

    def collector(self) -> Collector:
        """``whnode_seed_contacts{kind}`` and ``whnode_seed_pin_mismatches``, read at scrape."""
        return _SeedCollector(self)

    # ------------------------------------------------------------------ background tasks
    async def _bootstrap(self) -> None:
        """Join the other seeds; also pings the persisted peers back into the table."""
        assert self._dht is not None
        size = await self._dht.bootstrap([peer.address for peer in self.peers])
        LOG.info("seed bootstrap done: %d contacts", size)
        self.check_pins()

    async def _resolve_pins(self) -> dict[tuple[str, int], NodeId]:
        """IP addresses of the pinned peer seeds (host names resolved once, at start)."""
        loop = asyncio.get_running_loop()
        pins: dict[tuple[str, int], NodeId] = {}
        for peer in self.peers:
            if peer.node_id is None:
                continue
            try:
                pins[(str(ipaddress.ip_address(peer.host)), peer.port)] = peer.node_id
                continue
            except ValueError:
                pass
            try:
                infos = await loop.getaddrinfo(peer.host, peer.port, type=socket.SOCK_DGRAM)
            except OSError as exc:
                LOG.warning("cannot resolve pinned seed %s: %s", peer.host, exc)
                continue
            for info in infos:
                pins[(str(info[4][0]), peer.port)] = peer.node_id
        return pins

    def check_pins(self) -> None:
        """Compare the contacts at pinned addresses with their pins; log new mismatches."""
        if not self._pinned:
            return
        seen: dict[tuple[str, int], NodeId] = {}
        for contact in self.contacts():
            pinned = self._pinned.get(contact.address)
            if pinned is not None and contact.node_id != pinned:
                seen[contact.address] = contact.node_id
        for address, node_id in seen.items():
            if self._mismatches.get(address) != node_id:
                LOG.warning(
                    "pinned seed %s:%d answers as node %s, not the pinned %s",
                    address[0],
                    address[1],
                    node_id.hex(),
                    self._pinned[address].hex(),
                )
        self._mismatches = seen

    async def _watch_loop(self) -> None:
        while True:
            self.health()  # notes that a peer has been seen
            self.check_pins()
            await asyncio.sleep(WATCH_INTERVAL)

    async def _stats_loop(self) -> None:
        assert self._dht is not None
        previous = self._dht.statistics()
        while True:
            await asyncio.sleep(self.config.seed.stats_interval)
            current = self._dht.statistics()
            self.log_stats(previous, current)
            previous = current

    def log_stats(self, previous: DhtStatistics, current: DhtStatistics) -> None:
        """Log one stats line: the figures of ``current`` and its change since ``previous``."""

        def delta(name: str) -> int:
            return int(getattr(current, name)) - int(getattr(previous, name))

        drop_fields = (
            "rate_limited_drops",
            "malformed_datagrams",
            "oversize_datagrams",
            "rejected_ids",
        )
        fields = {
            "peers": current.table_size,
            "rpcs_received": delta("rpcs_received"),
            "rpcs_sent": delta("rpcs_sent"),
            "rpc_timeouts": delta("rpc_timeouts"),
            "drops": sum(delta(name) for name in drop_fields),
            "rate_limited": delta("rate_limited_drops"),
            "tracked_sources": current.tracked_sources,
        }
        health = self.health()
        LOG.info(
            "seed stats: %d peers, %d RPCs answered, %d sent, %d timeouts, %d datagrams dropped "
            "(%d rate-limited) in the last %g s; %s",
            fields["peers"],
            fields["rpcs_received"],
            fields["rpcs_sent"],
            fields["rpc_timeouts"],
            fields["drops"],
            fields["rate_limited"],
            self.config.seed.stats_interval,
            "healthy" if health.healthy else f"UNHEALTHY: {health.reason}",
            extra={"seed_stats": fields},
        )


class _SeedCollector(Collector):
    """Reads the seed's contacts and pin mismatches at scrape time."""

    def __init__(self, seed: SeedRole) -> None:
        self._seed = seed

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        seed = self._seed
        contacts = GaugeMetricFamily(
            "whnode_seed_contacts",
            "Contacts in the seed's routing table, by kind (node: can own records; seed: "
            "routing only).",
            labels=["kind"],
        )
        known = seed.contacts()
        routing_only = sum(1 for contact in known if contact.routing_only)
        contacts.add_metric(["node"], len(known) - routing_only)
        contacts.add_metric(["seed"], routing_only)
        mismatches = GaugeMetricFamily(
            "whnode_seed_pin_mismatches",
            "Pinned peer seeds currently answering with another node id.",
            value=len(seed.pin_mismatches()),
        )
        return [contacts, mismatches]
