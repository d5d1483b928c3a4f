"""Representations of a menu for the public API, and the cache of rendered bytes.

A hot hit must not re-render: ``RenderCache`` keeps the bytes of each rendered
representation, keyed by (dispensary, fetch time, content hash, format, content coding),
least recently used first out under a byte budget. A compressed body is made once from the
plain one (``whnode.api.encoding``) and kept beside it. Concurrent misses for one key share
one rendering, and large menus are rendered and compressed in a worker thread so that
decoding, JSON encoding and compressing a several-MB menu does not stall the event loop.

The JSON shapes are documented in the OpenAPI document (``whnode.api.openapi``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import json
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from whnode.api.encoding import IDENTITY, compress
from whnode.record.acceptance import open_record
from whnode.record.codec import decompress_payload
from whnode.record.documents import product_document
from whnode.record.model import (
    CategoryStatistics,
    DropCount,
    Menu,
    MenuStatistics,
    ParseReport,
)
from whnode.record.signed import SignedRecord

__all__ = [
    "RENDER_CACHE_BYTES",
    "RenderCache",
    "RenderCacheStatistics",
    "RenderFormat",
    "iso_time",
    "menu_document",
    "product_document",
    "record_document",
    "render",
    "statistics_document",
]

RENDER_CACHE_BYTES: Final = 32 * 1024 * 1024
"""Byte budget of the rendered-representation cache."""
RENDER_CACHE_ENTRIES: Final = 512
"""Most representations kept in the rendered-representation cache."""
INLINE_RENDER_PAYLOAD_BYTES: Final = 32 * 1024
"""Records with a larger (compressed) payload are rendered in a worker thread."""
INLINE_COMPRESS_BYTES: Final = 32 * 1024
"""Rendered bodies larger than this are compressed in a worker thread."""


class RenderFormat(enum.StrEnum):
    """A rendered representation of a record."""

    JSON = "json"
    """The menu as documented JSON."""
    CBOR = "cbor"
    """The canonical CBOR of the menu: the signed payload, decompressed."""
    STATS = "stats"
    """The menu's statistics as JSON."""


def iso_time(millis: int) -> str:
    """Epoch milliseconds as an RFC 3339 UTC time with millisecond precision."""
    moment = dt.datetime.fromtimestamp(millis / 1000, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _category_statistics(item: CategoryStatistics) -> dict[str, Any]:
    return {
        "category": item.category.value,
        "product_count": item.product_count,
        "price_per_gram_min": item.price_per_gram_min,
        "price_per_gram_median": item.price_per_gram_median,
        "price_per_gram_max": item.price_per_gram_max,
    }


def _statistics(statistics: MenuStatistics | None) -> dict[str, Any] | None:
    if statistics is None:
        return None
    return {
        "categories": [_category_statistics(item) for item in statistics.categories],
        "thc_percent_histogram": list(statistics.thc_percent_histogram),
        "parse_report": _parse_report(statistics.parse_report),
    }


def _drops(drops: tuple[DropCount, ...]) -> list[dict[str, Any]]:
    return [
        {"reason": drop.reason.value, "count": drop.count, "examples": list(drop.examples)}
        for drop in drops
    ]


def _parse_report(report: ParseReport | None) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        "items_seen": report.items_seen,
        "products_kept": report.products_kept,
        "options_kept": report.options_kept,
        "items_lost": report.items_lost,
        "options_lost": report.options_lost,
        "items_dropped": _drops(report.items_dropped),
        "options_dropped": _drops(report.options_dropped),
    }


def record_document(record: SignedRecord) -> dict[str, Any]:
    return {
        "publisher": bytes(record.publisher).hex(),
        "content_hash": bytes(record.content_hash).hex(),
        "fetched_at_ms": record.fetched_at_ms,
        "size_bytes": len(record.encoded),
    }


def menu_document(menu: Menu, record: SignedRecord) -> dict[str, Any]:
    """The documented JSON object of a menu (schema ``Menu`` in the OpenAPI document)."""
    return {
        "dispensary_id": menu.dispensary_id,
        "name": menu.name,
        "vendor": menu.vendor.value,
        "fetched_at_ms": menu.fetched_at_ms,
        "fetched_at": iso_time(menu.fetched_at_ms),
        "product_count": len(menu.products),
        "products": [product_document(product) for product in menu.products],
        "statistics": _statistics(menu.statistics),
        "record": record_document(record),
    }


def statistics_document(menu: Menu, record: SignedRecord) -> dict[str, Any]:
    """The documented JSON object of a menu's statistics (schema ``MenuStatistics``)."""
    return {
        "dispensary_id": menu.dispensary_id,
        "fetched_at_ms": menu.fetched_at_ms,
        "fetched_at": iso_time(menu.fetched_at_ms),
        "product_count": len(menu.products),
        "statistics": _statistics(menu.statistics),
        "record": record_document(record),
    }


def history_entry(record: SignedRecord) -> dict[str, Any]:
    """One snapshot in a history listing (schema ``Snapshot``)."""
    return {
        "dispensary_id": record.dispensary_id,
        "fetched_at": iso_time(record.fetched_at_ms),
        **record_document(record),
    }


def dumps(document: object) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def render(record: SignedRecord, render_format: RenderFormat) -> bytes:
    """Render ``record`` (CPU work). Raises RecordError.

    JSON and statistics decode the menu (``open_record``: decompress, decode with caps, check
    it against the signed header). CBOR is the signed payload decompressed (under the caps),
    without decoding it: what the publisher signed, byte for byte, for clients that decode it
    themselves; a 2,500-product menu then costs a millisecond instead of a full decode.
    """
    if render_format is RenderFormat.CBOR:
        return decompress_payload(record.payload)
    menu = open_record(record)
    if render_format is RenderFormat.JSON:
        return dumps(menu_document(menu, record))
    return dumps(statistics_document(menu, record))


@dataclass(frozen=True, slots=True)
class RenderCacheStatistics:
    """A frozen snapshot of the render cache's counters."""

    hits: int
    misses: int
    coalesced: int
    """Misses that waited for a rendering of the same key already running."""
    evictions: int
    entries: int
    bytes: int
    max_bytes: int
    compressions: int = 0
    """Bodies compressed (once per record, representation and content coding)."""


_Key = tuple[str, int, bytes, RenderFormat, str]


class RenderCache:
    """Rendered bytes per (dispensary, fetched_at, content hash, format, coding), LRU by
    bytes."""

    def __init__(
        self,
        *,
        max_bytes: int = RENDER_CACHE_BYTES,
        max_entries: int = RENDER_CACHE_ENTRIES,
        renderer: Callable[[SignedRecord, RenderFormat], bytes] = render,
    ) -> None:
        self._max_bytes = max_bytes
        self._max_entries = max_entries
        self._renderer = renderer
        self._entries: OrderedDict[_Key, bytes] = OrderedDict()
        self._pending: dict[_Key, asyncio.Task[bytes]] = {}
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._coalesced = 0
        self._evictions = 0
        self._compressions = 0

    @staticmethod
    def key(record: SignedRecord, render_format: RenderFormat, coding: str = IDENTITY) -> _Key:
        return (
            record.dispensary_id,
            record.fetched_at_ms,
            bytes(record.content_hash),
            render_format,
            coding,
        )

    def peek(
        self, record: SignedRecord, render_format: RenderFormat, coding: str = IDENTITY
    ) -> bytes | None:
        """The cached bytes (counted as a hit), or None without counting anything."""
        key = self.key(record, render_format, coding)
        cached = self._entries.get(key)
        if cached is not None:
            self._entries.move_to_end(key)
            self._hits += 1
        return cached

    def note_hit(self) -> None:
        """Count a hit on bytes the caller kept from an earlier ``peek`` or ``get``."""
        self._hits += 1

    async def get(
        self, record: SignedRecord, render_format: RenderFormat, coding: str = IDENTITY
    ) -> bytes:
        """The rendered bytes in ``coding``, from the cache or made once for all concurrent
        callers.

        Small records are rendered inline (microseconds); large ones, and every compressed
        body, in a task that every concurrent caller awaits and that a caller's cancellation
        (a client gone away) does not cancel; the CPU work of large ones runs in a worker
        thread.
        """
        cached = self.peek(record, render_format, coding)
        if cached is not None:
            return cached
        key = self.key(record, render_format, coding)
        if coding == IDENTITY and len(record.payload) <= INLINE_RENDER_PAYLOAD_BYTES:
            self._misses += 1
            data = self._renderer(record, render_format)
            self._store(key, data)
            return data
        task = self._pending.get(key)
        if task is None:
            if coding == IDENTITY:
                self._misses += 1  # a compression is counted as one (of a rendering held)
            task = asyncio.get_running_loop().create_task(
                self._produce(key, record, render_format, coding),
                name=f"render {record.dispensary_id} {render_format.value} {coding}",
            )
            self._pending[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        else:
            self._coalesced += 1
        return await asyncio.shield(task)

    async def _produce(
        self, key: _Key, record: SignedRecord, render_format: RenderFormat, coding: str
    ) -> bytes:
        if coding == IDENTITY:
            data = await asyncio.to_thread(self._renderer, record, render_format)
        else:
            plain = await self.get(record, render_format)
            if len(plain) <= INLINE_COMPRESS_BYTES:
                data = compress(plain, coding)
            else:
                data = await asyncio.to_thread(compress, plain, coding)
            self._compressions += 1
        self._store(key, data)
        return data

    def _finished(self, key: _Key, task: asyncio.Task[bytes]) -> None:
        self._pending.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved here: every waiter may have gone away

    async def aclose(self) -> None:
        """Cancel renderings still running (at application shutdown)."""
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _store(self, key: _Key, data: bytes) -> None:
        if len(data) > self._max_bytes:
            return
        self._entries[key] = data
        self._bytes += len(data)
        while self._bytes > self._max_bytes or len(self._entries) > self._max_entries:
            _, dropped = self._entries.popitem(last=False)
            self._bytes -= len(dropped)
            self._evictions += 1

    def statistics(self) -> RenderCacheStatistics:
        return RenderCacheStatistics(
            hits=self._hits,
            misses=self._misses,
            coalesced=self._coalesced,
            evictions=self._evictions,
            entries=len(self._entries),
            bytes=self._bytes,
            max_bytes=self._max_bytes,
            compressions=self._compressions,
        )
