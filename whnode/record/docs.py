"""Generated parts of docs/record-format.md: the limits table and the example record."""

from __future__ import annotations

from whnode import limits
from whnode.record.codec import content_hash, encode_menu
from whnode.record.keys import SigningKey
from whnode.record.model import (
    Category,
    DispensaryId,
    Menu,
    PriceOption,
    Product,
    Quantity,
    QuantityUnit,
    Vendor,
)
from whnode.record.signed import SignedRecord, sign_record

__all__ = ["example_record", "limits_table"]


def limits_table() -> str:
    """The Markdown table of every named limit in whnode.limits."""
    rows = ["| limit | value | meaning |", "|---|---|---|"]
    for name, value, description in limits.describe():
        rows.append(f"| `{name}` | {value:,} | {description} |")
    return "\n".join(rows)


def example_record() -> SignedRecord:
    """A tiny record signed with the all-zero seed: Ed25519 is deterministic, so its bytes are
    fixed and another implementation can reproduce them exactly."""
    menu = Menu(
        dispensary_id=DispensaryId("jane:1"),
        name="X",
        vendor=Vendor.JANE,
        fetched_at_ms=1_760_000_000_000,
        products=(
            Product(
                source_id="1",
                name="OG",
                category=Category.FLOWER,
                price_options=(PriceOption(Quantity(3.5, QuantityUnit.GRAMS), 3000),),
            ),
        ),
    )
    return sign_record(
        payload=encode_menu(menu),
        dispensary_id=menu.dispensary_id,
        fetched_at_ms=menu.fetched_at_ms,
        content_hash=content_hash(menu),
        signing_key=SigningKey.from_private_bytes(bytes(32)),
    )
