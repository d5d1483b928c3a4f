"""Opaque page cursors: a short JSON array, base64url without padding.

A cursor carries the position and a digest of the query it belongs to (and, for product
queries, the snapshot): a client passes it back unchanged; anything else is refused as an
``InvalidParameter`` on ``cursor``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Final

from whnode.api.exceptions import InvalidParameter

__all__ = ["MAX_CURSOR_CHARS", "MAX_OFFSET", "pack_cursor", "unpack_cursor"]

MAX_CURSOR_CHARS: Final = 200
MAX_OFFSET: Final = 10**7


def pack_cursor(*items: int | str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(items)).encode()).decode().rstrip("=")


def unpack_cursor(text: str, kinds: tuple[type, ...], digest: str, what: str) -> list[Any]:
    """The items of a cursor made by ``pack_cursor`` whose types are ``kinds`` (integers not
    negative) and whose last item is ``digest``; InvalidParameter otherwise."""
    invalid = InvalidParameter("cursor", f"not a cursor of this {what} (start again without it)")
    if len(text) > MAX_CURSOR_CHARS:
        raise invalid
    try:
        plain = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except (ValueError, binascii.Error):
        raise invalid from None
    if not isinstance(plain, list) or len(plain) != len(kinds) or plain[-1] != digest:
        raise invalid
    for item, kind in zip(plain, kinds, strict=True):
        if not isinstance(item, kind) or isinstance(item, bool):
            raise invalid
        if isinstance(item, int) and item < 0:
            raise invalid
    return plain
