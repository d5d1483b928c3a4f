"""``whnode.Node``: a full node embedded in-process, built from one Config.

A node is one UDP socket (the DHT) and one TCP listener (HTTP: the public API and the
node-to-node API) on the same port number, a hot cache, a SQLite store, an upstream client, a
process pool for parsing and the read-through service. ``Node`` owns every task's lifetime:
``start()`` builds and starts everything, ``stop()`` drains in-flight requests, cancels
background work and closes everything in reverse order.

::

    async with Node(config) as node:
        answer = await node.service.get_menu("weedmaps:ultra-health-gallup", max_age=300)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from whnode import limits
from whnode.api.server import ConnectionLimits, GuardedSite, http_runner, ingress_of
from whnode.config import Config, TrustMode
from whnode.datadir import DataDirLock, prepare_data_dir, remove_api_file, write_api_file
from whnode.dht import DhtConfig, DhtNode
from whnode.dht import PublicKey as DhtPublicKey
from whnode.identity import IdentityError, identity_path, load_or_create_identity
from whnode.lifecycle import AsyncService, deprecated_alias
from whnode.listen import listen_udp_and_tcp
from whnode.memory import trim_heap
from whnode.peer.client import PeerClient
from whnode.peer.routes import add_peer_routes
from whnode.record.acceptance import TrustPolicy
from whnode.record.keys import PublicKey, SigningKey, node_id_for
from whnode.record.puzzle import solves
from whnode.seed import SeedRole, seed_dht_config
from whnode.service.core import MenuService
from whnode.service.joined import JoinedOnly
from whnode.service.opening import RecordOpener
from whnode.service.searchfeed import SearchFeed
from whnode.store.durable import DurableStore
from whnode.store.hot import HotCache
from whnode.store.search import SearchIndex
from whnode.upstream.fetcher import Fetcher
from whnode.upstream.http import UpstreamHttp
from whnode.upstream.pool import ParsePool
from whnode.upstream.sources import SourcesConfig

if TYPE_CHECKING:
    from whnode.api.app import PublicApi
    from whnode.client import VerifiedMenu
    from whnode.client_queries import ChangeAnswer, ProductAnswer, SearchAnswer
    from whnode.node_queries import NodeQueries

__all__ = ["Node"]

LOG = logging.getLogger(__name__)

SAMPLE_INTERVAL = 10.0
"""Seconds between status-page samples."""
SAMPLES_KEPT = 360
"""Status-page samples kept (one hour at SAMPLE_INTERVAL)."""


def check_identity(node_id: bytes, difficulty: int, data_dir: Path) -> None:
    """Refuse to start with an id that peers would refuse (under the id puzzle)."""
    if not solves(node_id, difficulty):
        raise IdentityError(
            f"{identity_path(data_dir)}: node id {node_id.hex()[:12]} does not solve the "
            f"node-id puzzle at difficulty {difficulty} (trust.node_id_difficulty), so peers "
            "would refuse it; move the key away to create a new identity, or set the "
            "difficulty the network uses"
        )


def trust_policy(config: Config) -> TrustPolicy:
    allowed = frozenset(PublicKey(bytes.fromhex(key)) for key in config.trust.allowlist)
    if config.trust.mode is TrustMode.ALLOWLIST:
        return TrustPolicy.allowlist(allowed)
    return TrustPolicy.open()


class Node(AsyncService):
    """A full whnode node (see module docstring)."""

    def __init__(
        self,
        config: Config,
        *,
        signing_key: SigningKey | None = None,
        parse_pool: ParsePool | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` is the wall clock the service judges freshness and stamps records by;
        ``monotonic`` the clock of a seed's health grace (tests drive both by hand)."""
        self.config = config
        self._clock = clock
        self._signing_key = signing_key
        self._given_pool = parse_pool
        self._pool: ParsePool | None = None
        self._started = False
        self._started_at = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._samples: deque[dict[str, Any]] = deque(maxlen=SAMPLES_KEPT)
        self._runner: web.AppRunner | None = None
        self._seed_plan_cache: tuple[list[tuple[str, int]], dict[tuple[str, int], bytes]] | None = (
            None
        )
        self._session: aiohttp.ClientSession | None = None
        self._http: UpstreamHttp | None = None
        self._fetcher: Fetcher | None = None
        self._store: DurableStore | None = None
        self.app = web.Application(client_max_size=limits.MAX_HTTP_BODY_BYTES)
        self.port = 0
        self.host = config.node.host
        self.hot = HotCache(config.cache.hot_cache_bytes)
        self._lock = DataDirLock(Path(config.node.data_dir))
        self._api_url: str | None = None
        self._draining = False
        self.search_feed: SearchFeed | None = None
        self._queries: NodeQueries | None = None
        self.seed: SeedRole | None = None
        """The seed-only part (whnode.seed) of a node with ``node.routing_only``."""
        if config.node.routing_only:
            self.seed = SeedRole(config, clock=monotonic)

    # ------------------------------------------------------------------ lifecycle
    @property
    def http_url(self) -> str:
        host = self.advertise_host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    def _local_url(self) -> str:
        """The HTTP listener's URL as a process on this machine reaches it (the api file)."""
        host = self.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def advertise_host(self) -> str:
        return self.config.node.advertise_host or self.config.node.host

    def seeds(self) -> list[tuple[str, int]]:
        """Where to join: the configured seeds, then those of the seeds file."""
        return list(self._seed_plan()[0])

    def _seed_plan(self) -> tuple[list[tuple[str, int]], dict[tuple[str, int], bytes]]:
        """(seeds, pinned node ids by seed), the seeds file read once."""
        if self._seed_plan_cache is None:
            from whnode.seeds import configured_seeds

            node = self.config.node
            found = configured_seeds(node.seeds, node.seeds_file)
            pins = {seed.address: bytes(seed.node_id) for seed in found if seed.node_id}
            self._seed_plan_cache = ([seed.address for seed in found], pins)
        return self._seed_plan_cache

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("node already started")
        self._started = True
        self._started_at = time.time()
        config = self.config
        if LOG.isEnabledFor(logging.DEBUG):
            import json

            from whnode.config import masked

            LOG.debug("configuration (secrets masked): %s", json.dumps(masked(config)))
        await asyncio.to_thread(self._seed_plan)  # a bad seeds file fails before anything
        data_dir = Path(config.node.data_dir)
        await asyncio.to_thread(prepare_data_dir, data_dir)
        await asyncio.to_thread(self._lock.acquire)  # DataDirInUse: another process runs here
        try:
            if self._signing_key is None:
                fresh = not await asyncio.to_thread(identity_path(data_dir).exists)
                self._signing_key = await asyncio.to_thread(
                    load_or_create_identity, data_dir, config.trust.node_id_difficulty
                )
                if fresh:
                    LOG.info("created a new node identity in %s", data_dir)
            self.public_key = self._signing_key.public_key
            self.node_id = node_id_for(self.public_key)
            check_identity(self.node_id, config.trust.node_id_difficulty, data_dir)
            if self.seed is not None:  # routing only: no store, service, pool or upstream
                await self._start_routing_only(data_dir)
                return
            self._store = await DurableStore.open(
                data_dir / "store.sqlite3",
                history_per_dispensary=config.cache.history_per_dispensary,
                max_bytes=config.cache.store_max_bytes,
            )
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256, limit_per_host=32),
                headers={"User-Agent": "whnode-peer/0.1"},
            )
            self._pool = self._given_pool or ParsePool(
                workers=config.pool.workers or None,
                max_tasks_per_child=config.pool.max_tasks_per_child,
                queue_depth=config.pool.queue_depth,
            )
            if self._given_pool is None:
                # the workers start now, beside the bootstrap, not at the first fill
                # (starting them takes seconds, which a cold fill would wait for)
                self._tasks.append(
                    asyncio.create_task(self._pool.warm_up(), name="parse pool warm-up")
                )
            self._http = UpstreamHttp.from_config(config.upstream)
            fetcher = self._build_fetcher(config)
            self.dht = await self._bind(data_dir)
            self._api_url = self._local_url()
            await asyncio.to_thread(write_api_file, data_dir, self._api_url)
            LOG.info(
                "node %s listening on %s:%d (UDP and TCP); joining the network",
                self.node_id.hex()[:12],
                self.host,
                self.port,
            )
            self.service = MenuService(
                config=config,
                signing_key=self._signing_key,
                hot=self.hot,
                store=self._store,
                owners=self.dht,
                peers=PeerClient(
                    self._session, node_id_hex=self.node_id.hex(), timeout=config.node.peer_timeout
                ),
                fetcher=JoinedOnly(fetcher, self.joined),
                policy=trust_policy(config),
                clock=self._clock,
                opener=RecordOpener(self._pool) if self._pool is not None else None,
            )
            self.dht.on_new_contact = self.service.on_new_contact
            # products of the held menus, for /v1/search
            search = SearchFeed(SearchIndex(data_dir / "search.sqlite3"), self.service.events)
            await search.index.open()
            search.start(self._store.iter_newest())
            self.search_feed = search
            seeds, pins = self._seed_plan()
            LOG.debug(
                "joining through %d seed(s) %s; store %s holds %d snapshot(s)",
                len(seeds),
                ", ".join(f"{host}:{port}" for host, port in seeds) or "(none)",
                data_dir / "store.sqlite3",
                self._store.statistics().records,
            )
            await self.dht.bootstrap(seeds, pins=pins)
            self._tasks.append(asyncio.create_task(self._republish_loop(), name="republish"))
            self._tasks.append(asyncio.create_task(self._sample_loop(), name="status samples"))
        except BaseException:
            await self.aclose()
            raise
        LOG.info("node %s serving on %s", self.node_id.hex()[:12], self.http_url)

    async def _start_routing_only(self, data_dir: Path) -> None:
        """A seed (whnode.seed): the DHT, its peers file and the HTTP listener, nothing else;
        the bootstrap runs in the background (a seed serves before other seeds answer)."""
        assert self.seed is not None
        self.seed.begin()  # the health grace counts from here, not while grinding an id
        self.dht = await self._bind(data_dir)
        self._api_url = self._local_url()
        await asyncio.to_thread(write_api_file, data_dir, self._api_url)
        await self.seed.start(self.dht, self.port, lambda: self._runner is not None)

    def _build_fetcher(self, config: Config) -> Fetcher:
        assert self._http is not None
        assert self._pool is not None
        fetcher = Fetcher(
            SourcesConfig.from_config(config.upstream),
            self._http,
            self._pool,
            menu_deadline=config.upstream.menu_deadline,
        )
        if self._fetcher is not None:
            fetcher.carry_over(self._fetcher)  # counters survive a reload of the sources
        self._fetcher = fetcher
        return fetcher

    def reload_sources(self, config: Config) -> None:
        """Apply a new sources configuration (SIGHUP): sources, overrides, known ids.

        Everything else in ``config`` (ports, data directory, cache sizes) needs a restart.
        """
        import dataclasses

        if self.config.node.routing_only or self._http is None:
            return
        fetcher = self._build_fetcher(config)
        self.service.replace_fetcher(JoinedOnly(fetcher, self.joined))
        self.config = dataclasses.replace(self.config, upstream=config.upstream)
        LOG.info("sources reloaded: %d overrides", len(config.upstream.sources))

    def _dht_config(self) -> DhtConfig:
        if self.seed is not None:
            return seed_dht_config(self.config)
        return DhtConfig.from_config(self.config)

    async def _bind(self, data_dir: Path) -> DhtNode:
        """Listen on UDP and TCP with the same port number (retrying free ports for port 0)."""
        api = self._add_api_routes()
        if self.seed is not None:
            api.metrics.registry.register(self.seed.collector())
        else:
            add_peer_routes(
                self.app,
                self._peer_handler(),
                instrument=api.instrument,
                on_refused=api.ingress.note_refusal,
                evidence=self._peer_handler("crosscheck"),
            )
        connection_limits = ConnectionLimits.from_api_config(self.config.api)
        self._runner = http_runner(
            self.app, connection_limits, shutdown_timeout=self.config.node.drain_timeout / 2
        )
        await self._runner.setup()
        runner = self._runner
        dht, self.port = await listen_udp_and_tcp(
            self.host,
            self.config.node.port,
            lambda: DhtNode(
                DhtPublicKey(bytes(self.public_key)),
                self._dht_config(),
                peers_file=data_dir / "peers.json",
            ),
            lambda port: GuardedSite(
                runner, self.host, port, limits=connection_limits, ingress=ingress_of(self.app)
            ),
        )
        return dht

    def _peer_handler(self, part: str | None = None) -> Any:
        node = self

        class Handler:
            """Forwards to the service (or its ``part``) once it exists (routes are added
            before it is built)."""

            def __getattr__(self, name: str) -> Any:
                target = node.service if part is None else getattr(node.service, part)
                return getattr(target, name)

        return Handler()

    def _add_api_routes(self) -> PublicApi:
        from whnode.api.app import add_public_routes

        return add_public_routes(self.app, self)

    # ------------------------------------------------------------------ queries
    # products(), changes(), events(), search(): as whnode.Client's, in-process
    # (whnode/node_queries.py)
    @property
    def queries(self) -> NodeQueries:
        if self._queries is None:
            from whnode.node_queries import NodeQueries

            self._queries = NodeQueries(self)
        return self._queries

    async def products(self, dispensary_id: str, **options: Any) -> ProductAnswer:
        return await self.queries.products(dispensary_id, **options)

    async def changes(self, dispensary_id: str, since: int | str, **options: Any) -> ChangeAnswer:
        return await self.queries.changes(dispensary_id, since, **options)

    def events(self, dispensary_id: str) -> AsyncGenerator[VerifiedMenu, None]:
        return self.queries.events(dispensary_id)

    async def search(self, **options: Any) -> SearchAnswer:
        return await self.queries.search(**options)

    async def aclose(self, drain_timeout: float | None = None) -> None:
        """Drain in-flight requests, then stop everything. Safe to call twice."""
        if self._queries is not None:
            await self._queries.aclose()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            if drain_timeout is not None:
                # aiohttp waits this long for running handlers, then (having only cancelled
                # their request bodies) as long again: half each keeps the drain within
                # drain_timeout, and a handler may finish during either half
                runner._shutdown_timeout = drain_timeout / 2
            await runner.cleanup()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self.seed is not None:
            await self.seed.aclose()
        service = getattr(self, "service", None)
        if service is not None:
            await service.aclose()
        dht = getattr(self, "dht", None)
        if dht is not None:
            await dht.aclose()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._pool is not None and self._pool is not self._given_pool:
            await self._pool.aclose()
        self._pool = None
        if self.search_feed is not None:
            await self.search_feed.aclose()
            self.search_feed = None
        if self._store is not None:
            await self._store.aclose()
            self._store = None
        if self._api_url is not None:
            url, self._api_url = self._api_url, None
            await asyncio.to_thread(remove_api_file, self.config.node.data_dir, url)
        self._lock.release()

    stop = deprecated_alias(aclose, "stop")
    """Deprecated name of :meth:`aclose`, kept for a release."""

    async def _republish_loop(self) -> None:
        interval = self.config.node.republish_interval
        while True:
            await asyncio.sleep(interval * (0.9 + 0.2 * (time.time() % 1)))
            try:
                await self.service.republish()
                expire_ms = int((time.time() - self.config.cache.expire_after) * 1000)
                await self.store.expire(expire_ms)
            except Exception as exc:  # keep republishing on the next round
                LOG.warning("republish or expiry failed: %s", exc)

    async def _sample_loop(self) -> None:
        while True:
            self._samples.append(self._sample())
            trim_heap()  # freed heap back to the OS (whnode.memory), at most once a minute
            await asyncio.sleep(SAMPLE_INTERVAL)

    def _sample(self) -> dict[str, Any]:
        stats = self.service.statistics()
        hot = self.hot.statistics()
        return {
            "time": time.time(),
            "requests": stats.requests,
            "upstream_calls": stats.upstream_calls,
            "upstream_calls_saved": stats.upstream_calls_saved,
            "hot_hits": hot.hits,
            "hot_misses": hot.misses,
            "peers": len(self.dht.contacts()),
            "answers_by_path": dict(stats.answers_by_path),
        }

    # ------------------------------------------------------------------ views
    @property
    def store(self) -> DurableStore:
        assert self._store is not None, "node not started"
        return self._store

    def joined(self) -> bool:
        """In the network: a non-empty routing table, or no seeds (a network of one)."""
        dht = getattr(self, "dht", None)
        return dht is not None and (bool(dht.contacts()) or not self._seed_plan()[0])

    def healthy(self) -> bool:
        """Healthy while the HTTP listener serves and the node has joined the network (a
        seed: the rule of :meth:`whnode.seed.SeedRole.health`)."""
        if self.seed is not None:
            return self.seed.health().healthy
        return self._runner is not None and self.joined()

    def health_members(self) -> dict[str, object]:
        """Members ``/healthz`` adds to its answer: a seed says why and who it is."""
        return self.seed.health_members() if self.seed is not None else {}

    def ready(self) -> bool:
        """Ready to answer menu requests (``/readyz``): healthy, started, not draining (a
        seed: healthy and not draining; it answers routing requests only)."""
        if self.seed is not None:
            return not self._draining and self.healthy()
        return not self._draining and self.healthy() and getattr(self, "service", None) is not None

    def begin_drain(self) -> None:
        """Say not ready (``/readyz`` 503) while still serving, so that load balancers and
        clients stop sending before the listener closes (``whnode.daemon`` calls it)."""
        self._draining = True

    def known_dispensaries(self) -> list[str]:
        return list(self.config.upstream.dispensaries)

    def history_samples(self) -> list[dict[str, Any]]:
        return list(self._samples)

    def statistics(self) -> dict[str, object]:
        if self.seed is not None:
            return {"dht": self.dht.statistics()} if hasattr(self, "dht") else {}
        result: dict[str, object] = {
            "service": self.service.statistics(),
            "hot_cache": self.hot.statistics(),
            "store": self.store.statistics(),
            "dht": self.dht.statistics(),
            "entitlement": self.service.entitlement.statistics(),
            "crosscheck": self.service.crosscheck.statistics(),
            "evidence": self.service.crosscheck.book.statistics(),
        }
        if self._http is not None:
            result["upstream"] = self._http.statistics()
        if self._pool is not None:
            result["pool"] = self._pool.statistics()
        if self._fetcher is not None:
            result["fetcher"] = self._fetcher.statistics()
        return result

    def node_info(self) -> dict[str, Any]:
        from dataclasses import asdict

        base: dict[str, Any] = {
            "node_id": self.node_id.hex(),
            "public_key": bytes(self.public_key).hex(),
            "address": f"{self.advertise_host}:{self.port}",
            "uptime_seconds": round(time.time() - self._started_at, 1),
            "routing_only": self.config.node.routing_only,
            "peers": [
                {"node_id": contact.node_id.hex(), "host": contact.host, "port": contact.port}
                for contact in self.dht.contacts()
            ],
        }
        if self.seed is not None:
            return base
        stats = self.service.statistics()
        return {
            **base,
            "hot_cache": asdict(self.hot.statistics()),
            "store": asdict(self.store.statistics()),
            "service": {
                "requests": stats.requests,
                "answers_by_path": stats.answers_by_path,
                "upstream_calls": stats.upstream_calls,
                "upstream_calls_saved": stats.upstream_calls_saved,
                "fills_coalesced": stats.fills_coalesced,
                "peer_rejections": stats.peer_rejections,
                "errors_by_kind": stats.errors_by_kind,
                "recent_fills": [asdict(fill) for fill in stats.recent_fills],
            },
        }

    async def wait_idle(self) -> None:
        """Wait for background replication and hand-offs (tests and benchmarks)."""
        await self.service.wait_idle()

    async def wait_connected(self, timeout: float = 10.0) -> None:
        async with asyncio.timeout(timeout):
            while not self.dht.contacts():
                await asyncio.sleep(0.05)
