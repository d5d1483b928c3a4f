"""The names ``whnode.record`` offers are pinned, and each is the object its module defines."""

from __future__ import annotations

import subprocess
import sys

import whnode.record
from whnode.record import acceptance, codec, exceptions, keys, model, signed


def test_all_is_pinned() -> None:
    assert whnode.record.__all__ == [
        "CONTENT_TYPE",
        "FORMAT_VERSION",
        "BadSignature",
        "Category",
        "CategoryStatistics",
        "ContentHash",
        "DecodeError",
        "DispensaryId",
        "FutureTimestamp",
        "KeyBindingMismatch",
        "LimitExceeded",
        "Lineage",
        "Menu",
        "MenuStatistics",
        "ModelError",
        "NodeId",
        "Potency",
        "PotencyUnit",
        "PriceOption",
        "Product",
        "PublicKey",
        "Quantity",
        "QuantityUnit",
        "RecordError",
        "RejectedRecord",
        "RoutingKey",
        "SignedRecord",
        "SigningKey",
        "TrustMode",
        "TrustPolicy",
        "UnsupportedVersion",
        "UntrustedPublisher",
        "Vendor",
        "accept_record",
        "content_hash",
        "decode_menu",
        "decode_record",
        "decompress_payload",
        "encode_menu",
        "node_id_for",
        "open_record",
        "parse_dispensary_id",
        "routing_key",
        "sign_menu",
        "sign_record",
        "verify_record",
        "verify_signature",
    ]


def test_every_name_is_its_modules_object() -> None:
    modules = (acceptance, codec, exceptions, keys, model, signed)
    for name in whnode.record.__all__:
        owners = [module for module in modules if name in getattr(module, "__all__", ())]
        assert owners, f"{name} is in no module's __all__"
        assert getattr(whnode.record, name) is getattr(owners[0], name)


def test_the_record_layer_imports_nothing_above_it() -> None:
    code = (
        "import sys, whnode.record, whnode.record.docs; "
        "print(sorted(m for m in sys.modules if m.startswith('whnode.') and not "
        "m.startswith('whnode.record') and m not in "
        "('whnode.limits', 'whnode.errors', 'whnode.exceptions', 'whnode.version')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
