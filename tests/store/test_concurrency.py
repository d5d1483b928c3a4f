"""Readers during writes: consistent snapshots, no "database is locked"."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.store.conftest import is_intact, make_record
from whnode.store import DurableStore

HISTORY = 5
WRITES = 400


async def test_concurrent_readers_see_consistent_snapshots_while_a_writer_writes(
    tmp_path: Path,
) -> None:
    store = await DurableStore.open(
        tmp_path / "store.sqlite3", history_per_dispensary=HISTORY, max_bytes=1 << 30
    )
    done = asyncio.Event()
    seen_newest: set[int] = set()

    async def writer() -> None:
        try:
            for t in range(1, WRITES + 1):
                assert await store.put(make_record("shop-a", t, size=8_000))
                await store.put(make_record(f"shop-{t % 7}", t, size=2_000))
        finally:
            done.set()

    async def reader() -> int:
        reads = 0
        last_newest = 0
        while not done.is_set():
            history = await store.history("shop-a", 10)
            times = [record.fetched_at_ms for record in history]
            # one consistent snapshot: a contiguous, complete window, newest first, intact
            if times:
                assert times == list(range(times[0], max(0, times[0] - HISTORY), -1))
            assert all(is_intact(record) for record in history)
            newest = await store.newest("shop-a")
            if newest is not None:
                assert is_intact(newest)
                assert newest.fetched_at_ms >= last_newest, "newest went back in time"
                last_newest = newest.fetched_at_ms
                seen_newest.add(last_newest)
                earlier = await store.at("shop-a", last_newest - 2)
                assert earlier is None or earlier.fetched_at_ms == last_newest - 2
            reads += 3
        return reads

    try:
        results = await asyncio.gather(writer(), *(reader() for _ in range(8)))
        final = await store.history("shop-a", 10)
        assert [r.fetched_at_ms for r in final] == list(range(WRITES, WRITES - HISTORY, -1))
        statistics = store.statistics()
        assert statistics.errors == 0
        assert statistics.puts == 2 * WRITES
    finally:
        await store.aclose()
    assert sum(result for result in results[1:] if result is not None) > 100
    # readers ran between writes, not only before or after them
    assert len(seen_newest) > 20
