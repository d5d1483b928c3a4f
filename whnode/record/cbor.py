"""Canonical CBOR out, bounded CBOR in.

``encode_canonical`` writes RFC 8949 core deterministic encoding (section 4.2.1): shortest
heads, definite lengths, map keys sorted by their encoded bytes, and floats in the shortest
form that keeps their value (cbor2 ``canonical=True``).

``decode_bounded`` reads untrusted CBOR in two passes. ``scan`` first walks the item heads
of the raw bytes, without building anything, and refuses (``LimitExceeded``) nesting deeper
than the caps, a container with too many elements, a string longer than its cap, or too many
items in all; it refuses (``DecodeError``) what a canonical whnode item never holds:
indefinite lengths, reserved or unassigned values, ``undefined``, tags other than the ones
allowed at the top, lengths running past the end, bytes after the item. Only then does cbor2
build the Python values, from input already known to be small and well-formed.

Only ``DecodeError`` and its ``LimitExceeded`` leave this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import cbor2

from whnode import limits
from whnode.record.exceptions import DecodeError, LimitExceeded

__all__ = [
    "MAX_CBOR_TOTAL_ITEMS",
    "PAYLOAD_CAPS",
    "CborCaps",
    "decode_bounded",
    "encode_canonical",
    "scan",
]

MAX_CBOR_TOTAL_ITEMS: Final = limits.MAX_CBOR_TOTAL_ITEMS
"""See whnode.limits (a menu at MAX_PRODUCTS_PER_MENU with four price options per product
holds about 600,000 items)."""

_SIMPLE_OK: Final = frozenset({20, 21, 22, 25, 26, 27})
"""Additional information of major type 7 that whnode accepts: false, true, null and the
half, single and double floats. ``undefined`` (23) and simple values (0-19, 24) are refused."""


@dataclass(frozen=True, slots=True)
class CborCaps:
    """The bounds one ``scan`` enforces."""

    max_depth: int = limits.MAX_CBOR_DEPTH
    """Most arrays, maps and tags nested in one another (a flat array is depth 1)."""
    max_items: int = limits.MAX_CBOR_ITEMS
    """Most elements in one array, or pairs in one map."""
    max_string_bytes: int = limits.MAX_CBOR_STRING_BYTES
    """Longest text or byte string."""
    max_total_items: int = MAX_CBOR_TOTAL_ITEMS
    """Most items in all."""
    top_level_tags: frozenset[int] = field(default_factory=frozenset)
    """Tag numbers allowed on the top-level item; tags are refused anywhere else."""
    text_keys_only: bool = False
    """Refuse map keys other than text strings. Python's hashes of integers, floats and
    arrays (tuples) are not randomized: a map with many keys crafted to share one hash costs
    quadratic time to build (100,000 such keys: minutes). Text keys hash with a per-process
    secret. A menu payload only ever has text keys."""


PAYLOAD_CAPS: Final = CborCaps(text_keys_only=True)
"""The caps of a menu payload: every named CBOR limit, no tags, text map keys only."""


def encode_canonical(value: object) -> bytes:
    """``value`` in RFC 8949 core deterministic encoding."""
    return cbor2.dumps(value, canonical=True)


def scan(data: bytes, caps: CborCaps) -> None:
    """Check that ``data`` is exactly one well-formed CBOR item within ``caps``.

    Linear in the number of item heads; string contents are skipped, not read. Recursion
    follows container nesting only, which is bounded by ``caps.max_depth``.
    """
    end = len(data)
    budget = caps.max_total_items
    max_depth = caps.max_depth
    max_items = caps.max_items
    max_string_bytes = caps.max_string_bytes
    text_keys_only = caps.text_keys_only

    def items(position: int, count: int, depth: int, in_map: bool = False) -> int:
        nonlocal budget
        budget -= count
        if budget < 0:
            raise LimitExceeded(f"more than {caps.max_total_items} CBOR items")
        for index in range(count):
            if position >= end:
                raise DecodeError("CBOR item is truncated")
            initial = data[position]
            if in_map and not index & 1 and initial >> 5 != 3:
                raise DecodeError("CBOR map key is not a text string")
            position += 1
            info = initial & 0x1F
            if info < 24:
                argument = info
            elif info < 28:
                width = 1 << (info - 24)
                if position + width > end:
                    raise DecodeError("CBOR item is truncated")
                argument = int.from_bytes(data[position : position + width], "big")
                position += width
            elif info == 31:
                raise DecodeError("indefinite-length CBOR is not canonical")
            else:
                raise DecodeError("reserved CBOR additional information")
            major = initial >> 5
            if major <= 1:  # unsigned and negative integers
                continue
            if major <= 3:  # byte and text strings
                if argument > max_string_bytes:
                    raise LimitExceeded(f"CBOR string of {argument} bytes, over the cap")
                position += argument
                if position > end:
                    raise DecodeError("CBOR string runs past the end")
                continue
            if major <= 5:  # arrays and maps
                if argument > max_items:
                    raise LimitExceeded(f"CBOR container of {argument} elements, over the cap")
                if depth >= max_depth:
                    raise LimitExceeded(f"CBOR nested deeper than {max_depth}")
                elements = argument if major == 4 else 2 * argument
                if elements > end - position:  # every element takes at least one byte
                    raise DecodeError("CBOR container runs past the end")
                position = items(position, elements, depth + 1, major == 5 and text_keys_only)
                continue
            if major == 6:
                if depth != 0 or argument not in caps.top_level_tags:
                    raise DecodeError(f"CBOR tag {argument} is not allowed here")
                position = items(position, 1, depth + 1)
                continue
            if info not in _SIMPLE_OK:  # major type 7
                raise DecodeError("unsupported CBOR simple value")
        return position

    if items(0, 1, 0) != end:
        raise DecodeError("bytes after the CBOR item")


def decode_bounded(data: bytes, caps: CborCaps = PAYLOAD_CAPS) -> Any:
    """Decode one CBOR item after ``scan`` has checked it against ``caps``."""
    scan(data, caps)
    try:
        return cbor2.loads(data)
    except RecursionError:  # not reachable after scan; kept as a second fence
        raise LimitExceeded("CBOR nested too deep") from None
    except MemoryError:
        raise LimitExceeded("CBOR item too large to decode") from None
    except Exception as exc:  # cbor2 raises several types (CBORDecodeError, ValueError, ...)
        raise DecodeError(f"malformed CBOR: {type(exc).__name__}: {exc}") from None
