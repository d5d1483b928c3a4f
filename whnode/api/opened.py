"""Opened menus kept for the endpoints that read products (queries, diffs).

Opening a record (decompress, decode with caps, check against its signed header:
``open_record``) costs milliseconds for a 2,500-product menu; queries and diffs of one
snapshot come in bursts, so the opened menu and the products' folded search texts are kept
for the most recently used snapshots. Large records are opened in a worker thread, once for
all concurrent callers; a failed opening is not kept.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from whnode.record.acceptance import open_record
from whnode.record.model import Menu
from whnode.record.query import searchable_text
from whnode.record.signed import SignedRecord

__all__ = ["INLINE_OPEN_PAYLOAD_BYTES", "KEPT_MENUS", "OpenedMenu", "OpenedMenus"]

KEPT_MENUS: Final = 16
"""Opened menus kept, most recently used last."""
INLINE_OPEN_PAYLOAD_BYTES: Final = 32 * 1024
"""Records with a larger (compressed) payload are opened in a worker thread."""


@dataclass(frozen=True, slots=True)
class OpenedMenu:
    menu: Menu
    texts: tuple[str, ...]
    """``searchable_text`` of each product, in order."""


def open_menu(record: SignedRecord) -> OpenedMenu:
    """``record`` opened and checked (CPU work; raises RecordError)."""
    menu = open_record(record)
    return OpenedMenu(menu, tuple(searchable_text(product) for product in menu.products))


class OpenedMenus:
    """The opened form of recently used records."""

    def __init__(self, kept: int = KEPT_MENUS) -> None:
        self._kept = kept
        self._entries: OrderedDict[tuple[str, int, bytes], asyncio.Future[OpenedMenu]] = (
            OrderedDict()
        )
        self.opened = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, record: SignedRecord) -> OpenedMenu:
        """The opened menu of ``record``, opened once while kept."""
        key = (record.dispensary_id, record.fetched_at_ms, bytes(record.content_hash))
        found = self._entries.get(key)
        if found is None:
            self.opened += 1
            if len(record.payload) <= INLINE_OPEN_PAYLOAD_BYTES:
                found = asyncio.get_running_loop().create_future()
                try:
                    found.set_result(open_menu(record))
                except Exception as exc:
                    found.set_exception(exc)
            else:
                found = asyncio.ensure_future(asyncio.to_thread(open_menu, record))
            self._entries[key] = found
            while len(self._entries) > self._kept:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        try:
            return await asyncio.shield(found)
        except Exception:
            self._entries.pop(key, None)  # a failed opening is not kept
            raise
