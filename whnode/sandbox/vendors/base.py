"""Helpers every simulated vendor API uses: JSON answers, money and time formats, pages."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

from aiohttp import web

from whnode.record.model import Lineage
from whnode.sandbox.catalog import Item

__all__ = [
    "html_description",
    "iso",
    "json_response",
    "money",
    "paged",
    "quirk_rng",
    "untidy_name",
    "with_duplicates",
]

DUPLICATE_EVERY: Final = 97
"""In served lists of 100 items or more, every 97th item appears twice, 37 places later:
pages overlap as they do upstream."""
DUPLICATE_OFFSET: Final = 37


def json_response(
    document: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """A compact JSON answer."""
    return web.Response(
        body=json.dumps(document, separators=(",", ":")).encode(),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def quirk_rng(item: Item, vendor: str) -> random.Random:
    """The draws that decide how one item is rendered by one vendor (stable across versions)."""
    return random.Random(f"{item.key}:{vendor}:quirks")


def money(cents: int, rng: random.Random, *, strings: float = 0.0) -> float | int | str:
    """A price in dollars as the APIs write it: an int when whole, else a float; with
    probability ``strings`` a string (``"31.46"``)."""
    if rng.random() < strings:
        return f"{cents / 100:.2f}"
    return cents // 100 if cents % 100 == 0 else cents / 100


def iso(ms: int, *, fraction: bool = True) -> str:
    """ISO-8601 UTC with ``Z`` (milliseconds optional)."""
    when = datetime.fromtimestamp(ms / 1000, tz=UTC)
    if fraction:
        return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def untidy_name(name: str, rng: random.Random) -> str:
    """``name`` as menus write it: now and then a double space, a ``™``, stray spaces or
    curly apostrophes (all undone by normalization)."""
    draw = rng.random()
    if draw < 0.08 and " " in name:
        return name.replace(" ", "  ", 1)
    if draw < 0.12:
        return name + "™"
    if draw < 0.16:
        return f" {name} "
    if "'" in name and draw < 0.5:
        return name.replace("'", "\u2019")
    return name


def untidy_brand(brand: str | None, rng: random.Random) -> str | None:
    """A brand, now and then in lower case or with a curly apostrophe."""
    if brand is None:
        return None
    draw = rng.random()
    if draw < 0.05:
        return brand.lower()
    if "'" in brand and draw < 0.3:
        return brand.replace("'", "\u2019")
    return brand


def html_description(
    text: str | None, rng: random.Random, *, html_share: float = 0.16
) -> str | None:
    """A description, as HTML paragraphs for ``html_share`` of the items."""
    if text is None:
        return None
    if rng.random() < html_share:
        lines = text.split("\n")
        return "".join(f"<p>{line.replace('&', '&amp;')}&nbsp;</p>" for line in lines)
    return text


LINEAGE_WORDS: Final[dict[Lineage, str | None]] = {
    Lineage.INDICA: "Indica",
    Lineage.SATIVA: "Sativa",
    Lineage.HYBRID: "Hybrid",
    Lineage.INDICA_HYBRID: "Indica-Hybrid",
    Lineage.SATIVA_HYBRID: "Sativa-Hybrid",
    Lineage.HIGH_CBD: "High CBD",
    Lineage.BALANCED: "1 to 1",
    Lineage.UNKNOWN: None,
}
"""Lineage as Dutchie writes it."""


def with_duplicates(entries: Sequence[Any]) -> list[Any]:
    """The served list: every ``DUPLICATE_EVERY``-th entry repeated ``DUPLICATE_OFFSET``
    places later (lists under 100 entries are served as they are)."""
    served = list(entries)
    if len(served) < 100:
        return served
    for index in range(len(entries) - 1 - DUPLICATE_OFFSET, 0, -1):
        if index % DUPLICATE_EVERY == DUPLICATE_EVERY // 2:
            served.insert(index + DUPLICATE_OFFSET, entries[index])
    return served


def paged(entries: Sequence[Any], offset: int, size: int) -> list[Any]:
    """``entries[offset:offset + size]`` (empty past the end)."""
    if offset < 0 or size <= 0:
        return []
    return list(entries[offset : offset + size])
