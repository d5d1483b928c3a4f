"""Generated parts of docs/record-format.md: the example record, its annotated bytes, and
the limits table.

``regenerate(text)`` returns the document with every generated block replaced by what the
code produces now; tests/record/test_docs.py checks that the document is unchanged by it and,
run as ``python -m tests.record.test_docs``, rewrites the file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Final

from whnode import limits
from whnode.record import cbor, signed
from whnode.record.codec import decompress_payload
from whnode.record.keys import SigningKey
from whnode.record.model import (
    Category,
    DispensaryId,
    Lineage,
    Menu,
    Potency,
    PotencyUnit,
    PriceOption,
    Product,
    Quantity,
    QuantityUnit,
    Vendor,
)
from whnode.record.signed import SignedRecord, sign_menu

__all__ = [
    "EXAMPLE_SEED",
    "annotate_record",
    "annotate_sig_structure",
    "example_menu",
    "example_record",
    "generated_blocks",
    "limits_table",
    "record_limits_table",
    "regenerate",
]

EXAMPLE_SEED: Final = bytes(32)
"""The example's Ed25519 private key: 32 zero bytes. Never use it for anything else."""

_Names = Mapping[object, Mapping[object, str]]
"""Map key names by context: the key under which a map sits (None at the top)."""

_HEADER_NAMES: Final[_Names] = {
    None: {
        signed.LABEL_ALG: "alg: EdDSA",
        signed.LABEL_CONTENT_TYPE: "content type",
        signed.LABEL_KID: "kid: publisher public key",
        signed.LABEL_VERSION: "format version",
        signed.LABEL_DISPENSARY: "dispensary id",
        signed.LABEL_FETCHED_AT: "fetched at (ms)",
        signed.LABEL_CONTENT_HASH: "content hash",
    }
}
_MENU_NAMES: Final[_Names] = {
    None: {
        "d": "dispensary id",
        "n": "name",
        "s": "vendor",
        "t": "fetched at (ms)",
        "p": "products",
        "x": "statistics",
    },
    "p": {
        "i": "source id",
        "n": "name",
        "c": "category",
        "l": "lineage",
        "o": "price options",
        "b": "brand",
        "h": "thc [low, high, unit]",
        "d": "cbd [low, high, unit]",
        "u": "image url",
        "e": "description",
    },
    "o": {
        "q": "quantity [amount, unit]",
        "p": "price (cents)",
        "s": "special price (cents)",
        "k": "stock",
    },
    "x": {"c": "categories", "h": "THC histogram"},
}
_INDENT: Final = "   "
_COLUMN: Final = 44


def example_menu() -> Menu:
    """The menu of the example record: one product, most optional members present."""
    return Menu(
        dispensary_id=DispensaryId("jane:1"),
        name="X",
        vendor=Vendor.JANE,
        fetched_at_ms=1_760_000_000_000,
        products=(
            Product(
                source_id="1",
                name="OG",
                category=Category.FLOWER,
                price_options=(
                    PriceOption(Quantity(3.5, QuantityUnit.GRAMS), 3000, special_price_cents=2500),
                ),
                brand="B",
                lineage=Lineage.INDICA,
                thc=Potency(20.5, 20.5, PotencyUnit.PERCENT),
            ),
        ),
    )


def example_record() -> SignedRecord:
    """The example record, signed with ``EXAMPLE_SEED``: Ed25519 signatures are deterministic
    (RFC 8032), so its bytes are fixed and another implementation can reproduce them."""
    return sign_menu(example_menu(), SigningKey.from_private_bytes(EXAMPLE_SEED))


def limits_table() -> str:
    """The Markdown table of every named limit in whnode.limits."""
    rows = ["| limit | value | meaning |", "|---|---|---|"]
    for name, value, description in limits.describe():
        rows.append(f"| `{name}` | {value:,} | {description} |")
    return "\n".join(rows)


def record_limits_table() -> str:
    """The Markdown table of the record layer's own caps (not in whnode.limits)."""
    rows = ["| limit | value | meaning |", "|---|---|---|"]
    for module, name in (
        (cbor, "MAX_CBOR_TOTAL_ITEMS"),
        (signed, "MAX_PROTECTED_BYTES"),
        (signed, "MAX_FETCHED_AT_MS"),
    ):
        value = getattr(module, name)
        doc = _constant_doc(module.__name__, name)
        rows.append(f"| `{module.__name__}.{name}` | {value:,} | {doc} |")
    return "\n".join(rows)


def _constant_doc(module_name: str, name: str) -> str:
    """The first line of the docstring under ``name`` in ``module_name``'s source."""
    import importlib

    from whnode.docstrings import attribute_docs

    docs = attribute_docs(importlib.import_module(module_name), annotated_only=True)
    return docs.get(name, "").split("\n")[0]


# ---------------------------------------------------------------- annotated bytes
class _Annotator:
    """Writes ``hex  # meaning`` lines for CBOR items and lz4 frames, indented by nesting."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, depth: int, data: bytes, comment: str) -> None:
        text = _INDENT * depth + data.hex()
        self.lines.append(f"{text.ljust(_COLUMN)}# {comment}" if comment else text)

    def long_bytes(self, depth: int, data: bytes) -> None:
        for start in range(0, len(data), 16):
            self.line(depth, data[start : start + 16], "")

    def cbor(
        self,
        data: bytes,
        position: int,
        depth: int,
        *,
        names: _Names,
        context: object = None,
        comment: str = "",
        inner: Callable[[bytes, int], None] | None = None,
    ) -> int:
        """Annotate the item at ``position``; return the position after it."""
        initial = data[position]
        major, info = initial >> 5, initial & 0x1F
        head_end = position + 1 + (0 if info < 24 else 1 << (info - 24))
        argument = info if info < 24 else int.from_bytes(data[position + 1 : head_end], "big")
        head = data[position:head_end]
        note = f" ({comment})" if comment else ""
        if major == 0:
            self.line(depth, head, f"{argument}{note}")
            return head_end
        if major == 1:
            self.line(depth, head, f"{-1 - argument}{note}")
            return head_end
        if major in (2, 3):
            body = data[head_end : head_end + argument]
            if major == 3 and argument <= 12:
                self.line(depth, head + body, f"{body.decode()!r}{note}")
            elif major == 3:
                self.line(depth, head, f"text({argument}){note}: {body.decode()!r}")
                self.long_bytes(depth + 1, body)
            elif inner is not None:
                self.line(depth, head, f"bytes({argument}){note}, holding:")
                inner(body, depth + 1)
            elif argument <= 16:
                self.line(depth, head + body, f"bytes({argument}){note}")
            else:
                self.line(depth, head, f"bytes({argument}){note}:")
                self.long_bytes(depth + 1, body)
            return head_end + argument
        if major == 4:
            self.line(depth, head, f"array({argument}){note}")
            position = head_end
            for _ in range(argument):
                position = self.cbor(
                    data, position, depth + 1, names=names, context=context, inner=inner
                )
            return position
        if major == 5:
            self.line(depth, head, f"map({argument}){note}")
            position = head_end
            for _ in range(argument):
                key_end = self._key_end(data, position)
                key = cbor.decode_bounded(data[position:key_end])
                name = names.get(context, {}).get(key, "")
                position = self.cbor(data, position, depth + 1, names=names, comment=name)
                position = self.cbor(
                    data, position, depth + 2, names=names, context=key, inner=inner
                )
            return position
        if major == 6:
            self.line(depth, head, f"tag {argument}{note}")
            return self.cbor(data, head_end, depth + 1, names=names, context=context, inner=inner)
        value = cbor.decode_bounded(head)
        kind = {25: "half float", 26: "single float", 27: "double float"}.get(info, "simple")
        self.line(depth, head, f"{value!r} ({kind}){note}")
        return head_end

    @staticmethod
    def _key_end(data: bytes, position: int) -> int:
        info = data[position] & 0x1F
        head_end = position + 1 + (0 if info < 24 else 1 << (info - 24))
        if data[position] >> 5 in (2, 3):
            argument = info if info < 24 else int.from_bytes(data[position + 1 : head_end], "big")
            return head_end + argument
        return head_end

    def lz4_frame(self, frame: bytes, depth: int) -> None:
        flags, block_descriptor = frame[4], frame[5]
        self.line(depth, frame[:4], "lz4 frame magic number")
        present = [
            name
            for bit, name in (
                (5, "independent blocks"),
                (4, "block checksums"),
                (3, "content size"),
                (2, "content checksum"),
                (0, "dictionary id"),
            )
            if flags >> bit & 1
        ]
        self.line(depth, frame[4:5], f"FLG: version {flags >> 6}; {', '.join(present)}")
        size_id = block_descriptor >> 4 & 7
        self.line(depth, frame[5:6], f"BD: blocks of at most {64 * 4 ** (size_id - 4)} KiB")
        position = 6
        if flags >> 3 & 1:
            size = int.from_bytes(frame[6:14], "little")
            self.line(depth, frame[6:14], f"content size {size} (little-endian)")
            position = 14
        if flags & 1:
            self.line(depth, frame[position : position + 4], "dictionary id")
            position += 4
        self.line(depth, frame[position : position + 1], "header checksum")
        position += 1
        while True:
            word = int.from_bytes(frame[position : position + 4], "little")
            if word == 0:
                self.line(depth, frame[position : position + 4], "end mark")
                position += 4
                break
            length = word & 0x7FFFFFFF
            stored = "stored uncompressed" if word >> 31 else "lz4-compressed"
            self.line(depth, frame[position : position + 4], f"block of {length} bytes, {stored}")
            self.long_bytes(depth + 1, frame[position + 4 : position + 4 + length])
            position += 4 + length
            if flags >> 4 & 1:
                self.line(depth, frame[position : position + 4], "block checksum")
                position += 4
        if flags >> 2 & 1:
            self.line(depth, frame[position : position + 4], "content checksum")


def annotate_record(record: SignedRecord) -> str:
    """Every byte of ``record``, in order, with what it means; then the payload's content."""
    annotator = _Annotator()

    def header(data: bytes, depth: int) -> None:
        annotator.cbor(data, 0, depth, names=_HEADER_NAMES)

    def payload(data: bytes, depth: int) -> None:
        annotator.lz4_frame(data, depth)

    comments = iter(("protected header", "unprotected header", "payload", "signature"))
    data = record.encoded
    annotator.line(0, data[:1], "tag 18: COSE_Sign1")
    annotator.line(1, data[1:2], "array(4)")
    position = 2
    for kind in comments:
        inner = {"protected header": header, "payload": payload}.get(kind)
        position = annotator.cbor(data, position, 2, names={}, comment=kind, inner=inner)
    if position != len(data):
        raise AssertionError("the annotation did not cover every byte of the record")
    annotator.lines.append("")
    annotator.lines.append("# the payload's content: the canonical CBOR of the menu")
    content = decompress_payload(record.payload)
    annotator.cbor(content, 0, 0, names=_MENU_NAMES)
    return "\n".join(annotator.lines)


def annotate_sig_structure(record: SignedRecord) -> str:
    """The bytes Ed25519 signs for ``record``, annotated."""
    annotator = _Annotator()
    annotator.cbor(signed.sig_structure(record.protected, record.payload), 0, 0, names={})
    return "\n".join(annotator.lines)


# ---------------------------------------------------------------- the document
def _example_hex() -> str:
    encoded = example_record().encoded.hex()
    return "\n".join(encoded[start : start + 64] for start in range(0, len(encoded), 64))


def generated_blocks() -> dict[str, str]:
    """Name → Markdown text of every generated block of docs/record-format.md."""
    record = example_record()
    key = SigningKey.from_private_bytes(EXAMPLE_SEED)
    return {
        "example-facts": "\n".join(
            (
                f"- private key (seed): 32 zero bytes; public key `{key.public_key.hex()}`",
                f"- node id (SHA-1 of the public key): `{key.node_id.hex()}`",
                f"- content hash: `{record.content_hash.hex()}`",
                f"- record: {record.nbytes} bytes; payload {len(record.payload)} bytes, "
                f"{len(decompress_payload(record.payload))} bytes of CBOR decompressed",
            )
        ),
        "example-hex": f"```\n{_example_hex()}\n```",
        "example-annotated": f"```\n{annotate_record(record)}\n```",
        "example-sig-structure": f"```\n{annotate_sig_structure(record)}\n```",
        "limits": limits_table(),
        "record-limits": record_limits_table(),
    }


_BLOCK: Final = re.compile(
    r"<!-- BEGIN GENERATED (?P<name>[a-z-]+) -->\n"
    r"(?P<body>(?:(?!<!-- BEGIN GENERATED).)*?)\n?"
    r"<!-- END GENERATED -->",
    re.DOTALL,
)


def regenerate(text: str) -> str:
    """``text`` with the body of every generated block replaced by the current output."""
    blocks = generated_blocks()

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        return f"<!-- BEGIN GENERATED {name} -->\n{blocks[name]}\n<!-- END GENERATED -->"

    return _BLOCK.sub(replace, text)
