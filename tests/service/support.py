"""MenuService on its in-memory seams (whnode.abc): a MemoryNetwork of services, each with a
MemoryStore, a real HotCache, a ScriptedFetcher and one hand-driven clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from whnode.config import Config, FreshnessConfig, NodeConfig, TrustConfig
from whnode.record.acceptance import TrustPolicy
from whnode.record.keys import SigningKey, routing_key
from whnode.service.core import MenuService
from whnode.store.hot import HotCache
from whnode.testing.memory_fetcher import ScriptedFetcher
from whnode.testing.memory_network import MemoryNetwork
from whnode.testing.memory_store import MemoryStore

DISPENSARY = "jane:1547"
START = 1_760_000_000.0
"""The virtual clock's first reading (seconds since the epoch)."""


class Clock:
    """Virtual time: tests move it with ``advance``."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Member:
    service: MenuService
    key: SigningKey
    store: MemoryStore
    hot: HotCache
    fetcher: ScriptedFetcher


def config(**freshness: float) -> Config:
    return Config(
        node=NodeConfig(replication=3, hedge_delay=0.0),
        freshness=FreshnessConfig(**freshness),  # type: ignore[arg-type]
        trust=TrustConfig(node_id_difficulty=0),
    )


class Mesh:
    """``size`` services wired through one MemoryNetwork, on one virtual clock."""

    def __init__(self, size: int = 1, *, settings: Config | None = None) -> None:
        self.clock = Clock()
        self.network = MemoryNetwork()
        self.settings = settings or config()
        self.members: list[Member] = []
        for _ in range(size):
            self.add()

    def add(self, *, store: MemoryStore | None = None, upstream: bool = True) -> Member:
        """A new member (with ``store`` when given: a restart on a kept store; without
        ``upstream``, a node that makes no upstream calls)."""
        key = SigningKey.generate()
        self.network.add(key.node_id)
        store = store or MemoryStore()
        hot = HotCache(16 * 1024 * 1024)
        fetcher = ScriptedFetcher()
        service = MenuService(
            config=self.settings,
            signing_key=key,
            hot=hot,
            store=store,
            owners=self.network.owners(key.node_id),
            peers=self.network.peers(key.node_id),
            fetcher=fetcher if upstream else None,
            policy=TrustPolicy.open(),
            clock=self.clock,
        )
        self.network.attach(key.node_id, service)
        member = Member(service, key, store, hot, fetcher)
        self.members.append(member)
        return member

    def by_rank(self, dispensary_id: str = DISPENSARY) -> list[Member]:
        """Members by XOR distance of their node id to the dispensary's key."""
        key = int.from_bytes(routing_key(dispensary_id), "big")
        return sorted(
            self.members, key=lambda member: int.from_bytes(member.key.node_id, "big") ^ key
        )

    def upstream_calls(self) -> int:
        return sum(member.fetcher.total_calls for member in self.members)

    async def close(self) -> None:
        for member in self.members:
            await member.service.aclose()


async def until(condition: Callable[[], bool], *, turns: int = 1000) -> None:
    """Let other tasks run (no time passes) until ``condition`` holds."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition never held")
