"""The cache of rendered representations: LRU under a byte budget, one rendering per key."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.api.support import make_menu, make_record, now_ms
from whnode.api.render import RenderCache, RenderFormat, render
from whnode.record.keys import SigningKey
from whnode.record.signed import SignedRecord


def records(count: int, *, products: int = 2) -> list[SignedRecord]:
    key = SigningKey.generate()
    start = now_ms() - 1_000_000
    return [
        make_record(make_menu(fetched_at_ms=start + index, products=products), key)
        for index in range(count)
    ]


async def test_lru_under_byte_and_entry_budgets() -> None:
    items = records(6)
    size = len(render(items[0], RenderFormat.JSON))
    cache = RenderCache(max_bytes=size * 3 + size // 2, max_entries=100)
    for record in items[:3]:
        await cache.get(record, RenderFormat.JSON)
    await cache.get(items[0], RenderFormat.JSON)  # most recently used now
    await cache.get(items[3], RenderFormat.JSON)  # evicts items[1]
    stats = cache.statistics()
    assert (stats.entries, stats.evictions, stats.hits, stats.misses) == (3, 1, 1, 4)
    assert stats.bytes <= stats.max_bytes
    await cache.get(items[0], RenderFormat.JSON)
    assert cache.statistics().hits == 2
    await cache.get(items[1], RenderFormat.JSON)
    assert cache.statistics().misses == 5
    small = RenderCache(max_bytes=10**9, max_entries=2)
    for record in items:
        await small.get(record, RenderFormat.STATS)
    assert small.statistics().entries == 2


async def test_formats_are_cached_apart_and_render_what_they_should() -> None:
    (record,) = records(1)
    cache = RenderCache()
    as_json = await cache.get(record, RenderFormat.JSON)
    as_cbor = await cache.get(record, RenderFormat.CBOR)
    as_stats = await cache.get(record, RenderFormat.STATS)
    assert as_json.startswith(b'{"dispensary_id"')
    assert as_stats.startswith(b'{"dispensary_id"')
    assert b'"products"' not in as_stats
    assert as_cbor[:1] != b"{"
    assert cache.statistics().entries == 3


async def test_concurrent_misses_of_a_large_record_render_once_off_the_loop() -> None:
    (record,) = records(1, products=4000)
    calls: list[str] = []
    gate = threading.Event()
    rendering = threading.Event()

    def slow_render(item: SignedRecord, render_format: RenderFormat) -> bytes:
        calls.append(threading.current_thread().name)
        rendering.set()
        gate.wait(5)
        return render(item, render_format)

    cache = RenderCache(renderer=slow_render)
    first = asyncio.create_task(cache.get(record, RenderFormat.JSON))
    others = [asyncio.create_task(cache.get(record, RenderFormat.JSON)) for _ in range(5)]
    assert await asyncio.to_thread(rendering.wait, 5)  # the one rendering has started
    first.cancel()  # the client that caused the rendering goes away
    gate.set()
    results = await asyncio.gather(*others)
    assert len(set(results)) == 1
    assert len(calls) == 1
    assert calls[0] != threading.main_thread().name
    with pytest.raises(asyncio.CancelledError):
        await first
    stats = cache.statistics()
    assert (stats.misses, stats.coalesced, stats.entries) == (1, 5, 1)


async def test_rendering_errors_reach_every_waiter_and_are_not_cached() -> None:
    (record,) = records(1, products=4000)
    failures = 0

    def broken(item: SignedRecord, render_format: RenderFormat) -> bytes:
        nonlocal failures
        failures += 1
        raise ValueError("cannot render")

    cache = RenderCache(renderer=broken)
    results = await asyncio.gather(
        *(cache.get(record, RenderFormat.JSON) for _ in range(3)), return_exceptions=True
    )
    assert all(isinstance(result, ValueError) for result in results)
    assert failures == 1
    with pytest.raises(ValueError):
        await cache.get(record, RenderFormat.JSON)
    assert failures == 2
    assert cache.statistics().entries == 0
