"""Treez: a dispensary's own POS API (keyed: ``client_id`` and ``api_key`` from configuration).

A token first: ``POST {base}/v2.0/dispensary/{d}/config/api/gettokens`` with ``client_id``
and ``apikey`` answers ``{access_token, expires_in}``. Then ``GET {base}/v2.0/dispensary/{d}
/product/product_list?active=true&pagesize=50&page=N`` (1-based) with ``Authorization: Bearer
<token>`` and ``client_id`` headers answers ``{resultCode, data: {product_list, total_count,
page_count}}``. Tokens are kept per API and client until shortly before they expire; a 401 on
any page gets a new one, once (the walk's ``prepare`` step).

Each product is one size (``product_configurable_fields``: ``name``, ``brand``, ``amount``
and ``uom``, a ``size`` label, ``classification`` = lineage), priced by ``pricing.price_sell``
(a discount in ``discounted_price``), stocked as ``sellable_quantity``, with potency as
min/max ranges in ``lab_results``: sizes of one product merge as Leafly's do.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, Final

from whnode.record.model import DropReason, PotencyUnit, Vendor
from whnode.upstream.adapters.base import HttpRequester, as_dict, as_list, dig, load_page
from whnode.upstream.adapters.walk import (
    ItemReader,
    Page,
    PageCall,
    Request,
    VendorRules,
    adapter,
    read_price,
)
from whnode.upstream.exceptions import UpstreamRefused
from whnode.upstream.normalize import (
    AdapterParseError,
    Candidate,
    clean_description,
    clean_text,
    http_url,
    parse_category,
    parse_lineage,
    parse_potency,
    parse_price_cents,
    parse_stock,
    parse_timestamp_ms,
)
from whnode.upstream.sizes import read_size, size_for
from whnode.upstream.sources import SourceConfig, store_of

__all__ = ["ADAPTER", "RULES", "parse_product"]

LOG = logging.getLogger(__name__)

TOKEN_PATH: Final = "/v2.0/dispensary/{d}/config/api/gettokens"
PRODUCTS_PATH: Final = "/v2.0/dispensary/{d}/product/product_list"
TOKEN_MARGIN_SECONDS: Final = 60.0
"""A token is renewed this long before the expiry its API stated."""
_TOKENS: dict[tuple[str, str], tuple[str, float]] = {}
"""(token URL, client id) → (access token, monotonic expiry): one token per API client."""


def _refused(message: str, dispensary_id: str) -> UpstreamRefused:
    return UpstreamRefused(message, source=str(Vendor.TREEZ), dispensary_id=dispensary_id)


async def prepare(
    http: HttpRequester, source: SourceConfig, dispensary_id: str, renew: bool
) -> Mapping[str, str]:
    """The headers of every page: a valid token (kept, or asked for) and the client id."""
    if source.client_id is None or source.api_key is None:
        raise _refused("treez needs client_id and api_key credentials", dispensary_id)
    url = source.url(TOKEN_PATH.format(d=store_of(dispensary_id)))
    key = (url, source.client_id)
    held = _TOKENS.get(key)
    if renew or held is None or held[1] <= time.monotonic():
        body = await http.request(
            "POST",
            url,
            source=str(Vendor.TREEZ),
            dispensary_id=dispensary_id,
            json={"client_id": source.client_id, "apikey": source.api_key.reveal()},
            headers={"Accept": "application/json"},
        )
        document = as_dict(load_page(body, "treez token answer"))
        token = document.get("access_token")
        if not isinstance(token, str) or not token:
            raise _refused("treez gave no access token", dispensary_id)
        lifetime = parse_price_cents(document.get("expires_in"), cents=True) or 0
        held = (token, time.monotonic() + max(0.0, lifetime - TOKEN_MARGIN_SECONDS))
        _TOKENS[key] = held
        LOG.debug(
            "treez: new access token for %s (client %s, %d s)",
            dispensary_id,
            source.client_id,
            lifetime,
        )
    return {"Authorization": f"Bearer {held[0]}", "client_id": source.client_id}


def request(call: PageCall) -> Request:
    """One page of the active products."""
    return Request(
        "GET",
        call.source.url(PRODUCTS_PATH.format(d=call.store)),
        params={"active": "true", "pagesize": str(call.size), "page": str(call.number)},
        headers={"Accept": "application/json"},
    )


def read_page(document: Any, number: int, dispensary_id: str) -> Page:
    """``data.product_list`` with ``data.page_count``; ``resultCode: FAIL`` is a refusal."""
    if not isinstance(document, dict):
        raise AdapterParseError(f"treez page {number} is not a JSON object")
    if document.get("resultCode") == "FAIL":
        reason = clean_text(document.get("resultReason")) or "no reason given"
        raise _refused(f"treez refused the request: {reason[:200]}", dispensary_id)
    products = dig(document, "data", "product_list")
    if not isinstance(products, list):
        raise AdapterParseError(f"treez page {number} has no data.product_list")
    pages = dig(document, "data", "page_count")
    total = pages if isinstance(pages, int) and not isinstance(pages, bool) else None
    return Page(products, total_pages=total, total_items=dig(document, "data", "total_count"))


def _potency(product: dict[str, Any], code: str) -> Any:
    for result in as_list(product.get("lab_results")):
        result = as_dict(result)
        if str(result.get("result_type", "")).upper() == code:
            low, high = (
                dig(result, "amount", "minimum_value"),
                dig(result, "amount", "maximum_value"),
            )
            unit = "%" if result.get("amount_type") == "PERCENTAGE" else result.get("amount_type")
            return parse_potency([low, high], unit, default_unit=PotencyUnit.PERCENT)
    return None


def parse_product(raw: object, reader: ItemReader) -> Candidate | None:
    """One product of ``product_list`` (one size)."""
    product = reader.as_item(raw)
    if product is None:
        return None
    fields = as_dict(product.get("product_configurable_fields"))
    identity = reader.identity(product.get("product_id"), fields.get("name"))
    if identity is None:
        return None
    identifier, name = identity
    if str(product.get("product_status", "ACTIVE")).upper() != "ACTIVE":
        return reader.drop(DropReason.INACTIVE)
    pricing = as_dict(product.get("pricing"))
    size = read_size({"value": fields.get("amount"), "unit": fields.get("uom")}, fields.get("size"))
    option = reader.option(
        size_for(size, name),
        read_price(pricing.get("price_sell")),
        parse_price_cents(pricing.get("discounted_price")),
        parse_stock(product.get("sellable_quantity")),
        label=fields.get("size") or pricing.get("tier_name"),
    )
    shop = as_dict(product.get("e_commerce"))
    return reader.product(
        parse_timestamp_ms(product.get("last_update_date")),
        source_id=identifier,
        name=name,
        category=parse_category(product.get("category_type"), fields.get("subtype")),
        price_options=reader.options([option]),
        brand=clean_text(fields.get("brand")),
        lineage=parse_lineage(fields.get("classification")),
        thc=_potency(product, "THC"),
        cbd=_potency(product, "CBD"),
        image_url=http_url(shop.get("primary_image")),
        description=clean_description(shop.get("product_description")),
    )


RULES: Final = VendorRules(
    Vendor.TREEZ,
    request,
    read_page,
    parse_product,
    first_page=1,
    merge_sizes=True,
    prepare=prepare,
)
ADAPTER: Final = adapter(RULES)
