"""``whnode bench codec``: record size against upstream JSON, and codec/signature costs.

For menus of 250 and 2,500 products (``whnode.testing.factories.make_menu``) it builds the
upstream-style JSON of the same products (the field set of a Weedmaps JSON:API menu item:
slugs, several image URLs, category objects, a price table, variants with weights, compliance
fields) and compares its size with the signed record's; then it times encode+sign and
verify+decode per record.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from whnode.record.acceptance import TrustPolicy, accept_record, open_record
from whnode.record.codec import content_hash, encode_menu
from whnode.record.keys import SigningKey
from whnode.record.model import Menu, Product
from whnode.record.signed import sign_record
from whnode.testing.factories import make_menu

__all__ = ["main", "upstream_json"]


def _item(product: Product, index: int) -> dict[str, Any]:
    slug = product.name.lower().replace(" ", "-")
    image = product.image_url or ""
    grams = {
        1.0: "price_gram",
        3.5: "price_eighth",
        7.0: "price_quarter",
        14.0: "price_half_ounce",
        28.0: "price_ounce",
    }
    prices: dict[str, Any] = dict.fromkeys(grams.values(), 0)
    prices.update({"price_unit": 0, "price_half_gram": 0, "price_two_grams": 0, "prices_other": {}})
    variants = []
    for option in product.price_options:
        key = grams.get(option.quantity.amount)
        if key:
            prices[key] = option.price_cents / 100
        variants.append(
            {
                "name": f"{option.quantity.amount:g} {option.quantity.unit.value}",
                "label": f"{option.quantity.amount:g} {option.quantity.unit.value}",
                "price": {"amount": f"{option.price_cents / 100:.2f}", "currency": "USD"},
                "weight": {"value": option.quantity.amount, "unit": option.quantity.unit.value},
                "sku": None,
                "compliance_net_mg": int(option.quantity.amount * 1000),
                "compliance_net_precalc": False,
                "cart_quantity_multiplier": None,
                "inventory_quantity": option.stock,
            }
        )
    thc = product.thc.low if product.thc else None
    return {
        "id": 89_000_000 + index,
        "type": "menu_item",
        "attributes": {
            "name": product.name,
            "slug": slug,
            "category_name": product.category.value.replace("_", " ").title(),
            "body": product.description or "",
            "is_published": True,
            "license_type": "medical",
            "online_orderable": True,
            "picture_url": image,
            "position": None,
            "original_picture_url": image,
            "avatar_image_url": image,
            "is_badged": True,
            "brand_name": product.brand,
            "cannabinoids": {"thc": f"{thc:g}"} if thc is not None else {},
            "genetics": product.lineage.value.title(),
            "prices": prices,
            "grams_per_eighth": "3.5 grams",
            "created_at": "2022-02-24T00:22:00Z",
            "updated_at": "2023-11-28T21:41:59Z",
            "parent_category": {"id": 2, "name": product.category.value.title(), "slug": slug},
            "sub_category": {"id": 2, "name": product.category.value.title(), "slug": slug},
            "measurements": [
                {"name": "THC", "unit": "%", "value": f"{thc:g}"} for _ in [0] if thc is not None
            ],
            "variants": variants,
            "external_id": product.source_id,
            "sale": None,
            "sku": None,
            "compliance_net_mg": None,
            "compliance_net_precalc": False,
            "cart_quantity_multiplier": None,
            "inventory_quantity": None,
            "shared_inventory": False,
        },
    }


def upstream_json(menu: Menu) -> bytes:
    """The menu as an upstream (Weedmaps JSON:API-style) would send it, pretty-printed off."""
    body = {
        "meta": {"page": 1, "per_page": len(menu.products), "total": len(menu.products)},
        "data": [_item(product, index) for index, product in enumerate(menu.products)],
    }
    return json.dumps(body).encode()


def _time(function: Any, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples) * 1000


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="whnode bench codec", description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    key = SigningKey.generate()
    policy = TrustPolicy.open()
    print(
        f"{'products':>8} {'json bytes':>11} {'record bytes':>13} {'ratio':>7} "
        f"{'encode+sign ms':>15} {'verify+decode ms':>17}"
    )
    for size in (250, 2500):
        menu = make_menu(n_products=size)
        upstream = upstream_json(menu)

        def encode_and_sign(menu: Menu = menu) -> bytes:
            return sign_record(
                payload=encode_menu(menu),
                dispensary_id=menu.dispensary_id,
                fetched_at_ms=menu.fetched_at_ms,
                content_hash=content_hash(menu),
                signing_key=key,
            ).encoded

        record = encode_and_sign()

        def verify_and_decode(record: bytes = record, menu: Menu = menu) -> Menu:
            accepted = accept_record(record, now_ms=menu.fetched_at_ms, policy=policy)
            return open_record(accepted)

        assert verify_and_decode() == menu
        encode_ms = _time(encode_and_sign, args.repeat)
        decode_ms = _time(verify_and_decode, args.repeat)
        ratio = len(record) / len(upstream)
        print(
            f"{size:>8} {len(upstream):>11} {len(record):>13} {ratio:>6.1%} "
            f"{encode_ms:>15.2f} {decode_ms:>17.2f}"
        )
    return 0
