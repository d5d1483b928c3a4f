"""The documented JSON object of a product (schema ``Product`` in the OpenAPI document).

Below both the API (``whnode.api.render`` builds menus from it) and the store (the search
index keeps each product's document, ``whnode.store.search``), so neither reaches into the
other for it.
"""

from __future__ import annotations

from typing import Any

from whnode.record.model import Potency, PriceOption, Product

__all__ = ["potency_document", "price_option_document", "product_document"]


def potency_document(potency: Potency | None) -> dict[str, Any] | None:
    if potency is None:
        return None
    return {"low": potency.low, "high": potency.high, "unit": potency.unit.value}


def price_option_document(option: PriceOption) -> dict[str, Any]:
    return {
        "quantity": {"amount": option.quantity.amount, "unit": option.quantity.unit.value},
        "price_cents": option.price_cents,
        "special_price_cents": option.special_price_cents,
        "stock": option.stock,
    }


def product_document(product: Product) -> dict[str, Any]:
    return {
        "source_id": product.source_id,
        "name": product.name,
        "brand": product.brand,
        "category": product.category.value,
        "lineage": product.lineage.value,
        "thc": potency_document(product.thc),
        "cbd": potency_document(product.cbd),
        "price_options": [price_option_document(option) for option in product.price_options],
        "image_url": product.image_url,
        "description": product.description,
    }
