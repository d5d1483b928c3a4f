"""Shared by the sandbox and adapter tests: a plain HTTP requester and a generated-menu check.

``PlainHttp`` is the smallest real implementation of the adapters' ``HttpRequester``: one
aiohttp request, the body back, ``HttpStatusError`` on anything but 2xx.

``check_generated`` compares a parsed generated menu with the sandbox's items (the truth behind
its pages) field by field, within what each vendor's API can say: Jane has no stock and folds
lineage into four words, Weedmaps discovery has no stock and puts the lineage only on flower,
the JSON:API menu and Leafly have no specials. The tables below are written out by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from whnode.record.model import Category, Lineage, Menu, Potency, PotencyUnit, Product, Vendor
from whnode.sandbox import Item, SandboxConfig, SandboxServer, run_sandbox
from whnode.sandbox.vendors.jane import jane_product_id
from whnode.sandbox.vendors.leafly import leafly_ids
from whnode.sandbox.vendors.weedmaps import weedmaps_id
from whnode.upstream.adapters import ADAPTERS
from whnode.upstream.sources import SourceConfig, SourcesConfig


class HttpStatusError(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"HTTP {status}: {body[:200]!r}")
        self.status = status
        self.body = body


class PlainHttp:
    """A real ``HttpRequester`` over one aiohttp session (no retries, no pacing)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session
        self.requests: list[tuple[str, str, Mapping[str, str] | None, Any]] = []

    async def request(
        self,
        method: str,
        url: str,
        *,
        source: str,
        dispensary_id: str,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> bytes:
        self.requests.append((method, url, params, json))
        async with self.session.request(
            method, url, params=params, json=json, headers=headers
        ) as response:
            body = await response.read()
            if not 200 <= response.status < 300:
                raise HttpStatusError(response.status, body)
            return body


@dataclass
class Upstream:
    sandbox: SandboxServer
    http: PlainHttp
    sources: SourcesConfig

    async def menu(
        self, dispensary_id: str, source: SourceConfig | None = None, fetched_at_ms: int = 1
    ) -> tuple[Menu, list[bytes]]:
        """Fetch a menu over HTTP and parse it: (menu, raw pages)."""
        source = source or self.sources.resolve(dispensary_id)
        adapter = ADAPTERS[source.vendor]
        pages = await adapter.fetch_pages(self.http, source, dispensary_id)
        return adapter.parse_pages(dispensary_id, pages, fetched_at_ms), pages


@asynccontextmanager
async def upstream(config: SandboxConfig | None = None) -> AsyncIterator[Upstream]:
    async with (
        run_sandbox(config or SandboxConfig()) as sandbox,
        aiohttp.ClientSession() as session,
    ):
        yield Upstream(sandbox, PlainHttp(session), SourcesConfig.pointing_at(sandbox.base_url))


# --------------------------------------------------------------------------- expectations
JANE_LINEAGE = {
    Lineage.INDICA: Lineage.INDICA,
    Lineage.SATIVA: Lineage.SATIVA,
    Lineage.HYBRID: Lineage.HYBRID,
    Lineage.INDICA_HYBRID: Lineage.INDICA,
    Lineage.SATIVA_HYBRID: Lineage.SATIVA,
    Lineage.HIGH_CBD: Lineage.HIGH_CBD,
    Lineage.BALANCED: Lineage.HIGH_CBD,
    Lineage.UNKNOWN: Lineage.UNKNOWN,
}
WEEDMAPS_FLOWER_LINEAGE = {
    Lineage.INDICA: Lineage.INDICA,
    Lineage.SATIVA: Lineage.SATIVA,
    Lineage.HYBRID: Lineage.HYBRID,
    Lineage.INDICA_HYBRID: Lineage.INDICA,
    Lineage.SATIVA_HYBRID: Lineage.SATIVA,
}


def expected_id(vendor: Vendor, item: Item) -> str:
    if vendor is Vendor.DUTCHIE:
        return item.key[:24]
    if vendor is Vendor.JANE:
        return str(jane_product_id(item))
    if vendor is Vendor.WEEDMAPS:
        return str(weedmaps_id(item))
    return str(leafly_ids(item)[0])


def expected_lineage(shape: str, item: Item) -> Lineage:
    if shape == "jane":
        return JANE_LINEAGE[item.lineage]
    if shape == "weedmaps":
        if item.category is not Category.FLOWER:
            return Lineage.UNKNOWN
        return WEEDMAPS_FLOWER_LINEAGE.get(item.lineage, Lineage.UNKNOWN)
    return item.lineage


def expected_thc(shape: str, potency: Potency | None) -> Potency | None:
    if shape == "jane":
        if potency is None or potency.unit is not PotencyUnit.PERCENT:
            return None
        return Potency(potency.high, potency.high, PotencyUnit.PERCENT)
    return potency


def check_generated(menu: Menu, items: tuple[Item, ...], shape: str) -> None:
    """Compare a parsed generated menu with its items. ``shape``: dutchie, jane, weedmaps
    (discovery), weedmaps-v1 or leafly."""
    vendor = Vendor(shape.partition("-")[0])
    assert len(menu.products) == len(items)
    by_name: dict[str, Product] = {product.name: product for product in menu.products}
    assert len(by_name) == len(items), "generated names are unique"
    specials = shape in ("dutchie", "jane", "weedmaps")
    stock = shape in ("dutchie", "leafly", "weedmaps-v1")
    for item in items:
        product = by_name[item.name]
        assert product.source_id == expected_id(vendor, item), item.name
        assert product.category is item.category, item.name
        assert (product.brand or "").casefold() == (item.brand or "").casefold(), item.name
        assert product.lineage is expected_lineage(shape, item), item.name
        assert product.thc == expected_thc(shape, item.thc), item.name
        assert product.cbd == expected_thc(shape, item.cbd), item.name
        assert product.description == item.description, item.name
        assert product.image_url == item.image_url, item.name
        got = {
            (o.quantity, o.price_cents, o.special_price_cents, o.stock)
            for o in product.price_options
        }
        want = {
            (
                o.quantity,
                o.price_cents,
                o.special_price_cents if specials else None,
                o.stock if stock else None,
            )
            for o in item.options
        }
        assert got == want, item.name
