"""The seed program: a routing-only DHT peer that new nodes bootstrap from.

A seed is a :class:`whnode.dht.DhtNode` with ``routing_only=True``: it answers ``ping`` and
``find_node``, keeps a routing table, and is never chosen as the owner of a record. It holds
no store, calls no upstream API and runs no parse pool. Beside the UDP socket it serves a tiny
HTTP listener on the same port number over TCP:

``GET /healthz``
    A node's shape: 200 ``{"status": "ok", ...}`` while the seed is useful, else a 503
    problem document (``node-not-ready``) whose ``detail`` gives the reason; both carry
    ``role``, ``node_id``, ``peers`` and ``uptime_seconds``. The rule
    (:meth:`SeedServer.health`): the UDP socket must be up, and the routing table must be
    non-empty, except during the first ``health_grace`` seconds (60 by default) after start
    as long as no peer has ever been known. A fresh seed of a new network is healthy for a
    minute while the first nodes arrive; a seed that had peers and lost them all, or that
    found none within the grace period, is unhealthy.
``GET /metrics``
    Prometheus text from a registry of the seed's own (never the global one): the ``dht``
    figures of ``whnode.api.metrics.FIGURES`` under the names a node uses
    (``whnode_dht_rpcs_received_total``, ``whnode_dht_table_size``), the HTTP request
    metrics (``whnode_http_requests_total``, ``whnode_http_problems_total``),
    ``whnode_node_healthy``, ``whnode_node_info{role="seed"}``, ``process_*``, and two of
    its own: ``whnode_seed_contacts{kind}`` and ``whnode_seed_pin_mismatches``.

Any other path answers a 404 problem document (``application/problem+json``), as a node does.

Abuse limits: the DHT layer rate-limits datagrams per source address (configured here by
``datagrams_per_source_per_second`` and ``datagram_burst_per_source``, tighter than a node's
defaults) and per IP address, all source ports together (``datagrams_per_ip_per_second``,
``datagram_burst_per_ip``; IPv6 by /64; loopback exempt), and drops oversize datagrams;
the HTTP listener rate-limits requests per client IP (429 with ``Retry-After``), accepts no
request bodies and only GET/HEAD.

Every ``stats_interval`` seconds (60 by default) one line is logged: peers in the table, RPCs
answered and sent, and datagrams dropped since the previous line.

The peer table is persisted (plain JSON, ``peers.json`` in the data directory, written by the
DHT layer every ``peers_save_interval`` seconds and on stop) and pinged back into the table
at the next start, so a restarted seed is useful before any node contacts it. The identity
key lives in the same directory: a seed keeps its node id across restarts, so nodes can pin it
in their seeds list (the seed logs its own line at start-up).

Entry points: :func:`run_seed` (serve until an event is set), :class:`SeedServer` (async
context manager, for tests and embedding) and :func:`main` (``whnode seed ...``: argv in,
exit code out; SIGTERM and SIGINT stop cleanly and save the peer table).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import ipaddress
import logging
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from whnode.api.exceptions import ClientRateLimited, NodeNotReady
from whnode.api.metrics import ApiMetrics
from whnode.api.problems import problem_for, problem_response
from whnode.config import DEFAULT_PORT, LogConfig, LogFormat
from whnode.datadir import DataDirLock, prepare_data_dir
from whnode.dht import Contact, DhtConfig, DhtNode, DhtStatistics, NodeId, PublicKey
from whnode.dht.ratelimit import SourceRateLimiter
from whnode.errors import ConfigError, ListenError, RemoteError, UsageError, WhnodeError, describe
from whnode.sdnotify import Notifier
from whnode.seeds import Seed, format_seed, load_seeds, parse_seeds

__all__ = [
    "DATAGRAMS_PER_SOURCE_PER_SECOND",
    "DATAGRAM_BURST_PER_SOURCE",
    "DEFAULT_DATA_DIR",
    "HEALTH_GRACE_SECONDS",
    "HTTP_BURST_PER_IP",
    "HTTP_REQUESTS_PER_IP_PER_SECOND",
    "PEERS_FILE_NAME",
    "STATS_INTERVAL_SECONDS",
    "Health",
    "SeedConfig",
    "SeedServer",
    "build_parser",
    "config_from_args",
    "main",
    "run_seed",
]

LOG = logging.getLogger(__name__)

# --- limits and defaults of the seed program -----------------------------------------------
DATAGRAMS_PER_SOURCE_PER_SECOND: Final = 25.0
"""Datagram rate a seed allows from one source address (a joining node needs a few)."""
DATAGRAM_BURST_PER_SOURCE: Final = 100
"""Datagram burst a seed allows from one source address (one bootstrap lookup fits)."""
DATAGRAMS_PER_IP_PER_SECOND: Final = 100.0
"""Datagram rate a seed allows from one IP address (IPv6: one /64), all source ports
together: a few nodes may join from behind one NAT address; port hopping buys nothing."""
DATAGRAM_BURST_PER_IP: Final = 400
"""Datagram burst a seed allows from one IP address (IPv6: one /64)."""
HTTP_REQUESTS_PER_IP_PER_SECOND: Final = 5.0
"""HTTP requests per second a seed allows from one client IP (health checks, scrapes)."""
HTTP_BURST_PER_IP: Final = 30
"""HTTP request burst a seed allows from one client IP."""
HTTP_TRACKED_CLIENTS: Final = 1024
"""Most client IPs tracked by the HTTP rate limiter (see SourceRateLimiter on overflow)."""
HTTP_MAX_LINE_BYTES: Final = 2048
"""Longest HTTP request line or header line accepted by the seed's listener."""
HTTP_MAX_BODY_BYTES: Final = 1024
"""Largest HTTP request body accepted (the seed's endpoints take none)."""
SEED_MAX_SAVED_PEERS: Final = 256
"""Most contacts a seed writes to its persisted peer table."""
SEED_PEERS_SAVE_INTERVAL: Final = 60.0
"""Seconds between saves of a seed's peer table (also saved on stop)."""
HEALTH_GRACE_SECONDS: Final = 60.0
"""Seconds after start during which an empty table is healthy, if no peer was ever known."""
STATS_INTERVAL_SECONDS: Final = 60.0
"""Seconds between two stats lines in the log."""
BIND_ATTEMPTS: Final = 30
"""Attempts at finding a port number free for both UDP and TCP when the port is 0."""
WATCH_INTERVAL: Final = 1.0
"""Seconds between two looks at the routing table (for the health rule and pin checks)."""

DEFAULT_DATA_DIR: Final = Path("./whnode-seed-data")
"""Default data directory: apart from a node's (./whnode-data), so the two never share a key."""
PEERS_FILE_NAME: Final = "peers.json"
"""The persisted peer table, inside the data directory."""

_HTTP_PATHS: Final = ("/healthz", "/metrics")
_HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
UNMATCHED: Final = "unmatched"
"""Route label of requests to any other path (as on a node)."""
MAX_INSTANCE_CHARS: Final = 256


@dataclass(frozen=True, slots=True)
class SeedConfig:
    """How a seed listens, whom it knows, and how it protects itself."""

    data_dir: Path = DEFAULT_DATA_DIR
    """Directory holding the seed's identity key (``identity.key``) and ``peers.json``; created
    with mode 0700 if missing."""
    host: str = "127.0.0.1"
    """Address to bind the UDP socket and the HTTP listener to; ``0.0.0.0`` (or ``::``) to
    serve the internet."""
    port: int = DEFAULT_PORT
    """Port number for both UDP (DHT) and TCP (HTTP); 0 picks a number free for both."""
    advertise_host: str | None = None
    """Public address of the seed, used only in the seeds line it logs at start-up (default:
    ``host`` unless that is a wildcard address)."""
    peers: tuple[Seed, ...] = ()
    """Other seeds to join (several independent seeds should know each other); pinned node
    ids are checked against what answers at those addresses."""
    stats_interval: float = STATS_INTERVAL_SECONDS
    """Seconds between two stats lines in the log (peers, RPCs, drops)."""
    health_grace: float = HEALTH_GRACE_SECONDS
    """Seconds after start during which an empty routing table still counts as healthy, as
    long as no peer has ever been known."""
    datagrams_per_source_per_second: float = DATAGRAMS_PER_SOURCE_PER_SECOND
    """Token-bucket rate for datagrams from one source address (the DHT layer's per-source
    limiter); excess datagrams are dropped unread and counted."""
    datagram_burst_per_source: int = DATAGRAM_BURST_PER_SOURCE
    """Token-bucket burst for datagrams from one source address."""
    datagrams_per_ip_per_second: float = DATAGRAMS_PER_IP_PER_SECOND
    """Token-bucket rate for datagrams from one IP address (IPv6: one /64), whatever their
    source port; loopback sources are exempt (every local process shares 127.0.0.1)."""
    datagram_burst_per_ip: int = DATAGRAM_BURST_PER_IP
    """Token-bucket burst for datagrams from one IP address."""
    http_requests_per_second: float = HTTP_REQUESTS_PER_IP_PER_SECOND
    """Token-bucket rate for HTTP requests from one client IP; excess gets 429."""
    http_burst: int = HTTP_BURST_PER_IP
    """Token-bucket burst for HTTP requests from one client IP."""
    ksize: int = 20
    """Kademlia bucket size k (as on the nodes)."""
    rpc_timeout: float = 2.0
    """Seconds to wait for one DHT RPC reply."""
    max_saved_peers: int = SEED_MAX_SAVED_PEERS
    """Most contacts written to (and read back from) the persisted peer table."""
    peers_save_interval: float = SEED_PEERS_SAVE_INTERVAL
    """Seconds between saves of the peer table (it is also saved on stop)."""

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be 0..65535, not {self.port}")
        for name in (
            "stats_interval",
            "health_grace",
            "datagrams_per_source_per_second",
            "datagrams_per_ip_per_second",
            "http_requests_per_second",
            "rpc_timeout",
            "peers_save_interval",
        ):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ConfigError(f"{name} must be a positive number of seconds, not {value}")
        for name in (
            "datagram_burst_per_source",
            "datagram_burst_per_ip",
            "http_burst",
            "ksize",
            "max_saved_peers",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        if any(not isinstance(peer, Seed) for peer in self.peers):
            raise ConfigError("peers must be whnode.seeds.Seed values")
        self.dht_config()  # validates the DHT side too

    def dht_config(self) -> DhtConfig:
        """The routing-only DHT configuration of this seed."""
        return DhtConfig(
            ksize=self.ksize,
            rpc_timeout=self.rpc_timeout,
            routing_only=True,
            owner_cache_seconds=0.0,
            max_saved_peers=self.max_saved_peers,
            peers_save_interval=self.peers_save_interval,
            datagrams_per_source_per_second=self.datagrams_per_source_per_second,
            datagram_burst_per_source=self.datagram_burst_per_source,
            datagrams_per_ip_per_second=self.datagrams_per_ip_per_second,
            datagram_burst_per_ip=self.datagram_burst_per_ip,
        )


@dataclass(frozen=True, slots=True)
class Health:
    """The answer of ``/healthz``."""

    healthy: bool
    reason: str
    """Why, in a few words (``"12 peers"``, ``"routing table empty"``, ...)."""


# ---------------------------------------------------------------------------------------------
# Metrics


class _SeedCollector(Collector):
    """Reads the seed's DHT statistics and health at scrape time."""

    def __init__(self, seed: SeedServer) -> None:
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


# ---------------------------------------------------------------------------------------------
# The seed server


def _load_public_key(data_dir: Path) -> bytes:
    """Create the data directory (0700) and load or create the seed's identity key."""
    from whnode.identity import load_or_create_identity

    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    public_key: bytes = load_or_create_identity(data_dir).public_key
    return public_key


def _client_ip(request: web.Request) -> str:
    """The peer's IP (never a forwarded header: the seed is not behind a trusted proxy)."""
    return request.remote or "unknown"


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


class SeedServer:
    """One running seed: its DHT node, its HTTP listener and its background tasks.

    ::

        async with SeedServer(SeedConfig(port=0, data_dir=path)) as seed:
            print(seed.port, seed.http_url, seed.health())
    """

    def __init__(self, config: SeedConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._dht: DhtNode | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = False
        self._started_at = 0.0
        self._peer_seen = False
        self._pinned: dict[tuple[str, int], NodeId] = {}
        self._mismatches: dict[tuple[str, int], NodeId] = {}
        self._lock = DataDirLock(config.data_dir)
        self._http_limiter = SourceRateLimiter(
            config.http_requests_per_second, config.http_burst, HTTP_TRACKED_CLIENTS
        )
        self.metrics = ApiMetrics(
            snapshots=self._snapshots,
            healthy=lambda: self.health().healthy,
            ready=None,
            identity=lambda: (self.node_id.hex() if self.started else "", "seed"),
        )
        """The seed's metrics: the same names as a node's for the same figures."""
        self.registry = self.metrics.registry
        """The seed's own Prometheus registry (what /metrics serves)."""
        self.registry.register(_SeedCollector(self))
        self.port = 0
        """The bound port number (UDP and TCP); 0 until started."""
        self.node_id = NodeId(bytes(20))
        """The seed's node id (SHA-1 of its public key); zeros until started."""
        self.app = self._build_app()
        """The aiohttp application serving /healthz and /metrics."""

    # ------------------------------------------------------------------ lifetime
    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def started(self) -> bool:
        return self._dht is not None

    async def start(self) -> None:
        """Load the identity, bind UDP and TCP, start bootstrap, stats and watch tasks."""
        if self._started_at:
            raise UsageError("a SeedServer starts once")
        self._started_at = self._clock()
        config = self.config
        try:
            await asyncio.to_thread(prepare_data_dir, config.data_dir)
            await asyncio.to_thread(self._lock.acquire)  # DataDirInUse names the holder
            public_key = await asyncio.to_thread(_load_public_key, config.data_dir)
            self._started_at = self._clock()  # the grace counts from here, not while grinding
            await self._bind(public_key)
            self._pinned = await self._resolve_pins()
            self._spawn(self._bootstrap(), "seed bootstrap")
            self._spawn(self._stats_loop(), "seed stats")
            self._spawn(self._watch_loop(), "seed watch")
        except BaseException:
            await self.stop()
            raise
        LOG.info(
            "seed %s serving UDP+TCP %s:%d (routing only); seeds line: %s",
            self.node_id.hex(),
            config.host,
            self.port,
            self.seeds_line(),
        )

    async def _bind(self, public_key: bytes) -> None:
        """UDP and TCP on the same port number (retrying free numbers when the port is 0)."""
        config = self.config
        runner = web.AppRunner(
            self.app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=1.0,
            max_line_size=HTTP_MAX_LINE_BYTES,
            max_field_size=HTTP_MAX_LINE_BYTES,
        )
        await runner.setup()
        self._runner = runner
        last_error: OSError | None = None
        for _ in range(BIND_ATTEMPTS if config.port == 0 else 1):
            dht = DhtNode(
                PublicKey(public_key),
                config.dht_config(),
                peers_file=config.data_dir / PEERS_FILE_NAME,
            )
            try:
                port = await dht.listen(config.host, config.port)
            except OSError as exc:
                raise ListenError(
                    f"cannot listen on UDP {config.host}:{config.port}: {describe(exc)}"
                ) from exc
            site = web.TCPSite(runner, config.host, port, backlog=256)
            try:
                await site.start()
            except OSError as exc:
                last_error = exc
                await dht.stop()
                continue
            self._dht = dht
            self._listening = True
            self.port = port
            self.node_id = dht.node_id
            return
        reason = describe(last_error) if last_error is not None else "no free port number"
        raise ListenError(f"cannot listen on TCP {config.host}:{config.port}: {reason}")

    async def stop(self) -> None:
        """Stop serving, end the tasks, save the peer table, close the socket. Idempotent."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        self._listening = False
        if self._dht is not None:
            await self._dht.stop()  # saves peers.json when the table is not empty
        self._lock.release()

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
    @property
    def dht(self) -> DhtNode:
        if self._dht is None:
            raise UsageError("the seed is not started")
        return self._dht

    @property
    def http_url(self) -> str:
        host = self.config.host
        if _is_wildcard(host):
            host = "127.0.0.1" if ":" not in host else "::1"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def uptime(self) -> float:
        return self._clock() - self._started_at if self._started_at else 0.0

    def contacts(self) -> list[Contact]:
        return self._dht.contacts() if self._dht is not None else []

    def _snapshots(self) -> dict[str, object]:
        return {"dht": self._dht.statistics()} if self._dht is not None else {}

    def dht_statistics(self) -> DhtStatistics | None:
        return self._dht.statistics() if self._dht is not None else None

    def pin_mismatches(self) -> dict[tuple[str, int], NodeId]:
        """Pinned peer addresses that answer with another node id (address → id seen)."""
        return dict(self._mismatches)

    def seeds_line(self) -> str:
        """The line other operators put in their seeds list to pin this seed."""
        host = self.config.advertise_host or self.config.host
        if _is_wildcard(host):
            return f"PUBLIC-ADDRESS:{self.port} {self.node_id.hex()}"
        try:
            return format_seed(Seed(host, self.port, self.node_id))
        except ConfigError:
            return f"{host}:{self.port} {self.node_id.hex()}"

    def health(self) -> Health:
        """The /healthz rule (module docstring): socket up, and peers known after the grace."""
        if not self._listening or self._dht is None:
            return Health(False, "UDP socket not listening")
        size = len(self._dht.contacts())
        if size:
            self._peer_seen = True
            return Health(True, f"{size} peer{'s' if size != 1 else ''}")
        if self._peer_seen:
            return Health(False, "routing table empty (every known peer was lost)")
        if self.uptime() < self.config.health_grace:
            return Health(True, "starting: no peer yet (within the grace period)")
        return Health(False, f"no peer within {self.config.health_grace:g} s of start")

    # ------------------------------------------------------------------ background tasks
    async def _bootstrap(self) -> None:
        """Join the other seeds; also pings the persisted peers back into the table."""
        size = await self.dht.bootstrap([peer.address for peer in self.config.peers])
        LOG.info("seed bootstrap done: %d contacts", size)
        self._check_pins()

    async def _resolve_pins(self) -> dict[tuple[str, int], NodeId]:
        """IP addresses of the pinned peer seeds (host names resolved once, at start)."""
        loop = asyncio.get_running_loop()
        pins: dict[tuple[str, int], NodeId] = {}
        for peer in self.config.peers:
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

    def _check_pins(self) -> None:
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
            self._check_pins()
            await asyncio.sleep(WATCH_INTERVAL)

    async def _stats_loop(self) -> None:
        previous = self.dht.statistics()
        while True:
            await asyncio.sleep(self.config.stats_interval)
            current = self.dht.statistics()
            self._log_stats(previous, current)
            previous = current

    def _log_stats(self, previous: DhtStatistics, current: DhtStatistics) -> None:
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
            self.config.stats_interval,
            "healthy" if health.healthy else f"UNHEALTHY: {health.reason}",
            extra={"seed_stats": fields},
        )

    # ------------------------------------------------------------------ HTTP
    def _build_app(self) -> web.Application:
        app = web.Application(
            client_max_size=HTTP_MAX_BODY_BYTES, middlewares=[self._limit_middleware]
        )
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        return app

    @web.middleware
    async def _limit_middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Rate limit, problem documents for every error, request metrics (as on a node)."""
        started = time.perf_counter()
        route = request.path if request.path in _HTTP_PATHS else UNMATCHED
        response: web.StreamResponse
        try:
            if not self._http_limiter.allow((_client_ip(request), 0), self._clock()):
                raise ClientRateLimited("request rate exceeded for this client", retry_after=1)
            response = await handler(request)
        except (web.HTTPException, ClientRateLimited, NodeNotReady) as exc:
            if isinstance(exc, web.HTTPException) and exc.status < 400:
                raise
            problem = problem_for(exc)
            if isinstance(exc, NodeNotReady):
                members = {**problem.extensions, **self._health_members()}
                problem = dataclasses.replace(problem, extensions=members)
            self.metrics.problems.labels(problem.type.slug if problem.type else "about:blank").inc()
            response = problem_response(problem, instance=request.path[:MAX_INSTANCE_CHARS])
        method = request.method if request.method in _HTTP_METHODS else "other"
        self.metrics.observe(
            route=route,
            method=method,
            status=response.status,
            answer_path="",
            seconds=time.perf_counter() - started,
        )
        return response

    def _health_members(self) -> dict[str, object]:
        return {
            "role": "seed",
            "node_id": self.node_id.hex(),
            "peers": len(self.contacts()),
            "uptime_seconds": round(self.uptime(), 1),
        }

    async def _healthz(self, request: web.Request) -> web.Response:
        """A node's /healthz shape: 200 ``{"status": "ok", ...}``, else a 503 problem."""
        health = self.health()
        if not health.healthy:
            raise NodeNotReady(health.reason)
        body = {"status": "ok", "reason": health.reason, **self._health_members()}
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    async def _metrics(self, request: web.Request) -> web.Response:
        body = self.metrics.exposition()
        return web.Response(
            body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"}
        )


async def run_seed(config: SeedConfig, *, stop_event: asyncio.Event) -> None:
    """Run a seed until ``stop_event`` is set; then stop it and save the peer table.

    Raises OSError when the address cannot be bound and ConfigError/IdentityError when the
    data directory is unusable.
    """
    async with SeedServer(config):
        await stop_event.wait()
    LOG.info("seed stopped")


# ---------------------------------------------------------------------------------------------
# Command line (``whnode seed ...``)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0..65535)")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The ``whnode seed`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="whnode seed",
        description="Run a routing-only bootstrap seed peer: a DHT node that routes, stores "
        "nothing and calls no upstream. UDP carries the DHT; TCP on the same port serves "
        "/healthz and /metrics. SIGTERM or Ctrl-C saves the peer table and exits 0.",
        epilog="example:\n  whnode seed --host 0.0.0.0 --port 8468 --data-dir /var/lib/whnode-seed"
        " --peer seed2.example.org:8468",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="bind address (default 127.0.0.1; 0.0.0.0 or :: to serve the internet)",
    )
    parser.add_argument(
        "--port",
        type=_port,
        default=DEFAULT_PORT,
        metavar="PORT",
        help=f"UDP and TCP port (default {DEFAULT_PORT}; 0 picks a free one)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        metavar="DIR",
        help=f"identity key and peer table (default {DEFAULT_DATA_DIR})",
    )
    parser.add_argument(
        "--peer",
        action="append",
        default=[],
        metavar="SEED",
        help="another seed to join, HOST:PORT optionally followed by its node id as in a seeds"
        " file, e.g. 'seed2.example.org:8468 3a7b...' (repeatable)",
    )
    parser.add_argument(
        "--seeds-file", type=Path, metavar="FILE", help="seeds list of other seeds to join"
    )
    parser.add_argument(
        "--advertise-host",
        metavar="ADDRESS",
        help="public address shown in the seeds line logged at start-up",
    )
    parser.add_argument(
        "--stats-interval",
        type=_positive_seconds,
        default=STATS_INTERVAL_SECONDS,
        metavar="SECONDS",
        help=f"seconds between stats log lines (default {STATS_INTERVAL_SECONDS:g})",
    )
    parser.add_argument(
        "--health-grace",
        type=_positive_seconds,
        default=HEALTH_GRACE_SECONDS,
        metavar="SECONDS",
        help="seconds after start during which an empty table is healthy (default "
        f"{HEALTH_GRACE_SECONDS:g})",
    )
    parser.add_argument(
        "--rate",
        type=_positive_seconds,
        default=DATAGRAMS_PER_SOURCE_PER_SECOND,
        metavar="N",
        help="datagrams per second allowed from one source (default "
        f"{DATAGRAMS_PER_SOURCE_PER_SECOND:g})",
    )
    parser.add_argument(
        "--burst",
        type=_count,
        default=DATAGRAM_BURST_PER_SOURCE,
        metavar="N",
        help=f"datagram burst allowed from one source (default {DATAGRAM_BURST_PER_SOURCE})",
    )
    parser.add_argument(
        "--rate-per-ip",
        type=_positive_seconds,
        default=DATAGRAMS_PER_IP_PER_SECOND,
        metavar="N",
        help="datagrams per second allowed from one IP address (IPv6: one /64), all ports "
        f"together; loopback is exempt (default {DATAGRAMS_PER_IP_PER_SECOND:g})",
    )
    parser.add_argument(
        "--burst-per-ip",
        type=_count,
        default=DATAGRAM_BURST_PER_IP,
        metavar="N",
        help=f"datagram burst allowed from one IP address (default {DATAGRAM_BURST_PER_IP})",
    )
    parser.add_argument(
        "--log-format",
        choices=[item.value for item in LogFormat],
        default="text",
        help="log format on stderr",
    )
    parser.add_argument("--log-level", default="INFO", metavar="LEVEL", help="log level")
    return parser


def config_from_args(args: argparse.Namespace) -> SeedConfig:
    """The SeedConfig described by parsed ``whnode seed`` arguments (reads --seeds-file)."""
    peers: list[Seed] = []
    if args.seeds_file is not None:
        peers.extend(load_seeds(args.seeds_file))
    for index, text in enumerate(args.peer, start=1):
        peers.extend(parse_seeds(text, source=f"--peer #{index}"))
    unique = list({peer.address: peer for peer in reversed(peers)}.values())[::-1]
    if args.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"--log-level {args.log_level!r} is not a log level")
    return SeedConfig(
        data_dir=args.data_dir,
        host=args.host,
        port=args.port,
        advertise_host=args.advertise_host,
        peers=tuple(unique),
        stats_interval=args.stats_interval,
        health_grace=args.health_grace,
        datagrams_per_source_per_second=args.rate,
        datagram_burst_per_source=args.burst,
        datagrams_per_ip_per_second=args.rate_per_ip,
        datagram_burst_per_ip=args.burst_per_ip,
    )


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


async def _serve(config: SeedConfig, notify: Notifier) -> None:
    loop = asyncio.get_running_loop()
    stop_event = asyncio.Event()

    def on_signal(signum: int) -> None:
        if not stop_event.is_set():
            LOG.info("received %s: saving the peer table and stopping", signal.Signals(signum).name)
            notify.stopping("saving the peer table")
        stop_event.set()

    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        async with SeedServer(config) as seed:
            notify.ready(f"seed serving on {seed.http_url}")
            await stop_event.wait()
        LOG.info("seed stopped")
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)


def main(argv: Sequence[str]) -> int:
    """``whnode seed ARGS``: run a seed in the foreground; returns the exit code.

    0 after a clean stop (SIGTERM/SIGINT), 2 for bad arguments or an unusable data directory
    or seeds file, 1 when the port cannot be bound.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else 2
    from whnode.logs import configure_logging

    try:
        config = config_from_args(args)
        configure_logging(LogConfig(format=LogFormat(args.log_format), level=args.log_level))
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(_serve(config, Notifier(os.environ.get("NOTIFY_SOCKET"))))
    except UsageError as exc:
        sys.stderr.write(f"whnode seed: error: {exc}\n")
        return 2
    except RemoteError as exc:
        sys.stderr.write(f"whnode seed: error: {exc}\n")
        return 4
    except (OSError, WhnodeError) as exc:
        sys.stderr.write(f"whnode seed: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
