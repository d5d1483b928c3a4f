"""``whnode bench codec``: signed record size against upstream JSON, and codec costs.

For menus of 250 and 2,500 products (``whnode.testing.factories.make_menu``, with statistics
as the parse pool computes them) it renders the same products as the upstream JSON they
would arrive in, compares its size with the canonical CBOR and with the signed record, and
times encode+sign (``sign_menu``: canonical CBOR, lz4, content hash, Ed25519) and
verify+decode (``accept_record`` then ``open_record``) per record.

The upstream JSON is the Weedmaps ``v1/listings/dispensaries/{slug}/menu_items`` JSON:API
shape, item by item with every member of the real capture in
/work/shared/menu-samples (attributes, links, relationships), filled from the product: its
name, slug, description, image URL (three times, as Weedmaps sends it), price table, one
variant per size, THC, brand, lineage. Pages of 100 items, compact separators, as served.
Nothing is padded: the bytes per item printed are what the same products cost as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Final

from whnode.record.acceptance import TrustPolicy, accept_record, open_record
from whnode.record.codec import decompress_payload
from whnode.record.keys import SigningKey
from whnode.record.model import Category, Lineage, Menu, PotencyUnit, Product, QuantityUnit
from whnode.record.signed import sign_menu
from whnode.testing.factories import make_menu
from whnode.upstream.statistics import compute_statistics

__all__ = ["Measurement", "main", "measure", "upstream_json_pages"]

SIZES: Final = (250, 2500)
PAGE_SIZE: Final = 100
GOAL_RATIO: Final = 0.20
"""The record should be at most this fraction of the upstream JSON."""

_PRICE_KEYS: Final = {
    0.5: "price_half_gram",
    1.0: "price_gram",
    2.0: "price_two_grams",
    3.5: "price_eighth",
    7.0: "price_quarter",
    14.0: "price_half_ounce",
    28.0: "price_ounce",
}
_OUNCES: Final = {3.5: ("1/8 ounce", "1/8 oz", 0.125), 7.0: ("1/4 ounce", "1/4 oz", 0.25),
                  14.0: ("1/2 ounce", "1/2 oz", 0.5), 28.0: ("1 ounce", "1 oz", 1.0)}  # fmt: skip
_CATEGORY_IDS: Final = {category: number for number, category in enumerate(Category, start=1)}
_GENETICS: Final = {
    Lineage.INDICA: "Indica",
    Lineage.SATIVA: "Sativa",
    Lineage.HYBRID: "Hybrid",
    Lineage.INDICA_HYBRID: "Indica Dominant Hybrid",
    Lineage.SATIVA_HYBRID: "Sativa Dominant Hybrid",
    Lineage.HIGH_CBD: "High CBD",
    Lineage.BALANCED: "1:1",
}


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def _variant(amount: float, unit: QuantityUnit, cents: int, stock: int | None) -> dict[str, Any]:
    if unit is QuantityUnit.GRAMS and amount in _OUNCES:
        name, label, value = _OUNCES[amount]
        weight: dict[str, Any] = {"value": value, "unit": "oz"}
    elif unit is QuantityUnit.UNITS:
        name, label, weight = (
            f"{amount:g} each",
            f"{amount:g} each",
            {"value": amount, "unit": "each"},
        )
    else:
        name = (
            f"{amount:g} {'gram' if amount == 1 else 'grams'}"
            if unit is QuantityUnit.GRAMS
            else f"{amount:g} mg"
        )
        label, weight = f"{amount:g} {unit.value}", {"value": amount, "unit": unit.value}
    grams = amount if unit is QuantityUnit.GRAMS else None
    return {
        "name": name,
        "label": label,
        "price": {"amount": f"{cents / 100:.2f}", "currency": "USD"},
        "weight": weight,
        "sku": None,
        "compliance_net_mg": int(grams * 1000) if grams else None,
        "compliance_net_precalc": False,
        "cart_quantity_multiplier": None,
        "inventory_quantity": stock,
    }


def _item(product: Product, index: int, listing: str) -> dict[str, Any]:
    item_id = 89_000_000 + index * 7
    product_id = 348_000 + index * 3
    slug = _slug(product.name)
    prices: dict[str, Any] = {"price_unit": 0, **dict.fromkeys(_PRICE_KEYS.values(), 0)}
    prices["prices_other"] = {}
    for option in product.price_options:
        amount = option.quantity.amount
        if option.quantity.unit is QuantityUnit.GRAMS and amount in _PRICE_KEYS:
            prices[_PRICE_KEYS[amount]] = option.price_cents / 100
        elif option.quantity.unit is QuantityUnit.UNITS:
            prices["price_unit"] = option.price_cents / 100
        else:
            prices["prices_other"][f"{amount:g}{option.quantity.unit.value}"] = (
                option.price_cents / 100
            )
    cannabinoids: dict[str, str] = {}
    measurements = []
    for code, potency in (("thc", product.thc), ("cbd", product.cbd)):
        if potency is None:
            continue
        cannabinoids[code] = f"{potency.high:g}"
        unit = "%" if potency.unit is PotencyUnit.PERCENT else "mg"
        measurements.append({"name": code.upper(), "unit": unit, "value": f"{potency.high:g}"})
    category = product.category.value.replace("_", "-").title()
    image = product.image_url
    on_sale = next(
        (option for option in product.price_options if option.special_price_cents is not None),
        None,
    )
    return {
        "id": item_id,
        "type": "menu_item",
        "attributes": {
            "name": product.name,
            "slug": slug,
            "category_name": category,
            "body": product.description or "",
            "is_published": True,
            "license_type": "medical",
            "online_orderable": True,
            "picture_url": image,
            "position": None,
            "original_picture_url": image,
            "avatar_image_url": image,
            "is_badged": product.brand is not None,
            "brand_name": product.brand,
            "cannabinoids": cannabinoids,
            "genetics": _GENETICS.get(product.lineage),
            "prices": prices,
            "grams_per_eighth": "3.5 grams",
            "created_at": "2022-02-24T00:22:00Z",
            "updated_at": "2023-11-28T21:41:59Z",
            "parent_category": {
                "id": _CATEGORY_IDS[product.category],
                "name": category,
                "slug": _slug(category),
            },
            "sub_category": {
                "id": 100 + _CATEGORY_IDS[product.category],
                "name": category,
                "slug": _slug(category),
            },
            "measurements": measurements,
            "variants": [
                _variant(o.quantity.amount, o.quantity.unit, o.price_cents, o.stock)
                for o in product.price_options
            ],
            "external_id": product.source_id,
            "sale": None
            if on_sale is None
            else {"price": f"{(on_sale.special_price_cents or 0) / 100:.2f}", "type": "percent"},
            "sku": None,
            "compliance_net_mg": None,
            "compliance_net_precalc": None,
            "cart_quantity_multiplier": None,
            "inventory_quantity": None,
            "shared_inventory": None,
        },
        "links": {
            "self": f"/dispensaries/{listing}/menu/{slug}",
            "order": f"https://weedmaps.com/dispensaries/{listing}/menu/{slug}",
        },
        "relationships": {
            "brand": {"data": {"id": 18_000 + len(product.brand or ""), "type": "brand"}},
            "listing": {"data": {"id": 309_640, "type": "dispensary"}},
            "product": {"data": {"id": product_id, "type": "product"}},
            "strain": {"data": {"id": 6_000 + index % 997, "type": "strain"}},
            "categories": {
                "meta": {"total": 1},
                "data": [{"id": _CATEGORY_IDS[product.category], "type": "category"}],
            },
            "tags": {"meta": {"total": 0}, "data": []},
            "menu_parent": {"data": {"id": 855_247_035, "type": "listing"}},
        },
    }


def upstream_json_pages(menu: Menu) -> list[bytes]:
    """The menu as the Weedmaps JSON:API would serve it: pages of 100 items, compact JSON."""
    listing = menu.dispensary_id.split(":", 1)[1]
    items = [_item(product, index, listing) for index, product in enumerate(menu.products)]
    pages = []
    for page, start in enumerate(range(0, max(len(items), 1), PAGE_SIZE), start=1):
        body = {
            "meta": {"page": page, "per_page": PAGE_SIZE, "total": len(items)},
            "data": items[start : start + PAGE_SIZE],
        }
        pages.append(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())
    return pages


@dataclass(frozen=True, slots=True)
class Measurement:
    """Sizes and times for one menu size."""

    products: int
    json_bytes: int
    """Upstream JSON, all pages."""
    cbor_bytes: int
    """Canonical CBOR of the menu, before compression."""
    record_bytes: int
    """The signed record (COSE_Sign1 with the lz4 payload)."""
    encode_sign_ms: float
    """Median wall time of sign_menu (encode, compress, hash, sign)."""
    encode_sign_cpu_ms: float
    verify_decode_ms: float
    """Median wall time of accept_record + open_record."""
    verify_decode_cpu_ms: float

    @property
    def ratio(self) -> float:
        return self.record_bytes / self.json_bytes


def _timed(function: Callable[[], object], repeat: int) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls) * 1000, statistics.median(cpus) * 1000


def measure(products: int, repeat: int, key: SigningKey) -> Measurement:
    """Build, sign, verify and time one menu of ``products`` products."""
    menu = make_menu("weedmaps:bench-dispensary", n_products=products)
    menu = replace(menu, statistics=compute_statistics(menu))
    pages = upstream_json_pages(menu)
    policy = TrustPolicy.open()

    def encode_and_sign() -> bytes:
        return sign_menu(menu, key).encoded

    record = encode_and_sign()

    def verify_and_decode() -> Menu:
        return open_record(accept_record(record, now_ms=menu.fetched_at_ms, policy=policy))

    if verify_and_decode() != menu:
        raise AssertionError("the record does not decode to the menu")
    encode_wall, encode_cpu = _timed(encode_and_sign, repeat)
    decode_wall, decode_cpu = _timed(verify_and_decode, repeat)
    accepted = accept_record(record, now_ms=menu.fetched_at_ms, policy=policy)
    return Measurement(
        products=products,
        json_bytes=sum(len(page) for page in pages),
        cbor_bytes=len(decompress_payload(accepted.payload)),
        record_bytes=len(record),
        encode_sign_ms=encode_wall,
        encode_sign_cpu_ms=encode_cpu,
        verify_decode_ms=decode_wall,
        verify_decode_cpu_ms=decode_cpu,
    )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="whnode bench codec", description=__doc__)
    parser.add_argument("--repeat", type=int, default=15, help="timed runs per size (median)")
    args = parser.parse_args(argv)
    key = SigningKey.generate()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"whnode bench codec: median of {args.repeat} runs; load average {load:.1f} "
          f"on {os.cpu_count()} CPUs (wall time, then CPU time of this process)")  # fmt: skip
    print(
        f"{'products':>8} {'json B':>10} {'B/item':>7} {'cbor B':>9} {'record B':>9} "
        f"{'record/json':>11} {'encode+sign ms':>18} {'verify+decode ms':>18}"
    )
    met = True
    for size in SIZES:
        result = measure(size, args.repeat, key)
        met = met and result.ratio <= GOAL_RATIO
        print(
            f"{result.products:>8} {result.json_bytes:>10,} "
            f"{result.json_bytes // result.products:>7,} {result.cbor_bytes:>9,} "
            f"{result.record_bytes:>9,} {result.ratio:>11.1%} "
            f"{result.encode_sign_ms:>8.1f} ({result.encode_sign_cpu_ms:>6.1f}) "
            f"{result.verify_decode_ms:>8.1f} ({result.verify_decode_cpu_ms:>6.1f})"
        )
    print(f"goal: record <= {GOAL_RATIO:.0%} of the upstream JSON: {'met' if met else 'NOT met'}")
    return 0
