"""Query parameters and content negotiation of the public API, checked before any work.

Every parser takes the raw text and returns a value or raises ``InvalidParameter``; nothing
here trusts a number before checking its form and range (no ``nan``, ``inf``, exponents or
hex slip through ``float``/``int``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from multidict import MultiMapping

from whnode import limits
from whnode.api.exceptions import InvalidParameter, NotAcceptable

__all__ = [
    "MAX_AGE_LIMIT_SECONDS",
    "MediaType",
    "negotiate",
    "parse_at",
    "parse_limit",
    "parse_max_age",
    "single_values",
]

MAX_AGE_LIMIT_SECONDS: Final = 10 * 365 * 24 * 3600
"""Largest ``max_age`` accepted (ten years); larger values mean "any age" anyway."""
MAX_EPOCH_MS: Final = 2**53
"""Largest epoch-milliseconds value accepted for ``at`` (the model's time bound)."""
MAX_ACCEPT_RANGES: Final = 32
"""Most media ranges read from one Accept header; the rest are ignored."""

_DECIMAL = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,6})?")
_INTEGER = re.compile(r"[0-9]{1,16}")


def single_values(query: MultiMapping[str], allowed: Iterable[str]) -> dict[str, str]:
    """The query as a dict; unknown or repeated parameters are refused."""
    allowed_set = frozenset(allowed)
    values: dict[str, str] = {}
    for name, value in query.items():
        if name not in allowed_set:
            shown = name[:40]
            expected = ", ".join(sorted(allowed_set)) or "none"
            raise InvalidParameter(shown, f"unknown parameter (expected: {expected})")
        if name in values:
            raise InvalidParameter(name, "given more than once")
        values[name] = value
    return values


def parse_max_age(text: str) -> float:
    """``max_age``: seconds as a non-negative decimal (at most 6 decimals)."""
    if _DECIMAL.fullmatch(text) is None:
        raise InvalidParameter("max_age", "expected a non-negative number of seconds")
    value = float(text)
    if value > MAX_AGE_LIMIT_SECONDS:
        raise InvalidParameter("max_age", f"must be at most {MAX_AGE_LIMIT_SECONDS} seconds")
    return value


def parse_at(text: str) -> int:
    """``at``: epoch milliseconds, or an ISO-8601 date-time with a UTC offset or ``Z``."""
    if _INTEGER.fullmatch(text) is not None:
        value = int(text)
        if value > MAX_EPOCH_MS:
            raise InvalidParameter("at", "epoch milliseconds out of range")
        return value
    if not 10 <= len(text) <= 40 or not text[:4].isdigit():
        raise InvalidParameter("at", "expected epoch milliseconds or an ISO-8601 date-time")
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidParameter(
            "at", "expected epoch milliseconds or an ISO-8601 date-time"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidParameter("at", "an ISO-8601 date-time needs a UTC offset or Z")
    try:
        millis = int(moment.timestamp() * 1000)
    except (OverflowError, OSError, ValueError):
        raise InvalidParameter("at", "date-time out of range") from None
    if not 0 <= millis <= MAX_EPOCH_MS:
        raise InvalidParameter("at", "date-time before 1970 or too far ahead")
    return millis


def parse_limit(text: str | None, *, default: int) -> int:
    """``limit``: an integer between 1 and ``limits.MAX_HISTORY_ITEMS``."""
    if text is None:
        return default
    if _INTEGER.fullmatch(text) is None:
        raise InvalidParameter("limit", "expected a positive integer")
    value = int(text)
    if not 1 <= value <= limits.MAX_HISTORY_ITEMS:
        raise InvalidParameter("limit", f"must be between 1 and {limits.MAX_HISTORY_ITEMS}")
    return value


@dataclass(frozen=True, slots=True)
class MediaType:
    """A representation a resource offers: its media type and the header value sent."""

    name: str
    """``type/subtype`` as matched against Accept (lowercase)."""
    content_type: str
    """The Content-Type header value sent (may carry parameters)."""


def _ranges(header: str) -> list[tuple[str, float, int]]:
    """(media range, q, specificity) for each range of an Accept header."""
    ranges: list[tuple[str, float, int]] = []
    for part in header.split(",")[:MAX_ACCEPT_RANGES]:
        pieces = [piece.strip() for piece in part.split(";")]
        media = pieces[0].lower()
        if not media:
            continue
        main, slash, sub = media.partition("/")
        if not slash or not main or not sub or (main == "*" and sub != "*"):
            continue
        quality = 1.0
        for parameter in pieces[1:]:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value.strip())
                except ValueError:
                    quality = 0.0
                if not 0.0 <= quality <= 1.0:
                    quality = 0.0
        specificity = 0 if media == "*/*" else 1 if sub == "*" else 2
        ranges.append((media, quality, specificity))
    return ranges


def negotiate(accept: str | None, offered: Sequence[MediaType]) -> MediaType:
    """The offered representation that ``accept`` prefers (ties: the first offered).

    No Accept header, or an empty one, means the first offered. Raises NotAcceptable when
    every offered type has quality 0.
    """
    if accept is None or not accept.strip():
        return offered[0]
    ranges = _ranges(accept)
    best: MediaType | None = None
    best_quality = 0.0
    for media_type in offered:
        main = media_type.name.split("/", 1)[0]
        matched: tuple[int, float] | None = None
        for media, quality, specificity in ranges:
            if media in (media_type.name, f"{main}/*", "*/*") and (
                matched is None or specificity > matched[0]
            ):
                matched = (specificity, quality)
        if matched is not None and matched[1] > best_quality:
            best, best_quality = media_type, matched[1]
    if best is None:
        names = tuple(media_type.name for media_type in offered)
        raise NotAcceptable(
            f"none of {', '.join(names)} is acceptable to this request's Accept header",
            available=names,
        )
    return best
