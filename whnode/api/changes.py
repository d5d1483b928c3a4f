"""``GET /v1/menus/{dispensary}/changes?since=...``: what changed between two snapshots.

``since`` is epoch milliseconds, an ISO-8601 time (as ``at``) or an ETag of a menu answer
(``"<hash>-<ms>-json"``, quoted or not, any representation or coding). The old snapshot is
the one current at that time (for an ETag: the snapshot it names, which must still be found),
the new one is the one ``GET /v1/menus/{id}`` would answer with (``max_age`` as there); both
come through the service, verified, from the store or an owner. Both are named by publisher,
content hash and fetch time, so a light client can fetch and check them.

The diff (``whnode.record.diff``) is computed once per pair of snapshots and kept; for large
menus in a worker thread. ``full=true`` adds every changed product in full (with the added
ones and the new order, a client holding the old snapshot rebuilds the new one exactly).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from typing import Any, Final

from aiohttp import web

from whnode.api.context import ApiContext, MenuReader, service_of
from whnode.api.exceptions import InvalidParameter
from whnode.api.menus import JSON, answer_headers, not_modified
from whnode.api.opened import OpenedMenus
from whnode.api.params import negotiate, parse_at, parse_max_age, single_values
from whnode.api.render import dumps, history_entry, product_document
from whnode.record.diff import MenuDiff, diff_menus
from whnode.record.model import Menu, Potency, Quantity, parse_dispensary_id
from whnode.record.signed import SignedRecord
from whnode.service.exceptions import MenuNotFound
from whnode.service.types import MenuAnswer

__all__ = ["KEPT_DIFFS", "ChangeHandlers", "diff_document", "parse_since", "snapshots_since"]

KEPT_DIFFS: Final = 64
"""Diff documents kept (per pair of snapshots and ``full``), most recently used last."""
INLINE_DIFF_PRODUCTS: Final = 1000
"""Diffs of larger menus are computed in a worker thread."""

_ETAG = re.compile(r'(?:W/)?"?(?P<hash>[0-9a-f]{24})-(?P<ms>[0-9]{1,16})-[a-z+]{1,16}"?')
_BOOLEANS: Final = {"true": True, "1": True, "false": False, "0": False}


def _quantity(quantity: Quantity) -> dict[str, Any]:
    return {"amount": quantity.amount, "unit": quantity.unit.value}


def _potency(potency: Potency | None) -> dict[str, Any] | None:
    if potency is None:
        return None
    return {"low": potency.low, "high": potency.high, "unit": potency.unit.value}


def summary_of(diff: MenuDiff) -> dict[str, int]:
    """Counts of a diff (schema ``MenuChanges.summary``)."""
    specials = [special for change in diff.changed for special in change.specials]
    return {
        "added": len(diff.added),
        "removed": len(diff.removed),
        "changed": len(diff.changed),
        "price_changed": sum(1 for change in diff.changed if change.prices),
        "specials_started": sum(1 for special in specials if special.started),
        "specials_ended": sum(1 for special in specials if special.ended),
        "thc_changed": sum(1 for change in diff.changed if change.thc is not None),
    }


def diff_document(
    diff: MenuDiff, old: SignedRecord, new: SignedRecord, *, full: bool
) -> dict[str, Any]:
    """The documented JSON of a diff (schema ``MenuChanges``)."""
    changed = []
    for change in diff.changed:
        item: dict[str, Any] = {
            "source_id": change.key[0],
            "name": change.product.name,
            "prices": [
                {
                    "quantity": _quantity(price.quantity),
                    "old_price_cents": price.old_cents,
                    "new_price_cents": price.new_cents,
                }
                for price in change.prices
            ],
            "specials": [
                {
                    "quantity": _quantity(special.quantity),
                    "old_special_price_cents": special.old_cents,
                    "new_special_price_cents": special.new_cents,
                }
                for special in change.specials
            ],
            "thc": None
            if change.thc is None
            else {"old": _potency(change.thc[0]), "new": _potency(change.thc[1])},
            "fields": list(change.fields),
        }
        if full:
            item["product"] = product_document(change.product)
        changed.append(item)
    return {
        "dispensary_id": diff.dispensary_id,
        "from": history_entry(old),
        "to": history_entry(new),
        "summary": summary_of(diff),
        "added": [{"index": index, **product_document(product)} for index, product in diff.added],
        "removed": [{"source_id": key[0], "name": product.name} for key, product in diff.removed],
        "changed": changed,
        "reordered": diff.order is not None,
    }


class ChangeHandlers:
    """The changes endpoint over one ApiContext."""

    def __init__(self, context: ApiContext, opened: OpenedMenus) -> None:
        self._context = context
        self._opened = opened
        self._kept: OrderedDict[tuple[bytes, bytes, bool], bytes] = OrderedDict()
        self.computed = 0
        self.cpu_seconds = 0.0

    async def changes(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/menus/{dispensary}/changes"""
        dispensary_id = parse_dispensary_id(request.match_info["dispensary"])
        values = single_values(request.query, ("since", "max_age", "full"))
        if "since" not in values:
            raise InvalidParameter("since", "required: epoch ms, an ISO-8601 time or an ETag")
        since = parse_since(values["since"])
        max_age = parse_max_age(values["max_age"]) if "max_age" in values else None
        full = _BOOLEANS.get(values.get("full", "false").lower())
        if full is None:
            raise InvalidParameter("full", "expected true or false")
        negotiate(request.headers.get("Accept"), (JSON,))
        current, old = await snapshots_since(
            service_of(self._context), dispensary_id, since, max_age
        )
        new = current.record
        headers = answer_headers(
            current, f"changes-{bytes(old.content_hash).hex()[:12]}-{int(full)}"
        )
        if not_modified(request, headers["ETag"], new.fetched_at_ms):
            return web.Response(status=304, headers=headers)
        headers["Content-Type"] = JSON.content_type
        return web.Response(body=await self._document(old, new, full), headers=headers)

    async def _document(self, old: SignedRecord, new: SignedRecord, full: bool) -> bytes:
        key = (
            bytes(old.content_hash) + old.fetched_at_ms.to_bytes(8, "big"),
            bytes(new.content_hash) + new.fetched_at_ms.to_bytes(8, "big"),
            full,
        )
        kept = self._kept.get(key)
        if kept is not None:
            self._kept.move_to_end(key)
            return kept
        before = (await self._opened.get(old)).menu
        after = (await self._opened.get(new)).menu
        if max(len(before.products), len(after.products)) > INLINE_DIFF_PRODUCTS:
            body, cpu = await asyncio.to_thread(self._render, before, after, old, new, full)
        else:
            body, cpu = self._render(before, after, old, new, full)
        self.computed += 1
        self.cpu_seconds += cpu
        self._kept[key] = body
        while len(self._kept) > KEPT_DIFFS:
            self._kept.popitem(last=False)
        return body

    @staticmethod
    def _render(
        before: Menu, after: Menu, old: SignedRecord, new: SignedRecord, full: bool
    ) -> tuple[bytes, float]:
        started = time.thread_time()
        body = dumps(diff_document(diff_menus(before, after), old, new, full=full))
        return body, time.thread_time() - started


def parse_since(text: str) -> tuple[int, str | None]:
    """``since`` (epoch ms, an ISO-8601 time or an ETag) as (epoch ms, the ETag's hash
    prefix or None); raises InvalidParameter."""
    etag = _ETAG.fullmatch(text)
    if etag is not None:
        return int(etag["ms"]), etag["hash"]
    return parse_at_since(text), None


async def snapshots_since(
    service: MenuReader,
    dispensary_id: str,
    since: tuple[int, str | None],
    max_age: float | None,
) -> tuple[MenuAnswer, SignedRecord]:
    """(the current snapshot's answer, the snapshot current at ``since``, from
    ``parse_since``): the two a diff compares, for ``GET /v1/menus/{id}/changes`` and
    ``whnode.Node.changes``. Raises MenuNotFound when nothing that old is held; when
    ``since`` is after the current snapshot, both are the current one."""
    since_ms, etag_hash = since
    current = await service.get_menu(dispensary_id, max_age=max_age)
    try:
        then = await service.get_menu(dispensary_id, at_ms=since_ms)
    except MenuNotFound:
        raise MenuNotFound(
            f"no snapshot of {dispensary_id} from before {since_ms} is held",
            dispensary_id=dispensary_id,
        ) from None
    old = then.record
    if etag_hash is not None and bytes(old.content_hash).hex()[:24] != etag_hash:
        raise InvalidParameter("since", "the snapshot this ETag names is no longer held")
    if old.fetched_at_ms > current.record.fetched_at_ms:
        old = current.record  # since is after the newest snapshot: nothing changed
    return current, old


def parse_at_since(text: str) -> int:
    """``since`` as epoch ms or an ISO-8601 time (the forms ``at`` takes)."""
    try:
        return parse_at(text)
    except InvalidParameter:
        raise InvalidParameter(
            "since", "expected epoch ms, an ISO-8601 time with an offset, or an ETag"
        ) from None
