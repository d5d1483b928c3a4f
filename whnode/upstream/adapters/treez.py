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

from collections.abc import Mapping
from typing import Any, Final

from whnode.record.model import DropReason, PotencyUnit, Vendor
from whnode.upstream import normalize
from whnode.upstream.adapters import walk
from whnode.upstream.adapters.base import HttpRequester, as_dict, as_list, dig, load_page
from whnode.upstream.exceptions import UpstreamRefused
from whnode.upstream.sizes import read_size, size_for
from whnode.upstream.sources import SourceConfig, store_of

__all__ = ["ADAPTER", "RULES", "parse_product"]

TOKEN_PATH: Final = "/v2.0/dispensary/{d}/config/api/gettokens"
PRODUCTS_PATH: Final = "/v2.0/dispensary/{d}/product/product_list"


def _refused(message: str, dispensary_id: str) -> UpstreamRefused:
    return UpstreamRefused(message, source=str(Vendor.TREEZ), dispensary_id=dispensary_id)


async def prepare(
    http: HttpRequester, source: SourceConfig, dispensary_id: str, renew: bool
) -> Mapping[str, str]:
    """The headers of every page: a valid token (kept, or asked for) and the client id."""
    if source.client_id is None or source.api_key is None:
        raise _refused("treez needs client_id and api_key credentials", dispensary_id)
    url = source.url(TOKEN_PATH.format(d=store_of(dispensary_id)))
    token = None if renew else walk.TOKENS.held(url, source.client_id)
    if token is None:
        credentials = {"client_id": source.client_id, "apikey": source.api_key.reveal()}
        body = await http.request(
            "POST", url, source=str(Vendor.TREEZ), dispensary_id=dispensary_id, json=credentials
        )
        document = as_dict(load_page(body, "treez token answer"))
        token = document.get("access_token")
        if not isinstance(token, str) or not token:
            raise _refused("treez gave no access token", dispensary_id)
        lifetime = normalize.parse_decimal(document.get("expires_in")) or 0
        walk.TOKENS.keep(url, source.client_id, token, float(lifetime))
    return {"Authorization": f"Bearer {token}", "client_id": source.client_id}


def request(call: walk.PageCall) -> walk.Request:
    """One page of the active products."""
    return walk.Request(
        "GET",
        call.source.url(PRODUCTS_PATH.format(d=call.store)),
        params={"active": "true", "pagesize": str(call.size), "page": str(call.number)},
        headers={"Accept": "application/json"},
    )


def read_page(document: Any, number: int, dispensary_id: str) -> walk.Page:
    """``data.product_list`` with ``data.page_count``; ``resultCode: FAIL`` is a refusal."""
    if not isinstance(document, dict):
        raise normalize.AdapterParseError(f"treez page {number} is not a JSON object")
    if document.get("resultCode") == "FAIL":
        reason = normalize.clean_text(document.get("resultReason")) or "no reason given"
        raise _refused(f"treez refused the request: {reason[:200]}", dispensary_id)
    products = dig(document, "data", "product_list")
    if not isinstance(products, list):
        raise normalize.AdapterParseError(f"treez page {number} has no data.product_list")
    pages = dig(document, "data", "page_count")
    total = pages if isinstance(pages, int) and not isinstance(pages, bool) else None
    return walk.Page(products, total_pages=total, total_items=dig(document, "data", "total_count"))


def _potency(product: dict[str, Any], code: str) -> Any:
    for result in as_list(product.get("lab_results")):
        result = as_dict(result)
        if str(result.get("result_type", "")).upper() == code:
            low, high = (
                dig(result, "amount", "minimum_value"),
                dig(result, "amount", "maximum_value"),
            )
            unit = "%" if result.get("amount_type") == "PERCENTAGE" else result.get("amount_type")
            return normalize.parse_potency([low, high], unit, default_unit=PotencyUnit.PERCENT)
    return None


def parse_product(raw: object, reader: walk.ItemReader) -> normalize.Candidate | None:
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
        walk.read_price(pricing.get("price_sell")),
        normalize.parse_price_cents(pricing.get("discounted_price")),
        normalize.parse_stock(product.get("sellable_quantity")),
        label=fields.get("size") or pricing.get("tier_name"),
    )
    shop = as_dict(product.get("e_commerce"))
    return reader.product(
        normalize.parse_timestamp_ms(product.get("last_update_date")),
        source_id=identifier,
        name=name,
        category=normalize.parse_category(product.get("category_type"), fields.get("subtype")),
        price_options=reader.options([option]),
        brand=normalize.clean_text(fields.get("brand")),
        lineage=normalize.parse_lineage(fields.get("classification")),
        thc=_potency(product, "THC"),
        cbd=_potency(product, "CBD"),
        image_url=normalize.http_url(shop.get("primary_image")),
        description=normalize.clean_description(shop.get("product_description")),
    )


RULES: Final = walk.VendorRules(
    Vendor.TREEZ,
    request,
    read_page,
    parse_product,
    first_page=1,
    merge_sizes=True,
    prepare=prepare,
)
ADAPTER: Final = walk.adapter(RULES)
