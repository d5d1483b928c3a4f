"""Every adapter's parse_pages on arbitrary JSON: a Menu or an adapter error, nothing else."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from whnode.record.model import Menu, Vendor
from whnode.upstream.adapters import ADAPTERS, AdapterParseError
from whnode.upstream.exceptions import UpstreamError

DISPENSARIES = {
    Vendor.DUTCHIE: "dutchie:67068790432055b33dc37888",
    Vendor.JANE: "jane:1547",
    Vendor.WEEDMAPS: "weedmaps:ultra-health-gallup",
    Vendor.LEAFLY: "leafly:some-slug",
    Vendor.TREEZ: "treez:some-store",
    Vendor.FLOWHUB: "flowhub:some-location",
}
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
KEYS = st.sampled_from(
    [
        "data", "filteredProducts", "products", "hits", "menu_items", "menuItems", "meta",
        "metadata", "errors", "attributes", "prices", "variants", "Options", "Prices",
        "product_list", "product_configurable_fields", "pricing", "productName",
        "recPrices", "name", "Name", "id", "_id", "product_id", "price", "quantity", "unit",
        "available_weights", "price_gram", "type", "kind", "category", "search_attributes",
    ]
) | st.text(max_size=8)  # fmt: skip
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=30,
)


@pytest.mark.parametrize("vendor", list(DISPENSARIES))
@settings(max_examples=100, deadline=None)
@given(st.lists(DOCUMENTS, min_size=1, max_size=3))
def test_parse_pages_only_raises_adapter_errors(vendor: Vendor, documents: list[object]) -> None:
    pages = [json.dumps(document).encode() for document in documents]
    try:
        menu = ADAPTERS[vendor].parse_pages(DISPENSARIES[vendor], pages, 1)
    except (AdapterParseError, UpstreamError):
        return
    assert isinstance(menu, Menu)
