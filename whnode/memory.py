"""Giving freed heap memory back to the operating system.

A node's Python objects are bounded (every table a client can grow has a cap, ``whnode.limits``),
but its resident memory still creeps up under bad input: a million fuzzed inputs (64 KB
bodies, 20,000-character request lines, over a thousand source addresses a second) left
less than 1 MB more in Python objects (``tracemalloc``) and 21 MB more RSS. The difference
is heap the C allocator (glibc's malloc) keeps after Python freed it: fragmented arenas,
held for reuse, never returned. ``malloc_trim(0)`` returns the free parts at the top of the
heaps and the free pages inside them (glibc 2.8 and later).

``trim_heap`` calls it at most once per ``TRIM_INTERVAL`` seconds per process (several
in-process nodes share one heap); a node calls it from its periodic sampling. Elsewhere
than glibc it does nothing. A trim takes about a millisecond per 100 MB of heap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import time
from collections.abc import Callable
from typing import Final

__all__ = ["TRIM_INTERVAL", "trim_heap"]

LOG = logging.getLogger(__name__)

TRIM_INTERVAL: Final = 60.0
"""Seconds between two trims of the process's heap."""


def _load_malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        function = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl, macOS)
        return None
    function.argtypes = [ctypes.c_size_t]
    function.restype = ctypes.c_int
    trim: Callable[[int], int] = function
    return trim


_malloc_trim = _load_malloc_trim()
_last_trim = -TRIM_INTERVAL


def trim_heap(*, force: bool = False) -> bool:
    """Return free heap memory to the OS, unless done less than TRIM_INTERVAL seconds ago
    (``force``: now). Whether a trim ran."""
    global _last_trim
    now = time.monotonic()
    if _malloc_trim is None or (not force and now - _last_trim < TRIM_INTERVAL):
        return False
    _last_trim = now
    _malloc_trim(0)
    return True
