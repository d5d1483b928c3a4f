"""An in-process cluster of whnode nodes on loopback, with the sandbox upstream.

Used by the tests and the benchmarks: every node is a real ``whnode.Node`` with its own UDP
socket, TCP listener and SQLite file, on 127.0.0.1 with free ports. The nodes share one parse
process pool (a node owns its pool in production; N pools of 2 processes each would swamp a
2-core machine for no gain in realism).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from whnode.config import (
    CacheConfig,
    Config,
    FreshnessConfig,
    NodeConfig,
    SourceOverride,
    TrustConfig,
    UpstreamConfig,
)
from whnode.lifecycle import AsyncService, deprecated_alias
from whnode.node import Node
from whnode.record.keys import routing_key
from whnode.sandbox.config import SandboxConfig
from whnode.upstream.pool import ParsePool

__all__ = ["LocalCluster", "cluster_config", "crash_sockets"]

VENDORS = ("dutchie", "jane", "weedmaps", "leafly", "treez", "flowhub")


def cluster_config(
    data_dir: Path,
    *,
    sandbox_url: str | None,
    seeds: Sequence[str] = (),
    routing_only: bool = False,
    replication: int = 3,
    freshness: FreshnessConfig | None = None,
    upstream: dict[str, Any] | None = None,
    node: dict[str, Any] | None = None,
    trust: dict[str, Any] | None = None,
) -> Config:
    """A node Config for loopback clusters: free port, short timeouts, sandbox sources."""
    keys = {str(v): k for v, k in SandboxConfig().credentials().items()}  # the keyed POS APIs
    sources = (
        tuple(
            SourceOverride(vendor=vendor, base_url=sandbox_url, credentials=keys.get(vendor, {}))
            for vendor in VENDORS
        )
        if sandbox_url
        else ()
    )
    node_config = NodeConfig(
        data_dir=data_dir,
        host="127.0.0.1",
        port=0,
        seeds=tuple(seeds),
        replication=replication,
        rpc_timeout=0.5,
        lookup_deadline=3.0,
        routing_only=routing_only,
        peer_timeout=10.0,
        request_deadline=20.0,
        drain_timeout=2.0,
    )
    if node:
        node_config = dataclasses.replace(node_config, **node)
    upstream_config = UpstreamConfig(
        sources=sources,
        requests_per_second=200.0,
        burst=50,
        concurrency_per_host=8,
        request_timeout=5.0,
        menu_deadline=30.0,
        breaker_failures=50,
        breaker_cooldown=1.0,
        max_retries=1,
    )
    if upstream:
        upstream_config = dataclasses.replace(upstream_config, **upstream)
    return Config(
        node=node_config,
        cache=CacheConfig(hot_cache_bytes=32 * 1024 * 1024),
        freshness=freshness or FreshnessConfig(),
        upstream=upstream_config,
        # Identities of a loopback cluster are not ground (difficulty 0) unless asked.
        trust=TrustConfig(**{"node_id_difficulty": 0, **(trust or {})}),
    )


def crash_sockets(node: Node) -> None:
    """Close every socket of an in-process ``node`` at once (see ``LocalCluster.crash_node``)."""
    dht = getattr(node, "dht", None)
    protocol = None if dht is None else dht._protocol
    if protocol is not None:
        protocol.close()  # fails its own requests; sends nothing more
    transport = None if dht is None else dht._transport
    if transport is not None:
        transport.abort()
    runner = node._runner
    if runner is None:
        return
    for site in runner.sites:
        server = site._server
        if server is not None:
            server.close()
    if runner.server is not None:
        for handler in runner.server.connections:
            if handler.transport is not None:
                handler.transport.abort()


class LocalCluster(AsyncService):
    """``size`` nodes on loopback; node 0 is everyone's seed.

    ::

        async with LocalCluster(20, tmp_path, sandbox_url=sandbox.base_url) as cluster:
            answer = await cluster.nodes[3].service.get_menu("weedmaps:tiny-1")
    """

    def __init__(
        self,
        size: int,
        directory: Path,
        *,
        sandbox_url: str | None,
        pool: ParsePool | None = None,
        clock: Callable[[], float] = time.time,
        **config_options: Any,
    ) -> None:
        """``clock``: the wall clock every node's service reads (one virtual clock for the
        whole cluster lets a test age records without sleeping)."""
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        self.size = size
        self.directory = directory
        self.sandbox_url = sandbox_url
        self._config_options = config_options
        self._own_pool = pool is None
        self.pool = pool or ParsePool(workers=2, max_tasks_per_child=500, queue_depth=64)
        self.nodes: list[Node] = []
        self._stopped: set[int] = set()
        self.clock = clock

    def config_for(self, index: int, seeds: Sequence[str]) -> Config:
        return cluster_config(
            self.directory / f"node-{index}",
            sandbox_url=self.sandbox_url,
            seeds=seeds,
            **self._config_options,
        )

    @property
    def seed_address(self) -> str:
        return f"127.0.0.1:{self.nodes[0].port}"

    async def start(self) -> None:
        try:
            first = Node(self.config_for(0, ()), parse_pool=self.pool, clock=self.clock)
            await first.start()
            self.nodes.append(first)
            others = [
                Node(
                    self.config_for(index, (self.seed_address,)),
                    parse_pool=self.pool,
                    clock=self.clock,
                )
                for index in range(1, self.size)
            ]
            await asyncio.gather(*(node.start() for node in others))
            self.nodes.extend(others)
            # A second round so that early joiners learn about later ones.
            await asyncio.gather(*(node.dht.bootstrap([]) for node in self.nodes))
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        await asyncio.gather(
            *(node.aclose() for index, node in enumerate(self.nodes) if index not in self._stopped),
            return_exceptions=True,
        )
        self._stopped = set(range(len(self.nodes)))
        if self._own_pool:
            await self.pool.aclose()

    stop = deprecated_alias(aclose, "stop")
    """Deprecated name of :meth:`aclose`, kept for a release."""

    async def stop_node(self, index: int) -> None:
        await self.nodes[index].aclose()
        self._stopped.add(index)

    async def crash_node(self, index: int) -> None:
        """End node ``index`` the way kill -9 does, as its peers see it: its UDP socket, its
        TCP listeners and every open HTTP connection close at once, with no answer to what
        is in flight and nothing sent, drained or handed off. Its resources are then freed."""
        await self.crash_nodes([index])

    async def crash_nodes(self, indices: Sequence[int]) -> None:
        """``crash_node`` for several nodes at the same moment (all sockets closed first)."""
        for index in indices:
            self._stopped.add(index)
            crash_sockets(self.nodes[index])
        await asyncio.gather(
            *(self.nodes[index].aclose(drain_timeout=0) for index in indices),
            return_exceptions=True,
        )

    @property
    def live(self) -> list[Node]:
        return [node for index, node in enumerate(self.nodes) if index not in self._stopped]

    def owners(self, dispensary_id: str, count: int = 3) -> list[Node]:
        """The ``count`` live nodes truly closest (XOR) to the dispensary's routing key."""
        key = int.from_bytes(routing_key(dispensary_id), "big")
        candidates = [node for node in self.live if not node.config.node.routing_only]
        return sorted(candidates, key=lambda node: int.from_bytes(node.node_id, "big") ^ key)[
            :count
        ]

    async def wait_idle(self) -> None:
        await asyncio.gather(*(node.wait_idle() for node in self.live))
