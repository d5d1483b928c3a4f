"""Vendor adapters: fetch a dispensary's raw pages, parse them into a normalized Menu.

``ADAPTERS[vendor]`` is an ``Adapter`` with two halves:

- ``async fetch_pages(http, source, dispensary_id) -> list[bytes]`` builds the vendor's
  requests and walks its pagination (bounded concurrency) through the HTTP client, any object
  with the ``HttpRequester`` shape (``whnode.upstream.http.UpstreamHttp`` in a node);
- ``parse_pages(dispensary_id, pages, fetched_at_ms) -> Menu`` is pure (it runs in a parse
  worker process): JSON parsing, envelope checks, normalization (``whnode.upstream.normalize``)
  and deduplication. Statistics are left None.

Errors: ``AdapterParseError`` (a ValueError) for pages that are not JSON or have the wrong
envelope; ``AdapterRefusal`` (an ``UpstreamRefused``) for refusals delivered inside an HTTP 200;
``UnknownDispensary`` when the upstream says it does not know the store; the HTTP client's
``UpstreamError`` subclasses pass through ``fetch_pages`` unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from whnode.record.model import Vendor
from whnode.upstream.adapters import dutchie, flowhub, jane, leafly, treez, weedmaps
from whnode.upstream.adapters.base import Adapter, FetchPages, HttpRequester, ParsePages
from whnode.upstream.normalize import AdapterParseError, AdapterRefusal

__all__ = [
    "ADAPTERS",
    "Adapter",
    "AdapterParseError",
    "AdapterRefusal",
    "FetchPages",
    "HttpRequester",
    "ParsePages",
    "adapter_for",
]

ADAPTERS: Final[Mapping[Vendor, Adapter]] = {
    Vendor.DUTCHIE: dutchie.ADAPTER,
    Vendor.JANE: jane.ADAPTER,
    Vendor.WEEDMAPS: weedmaps.ADAPTER,
    Vendor.LEAFLY: leafly.ADAPTER,
    Vendor.TREEZ: treez.ADAPTER,
    Vendor.FLOWHUB: flowhub.ADAPTER,
}
"""The adapter of every supported vendor."""


def adapter_for(vendor: Vendor) -> Adapter:
    """The adapter of ``vendor``; ``KeyError`` when there is none."""
    return ADAPTERS[vendor]
