"""Shared helpers of the store tests: record factories and the conformance adapters."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol

import pytest

from whnode.store import DurableStore, HotCache, StoredRecord
from whnode.testing.memory_store import MemoryStore

CONFORMANCE_HISTORY = 4
"""History window both implementations are given in the conformance suite."""


def make_record(
    dispensary_id: str, fetched_at_ms: int, *, size: int = 256, content: bytes | None = None
) -> StoredRecord:
    """A record whose bytes are derived from its key, so a reader can check them."""
    seed = f"{dispensary_id}/{fetched_at_ms}".encode()
    block = hashlib.sha256(seed).digest()
    data = (block * (size // len(block) + 1))[:size]
    content_hash = hashlib.sha256(content if content is not None else seed).digest()
    return StoredRecord(dispensary_id, fetched_at_ms, content_hash, data)


def is_intact(record: StoredRecord) -> bool:
    """True when the record's bytes are the ones ``make_record`` derives from its key."""
    expected = make_record(record.dispensary_id, record.fetched_at_ms, size=record.nbytes)
    return record.data == expected.data


class Holder(Protocol):
    """What the hot cache and the durable store have in common, seen through async calls."""

    async def put(self, record: StoredRecord) -> bool: ...
    async def newest(self, dispensary_id: str) -> StoredRecord | None: ...
    async def at(self, dispensary_id: str, t_ms: int) -> StoredRecord | None: ...
    async def history(self, dispensary_id: str, limit: int) -> list[StoredRecord]: ...
    async def discard(self, dispensary_id: str) -> int: ...
    async def delete(self, dispensary_id: str, fetched_at_ms: int) -> bool: ...
    def held_bytes(self) -> int: ...
    def held_records(self) -> int: ...


class HotHolder:
    def __init__(self, cache: HotCache) -> None:
        self.cache = cache

    async def put(self, record: StoredRecord) -> bool:
        return self.cache.put(record)

    async def newest(self, dispensary_id: str) -> StoredRecord | None:
        return self.cache.newest(dispensary_id)

    async def at(self, dispensary_id: str, t_ms: int) -> StoredRecord | None:
        return self.cache.at(dispensary_id, t_ms)

    async def history(self, dispensary_id: str, limit: int) -> list[StoredRecord]:
        return self.cache.history(dispensary_id, limit)

    async def discard(self, dispensary_id: str) -> int:
        return self.cache.discard(dispensary_id)

    async def delete(self, dispensary_id: str, fetched_at_ms: int) -> bool:
        return self.cache.delete(dispensary_id, fetched_at_ms)

    def held_bytes(self) -> int:
        return self.cache.statistics().bytes

    def held_records(self) -> int:
        return self.cache.statistics().entries


class DurableHolder:
    def __init__(self, store: DurableStore) -> None:
        self.store = store

    async def put(self, record: StoredRecord) -> bool:
        return await self.store.put(record)

    async def newest(self, dispensary_id: str) -> StoredRecord | None:
        return await self.store.newest(dispensary_id)

    async def at(self, dispensary_id: str, t_ms: int) -> StoredRecord | None:
        return await self.store.at(dispensary_id, t_ms)

    async def history(self, dispensary_id: str, limit: int) -> list[StoredRecord]:
        return await self.store.history(dispensary_id, limit)

    async def discard(self, dispensary_id: str) -> int:
        return await self.store.discard(dispensary_id)

    async def delete(self, dispensary_id: str, fetched_at_ms: int) -> bool:
        return await self.store.delete(dispensary_id, fetched_at_ms)

    def held_bytes(self) -> int:
        return self.store.statistics().bytes

    def held_records(self) -> int:
        return self.store.statistics().records


async def open_holder(kind: str, directory: Path) -> tuple[Holder, DurableStore | None]:
    """A fresh holder of ``kind`` with a large budget and the conformance history window."""
    if kind == "hot":
        return HotHolder(HotCache(1 << 30, history_per_dispensary=CONFORMANCE_HISTORY)), None
    if kind == "memory":  # the durable store's in-memory twin (whnode.testing)
        return MemoryStore(history_per_dispensary=CONFORMANCE_HISTORY), None
    store = await DurableStore.open(
        directory / "store.sqlite3",
        history_per_dispensary=CONFORMANCE_HISTORY,
        max_bytes=1 << 30,
    )
    return DurableHolder(store), store


@pytest.fixture(params=["hot", "durable", "memory"])
async def holder(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Holder]:
    """Each implementation in turn, for the conformance suite."""
    opened, store = await open_holder(request.param, tmp_path)
    try:
        yield opened
    finally:
        if store is not None:
            await store.aclose()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[DurableStore]:
    """A durable store in tmp_path with a generous quota and a history window of 4."""
    opened = await DurableStore.open(
        tmp_path / "store.sqlite3", history_per_dispensary=4, max_bytes=1 << 30
    )
    try:
        yield opened
    finally:
        await opened.aclose()
