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

Configuration: one :class:`whnode.config.Config`, built as a node's is (flags > environment
> ``whnode.toml`` > defaults): ``[node]`` gives the address, port, data directory, the
other seeds to join (``seeds``, ``seeds_file``, with pinned node ids), ``ksize`` and
``rpc_timeout``; ``[trust]`` the node-id puzzle every node of the network uses; ``[log]`` the
log; ``[seed]`` what only a seed has. The DHT configuration is derived from it
(:func:`seed_dht_config`), never written twice.

Abuse limits: the DHT layer rate-limits datagrams per source address (``[seed]``
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
context manager, for tests and embedding) and :func:`serve` (the ``whnode seed`` command of
:mod:`whnode.cli.seed`: SIGTERM and SIGINT stop cleanly and save the peer table).
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from whnode.api.exceptions import ClientRateLimited, NodeNotReady
from whnode.api.metrics import ApiMetrics
from whnode.api.problems import problem_for, problem_response
from whnode.config import Config
from whnode.datadir import DataDirLock, prepare_data_dir
from whnode.dht import Contact, DhtConfig, DhtNode, DhtStatistics, NodeId, PublicKey
from whnode.dht.ratelimit import SourceRateLimiter
from whnode.errors import ConfigError, UsageError
from whnode.lifecycle import AsyncService
from whnode.listen import listen_udp_and_tcp
from whnode.sdnotify import Notifier
from whnode.seeds import Seed, configured_seeds, format_seed

__all__ = [
    "DEFAULT_DATA_DIR",
    "HTTP_TRACKED_CLIENTS",
    "PEERS_FILE_NAME",
    "Health",
    "SeedServer",
    "run_seed",
    "seed_dht_config",
    "serve",
]

LOG = logging.getLogger(__name__)

# --- limits of the seed program (its settings are the [seed] section of whnode.config) -----
HTTP_TRACKED_CLIENTS: Final = 1024
"""Most client IPs tracked by the HTTP rate limiter (see SourceRateLimiter on overflow)."""
HTTP_MAX_LINE_BYTES: Final = 2048
"""Longest HTTP request line or header line accepted by the seed's listener."""
HTTP_MAX_BODY_BYTES: Final = 1024
"""Largest HTTP request body accepted (the seed's endpoints take none)."""
WATCH_INTERVAL: Final = 1.0
"""Seconds between two looks at the routing table (for the health rule and pin checks)."""

DEFAULT_DATA_DIR: Final = Path("./whnode-seed-data")
"""Default data directory of ``whnode seed`` (when neither ``--data-dir`` nor
``WHNODE_NODE_DATA_DIR`` names one): apart from a node's (./whnode-data), so the two never
share a key."""
PEERS_FILE_NAME: Final = "peers.json"
"""The persisted peer table, inside the data directory."""

_HTTP_PATHS: Final = ("/healthz", "/metrics")
_HTTP_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
UNMATCHED: Final = "unmatched"
"""Route label of requests to any other path (as on a node)."""
MAX_INSTANCE_CHARS: Final = 256


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


def _load_public_key(data_dir: Path, difficulty: int) -> bytes:
    """Load or create the seed's identity key; its id must solve the node-id puzzle that
    the network's nodes ask of every contact (``trust.node_id_difficulty``)."""
    from whnode.identity import load_or_create_identity
    from whnode.node import check_identity
    from whnode.record.keys import node_id_for

    public_key = load_or_create_identity(data_dir, difficulty).public_key
    check_identity(node_id_for(public_key), difficulty, data_dir)
    return bytes(public_key)


def _client_ip(request: web.Request) -> str:
    """The peer's IP (never a forwarded header: the seed is not behind a trusted proxy)."""
    return request.remote or "unknown"


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


class SeedServer(AsyncService):
    """One running seed: its DHT node, its HTTP listener and its background tasks.

    ::

        async with SeedServer(build_config(flags={"node.port": 0, "node.data_dir": path})) as seed:
            print(seed.port, seed.http_url, seed.health())
    """

    def __init__(self, config: Config, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        """The whole configuration: ``node``, ``trust``, ``log`` and ``seed`` apply."""
        self.peers: tuple[Seed, ...] = ()
        """The other seeds joined (``node.seeds`` and ``node.seeds_file``; read at start)."""
        self._clock = clock
        self._dht: DhtNode | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = False
        self._started_at = 0.0
        self._peer_seen = False
        self._pinned: dict[tuple[str, int], NodeId] = {}
        self._mismatches: dict[tuple[str, int], NodeId] = {}
        self._lock = DataDirLock(config.node.data_dir)
        self._http_limiter = SourceRateLimiter(
            config.seed.http_requests_per_second, config.seed.http_burst, HTTP_TRACKED_CLIENTS
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
    @property
    def started(self) -> bool:
        return self._dht is not None

    async def start(self) -> None:
        """Load the identity, bind UDP and TCP, start bootstrap, stats and watch tasks."""
        if self._started_at:
            raise UsageError("a SeedServer starts once")
        self._started_at = self._clock()
        node = self.config.node
        peers = await asyncio.to_thread(configured_seeds, node.seeds, node.seeds_file)
        self.peers = tuple(peers)
        try:
            await asyncio.to_thread(prepare_data_dir, node.data_dir)
            await asyncio.to_thread(self._lock.acquire)  # DataDirInUse names the holder
            public_key = await asyncio.to_thread(
                _load_public_key, node.data_dir, self.config.trust.node_id_difficulty
            )
            self._started_at = self._clock()  # the grace counts from here, not while grinding
            await self._bind(public_key)
            self._pinned = await self._resolve_pins()
            self._spawn(self._bootstrap(), "seed bootstrap")
            self._spawn(self._stats_loop(), "seed stats")
            self._spawn(self._watch_loop(), "seed watch")
        except BaseException:
            await self.aclose()
            raise
        LOG.info(
            "seed %s serving UDP+TCP %s:%d (routing only); seeds line: %s",
            self.node_id.hex(),
            node.host,
            self.port,
            self.seeds_line(),
        )

    async def _bind(self, public_key: bytes) -> None:
        """UDP and TCP on the same port number (retrying free numbers when the port is 0)."""
        config = self.config.node
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
        self._dht, self.port = await listen_udp_and_tcp(
            config.host,
            config.port,
            lambda: DhtNode(
                PublicKey(public_key),
                seed_dht_config(self.config),
                peers_file=config.data_dir / PEERS_FILE_NAME,
            ),
            lambda port: web.TCPSite(runner, config.host, port, backlog=256),
        )
        self._listening = True
        self.node_id = self._dht.node_id

    async def aclose(self) -> None:
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
            await self._dht.aclose()  # saves peers.json when the table is not empty
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
        host = self.config.node.host
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
        node = self.config.node
        host = self.config.seed.public_address or node.advertise_host or node.host
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
        grace = self.config.seed.health_grace
        if self.uptime() < grace:
            return Health(True, "starting: no peer yet (within the grace period)")
        return Health(False, f"no peer within {grace:g} s of start")

    # ------------------------------------------------------------------ background tasks
    async def _bootstrap(self) -> None:
        """Join the other seeds; also pings the persisted peers back into the table."""
        size = await self.dht.bootstrap([peer.address for peer in self.peers])
        LOG.info("seed bootstrap done: %d contacts", size)
        self._check_pins()

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
            await asyncio.sleep(self.config.seed.stats_interval)
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
            self.config.seed.stats_interval,
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


async def run_seed(config: Config, *, stop_event: asyncio.Event) -> None:
    """Run a seed until ``stop_event`` is set; then stop it and save the peer table.

    Raises OSError when the address cannot be bound and ConfigError/IdentityError when the
    data directory is unusable.
    """
    async with SeedServer(config):
        await stop_event.wait()
    LOG.info("seed stopped")


async def serve(config: Config, notify: Notifier) -> None:
    """Serve until SIGTERM or SIGINT, then save the peer table and stop (``whnode seed``)."""
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
