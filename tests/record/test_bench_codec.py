"""``whnode bench codec`` measures what it says: upstream-shaped JSON of the same products."""

from __future__ import annotations

import json

import pytest

from whnode.bench import codec as bench
from whnode.record.keys import SigningKey
from whnode.testing.factories import make_menu

# every member of an item in the real Weedmaps JSON:API capture (menu-samples)
CAPTURE_ATTRIBUTES = {
    "name", "slug", "category_name", "body", "is_published", "license_type",
    "online_orderable", "picture_url", "position", "original_picture_url", "avatar_image_url",
    "is_badged", "brand_name", "cannabinoids", "genetics", "prices", "grams_per_eighth",
    "created_at", "updated_at", "parent_category", "sub_category", "measurements", "variants",
    "external_id", "sale", "sku", "compliance_net_mg", "compliance_net_precalc",
    "cart_quantity_multiplier", "inventory_quantity", "shared_inventory",
}  # fmt: skip
CAPTURE_RELATIONSHIPS = {
    "brand", "listing", "product", "strain", "categories", "tags", "menu_parent",
}  # fmt: skip


def test_upstream_json_has_the_captured_shape_and_the_same_products() -> None:
    menu = make_menu(n_products=230)
    pages = [json.loads(page) for page in bench.upstream_json_pages(menu)]
    assert [page["meta"]["page"] for page in pages] == [1, 2, 3]
    items = [item for page in pages for item in page["data"]]
    assert len(items) == len(menu.products)
    for item, product in zip(items, menu.products, strict=True):
        assert set(item) == {"id", "type", "attributes", "links", "relationships"}
        assert set(item["attributes"]) == CAPTURE_ATTRIBUTES
        assert set(item["relationships"]) == CAPTURE_RELATIONSHIPS
        assert item["attributes"]["name"] == product.name
        assert item["attributes"]["body"] == (product.description or "")
        assert item["attributes"]["picture_url"] == product.image_url
        assert len(item["attributes"]["variants"]) == len(product.price_options)


@pytest.mark.parametrize("products", [50])
def test_measure_reports_consistent_sizes(products: int) -> None:
    result = bench.measure(products, repeat=1, key=SigningKey.generate())
    assert result.products == products
    assert result.record_bytes < result.cbor_bytes < result.json_bytes
    assert result.ratio <= bench.GOAL_RATIO
    assert result.encode_sign_ms > 0
    assert result.verify_decode_ms > 0
