"""Content codings of API answers: which ones this node offers, and which one a request gets.

A menu is compressed once per (record, representation, coding) and the bytes are kept in the
render cache beside the plain rendering (``whnode.api.render.RenderCache``): a hot hit replays
them. Codings, in the order this node prefers them when a client accepts several equally:

- ``br`` (brotli, quality 6): the smallest of the three at a cost that suits a body
  compressed once and sent many times (a 2,500-product JSON menu of 1.7 MB: about 150 kB in
  about 45 ms; quality 11 saves another 15% for 100 times the CPU);
- ``zstd`` (level 9): about the size of brotli 6 at a similar cost, faster to decode;
- ``gzip`` (level 6): what every client decodes.

A coding whose package is not installed is simply not offered (``brotli`` and
``backports.zstd`` are dependencies; gzip is in the standard library). The packages were
chosen by measurement: ``brotli`` and ``brotlicffi`` produce the same bytes at the same
speed (one C library), and ``brotli`` needs no cffi; ``backports.zstd`` is the standard
library's ``compression.zstd`` of Python 3.14 and the module aiohttp's client decodes zstd
with, so one package serves the node and the library.

Negotiation follows RFC 9110 section 12.5.3: the offered coding with the highest ``q`` wins,
ties go to the order above, ``*`` stands for codings not named, ``q=0`` refuses. When nothing
offered is acceptable the answer is not compressed (``identity``; a 406 would help nobody).
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from typing import Final

__all__ = [
    "IDENTITY",
    "OFFERED",
    "compress",
    "negotiate_coding",
]

IDENTITY: Final = "identity"

BROTLI_QUALITY: Final = 6
ZSTD_LEVEL: Final = 9
GZIP_LEVEL: Final = 6


def _gzip(data: bytes) -> bytes:
    # mtime=0: the same body always compresses to the same bytes (one ETag per coding)
    return gzip.compress(data, compresslevel=GZIP_LEVEL, mtime=0)


def _available() -> dict[str, Callable[[bytes], bytes]]:
    compressors: dict[str, Callable[[bytes], bytes]] = {}
    try:
        import brotli
    except ImportError:  # pragma: no cover - brotli is a dependency
        pass
    else:
        compressors["br"] = lambda data: bytes(brotli.compress(data, quality=BROTLI_QUALITY))
    try:
        from backports import zstd
    except ImportError:  # pragma: no cover - Python 3.14 has it in the standard library
        try:
            from compression import zstd  # type: ignore[import-not-found,no-redef]
        except ImportError:
            zstd = None  # type: ignore[assignment]
    if zstd is not None:
        compressors["zstd"] = lambda data: bytes(zstd.compress(data, level=ZSTD_LEVEL))
    compressors["gzip"] = _gzip
    return compressors


_COMPRESSORS: Final = _available()
OFFERED: Final[tuple[str, ...]] = tuple(_COMPRESSORS)
"""Codings this node can send, most preferred first."""


def compress(data: bytes, coding: str) -> bytes:
    """``data`` in ``coding`` (one of ``OFFERED``; ``identity`` returns it as it is)."""
    if coding == IDENTITY:
        return data
    return _COMPRESSORS[coding](data)


def _weights(header: str) -> dict[str, float]:
    """Coding -> q of an Accept-Encoding header (lower case; malformed q counts as 0)."""
    weights: dict[str, float] = {}
    for part in header.split(","):
        name, _, parameters = part.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        q = 1.0
        for parameter in parameters.split(";"):
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
                if not 0.0 <= q <= 1.0:
                    q = 0.0
        weights[name] = max(q, weights.get(name, 0.0)) if name in weights else q
    return weights


def negotiate_coding(header: str | None, offered: tuple[str, ...] = OFFERED) -> str:
    """The coding of an answer to a request with Accept-Encoding ``header``: one of
    ``offered`` (most preferred first) or ``identity``."""
    if not header:
        return IDENTITY
    weights = _weights(header)
    anything = weights.get("*", 0.0)
    best, best_q = IDENTITY, 0.0
    for coding in offered:
        q = weights.get(coding, anything)
        if q > best_q:
            best, best_q = coding, q
    if weights.get(IDENTITY, 0.0) > best_q:
        return IDENTITY  # the client prefers its bodies as they are
    return best
