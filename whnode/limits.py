"""Every cap on untrusted input, in one place.

Each constant is a hard limit applied *before* the work it protects is done. The table in
docs/record-format.md (Limits) is generated from this module (``whnode.limits.describe()``),
never copied.
"""

from __future__ import annotations

from typing import Final

# --- records (whnode.record) -------------------------------------------------------------
MAX_RECORD_BYTES: Final = 4 * 1024 * 1024
"""Largest signed record (COSE_Sign1 bytes) accepted from anyone."""
MAX_DECOMPRESSED_BYTES: Final = 32 * 1024 * 1024
"""Largest decompressed payload; read from the lz4 frame header before decompressing."""
MAX_COMPRESSION_RATIO: Final = 64
"""Largest declared decompressed/compressed ratio accepted (defeats decompression bombs)."""
MAX_CBOR_DEPTH: Final = 16
"""Deepest nesting of CBOR arrays/maps in a payload or header."""
MAX_CBOR_ITEMS: Final = 100_000
"""Most elements in one CBOR array or map."""
MAX_CBOR_STRING_BYTES: Final = 80_000
"""Longest CBOR text or byte string inside a payload."""
MAX_PRODUCTS_PER_MENU: Final = 10_000
"""Most products in one menu."""
MAX_PRICE_OPTIONS: Final = 32
"""Most price options per product."""
MAX_DROP_EXAMPLES: Final = 3
"""Example source ids a parse report keeps per drop reason."""
MAX_DROP_EXAMPLE_CHARS: Final = 80
"""Longest drop example in a parse report."""
MAX_TEXT_CHARS: Final = 20_000
"""Longest text field (description) in characters."""
MAX_NAME_CHARS: Final = 512
"""Longest short text field (name, brand) in characters."""
MAX_DISPENSARY_ID_CHARS: Final = 160
"""Longest dispensary id."""
MAX_FUTURE_SKEW_SECONDS: Final = 300
"""How far in the future a record's fetch time may lie."""
MAX_KEEP_SKEW_SECONDS: Final = 30
"""How far ahead of a node's clock a record may be dated and still be kept (stored, cached,
replicated): a kept record never outranks later fetches by more than this."""
MAX_PROTECTED_BYTES: Final = 1024
"""Largest serialized protected header accepted (a version 1 header is under 300 bytes)."""
MAX_CBOR_TOTAL_ITEMS: Final = 2_000_000
"""Most CBOR items (every head: integers, strings, containers) in one payload."""

# --- DHT (whnode.dht) --------------------------------------------------------------------
MAX_DATAGRAM_BYTES: Final = 1400
"""Largest UDP datagram sent or accepted (internet-safe)."""
MAX_CONTACTS_PER_REPLY: Final = 20
"""Most contacts accepted in one find_node reply."""
DATAGRAMS_PER_SOURCE_PER_SECOND: Final = 200
"""Datagram rate allowed from one source address (token bucket refill)."""
DATAGRAM_BURST_PER_SOURCE: Final = 400
"""Datagram burst allowed from one source address."""
DATAGRAMS_PER_IP_PER_SECOND: Final = 1000
"""Datagram rate allowed from one IP address (IPv6: one /64), all its ports together: a few
nodes may share an address behind NAT, but hopping source ports buys no more budget."""
DATAGRAM_BURST_PER_IP: Final = 2000
"""Datagram burst allowed from one IP address (IPv6: one /64)."""
MAX_TRACKED_SOURCES: Final = 10_000
"""Most source addresses (and, separately, IP addresses) tracked by the DHT's datagram rate
limiters."""
MAX_SUSPECTS: Final = 4096
"""Most recently failed node ids remembered (lookups skip them for a while)."""
MAX_OWNER_CACHE_ENTRIES: Final = 4096
"""Most (key, count) owner lookups cached at once."""

# --- local files ---------------------------------------------------------------------------
MAX_IDENTITY_FILE_BYTES: Final = 256
"""Largest identity file read (a valid one is 65 bytes)."""
MAX_PEERS_FILE_BYTES: Final = 1024 * 1024
"""Largest peer list file read (a list of a few hundred contacts is ~30 KB)."""

# --- peer and public HTTP ------------------------------------------------------------------
MAX_HTTP_BODY_BYTES: Final = MAX_RECORD_BYTES + 64 * 1024
"""Largest HTTP request body accepted (a record plus headers)."""
BODY_IDLE_SECONDS: Final = 10.0
"""Longest wait for the next bytes of a request body; a stalled body ends the request (400,
``client_disconnected``) and its connection."""
MAX_UNUSED_BODY_BYTES: Final = 64 * 1024
"""Largest body accepted (read and discarded) by a route that uses none, e.g. a peer fill;
a larger one is refused with 413 before it is read."""
PEER_REQUESTS_PER_SECOND: Final = 200.0
"""Request rate allowed from one peer (IP address and the node id it announces) on the
node-to-node API."""
PEER_REQUEST_BURST: Final = 400
"""Request burst allowed from one peer (IP address and announced node id)."""
PEER_REQUESTS_PER_IP_PER_SECOND: Final = 400.0
"""Request rate allowed from one IP address (IPv6: one /64) on the node-to-node API, whatever
node ids it announces; loopback is exempt."""
PEER_REQUEST_BURST_PER_IP: Final = 800
"""Request burst allowed from one IP address (IPv6: one /64) on the node-to-node API."""
CLIENT_REQUESTS_PER_SECOND: Final = 500.0
"""Request rate allowed from one client address on the public API."""
CLIENT_REQUEST_BURST: Final = 1000
"""Request burst allowed from one client address on the public API."""
MAX_QUERY_STRING_BYTES: Final = 2048
"""Longest query string accepted on the public API."""
MAX_HISTORY_ITEMS: Final = 500
"""Most history entries returned by one request."""

# --- upstream ------------------------------------------------------------------------------
MAX_UPSTREAM_RESPONSE_BYTES: Final = 16 * 1024 * 1024
"""Largest upstream response body read."""
MAX_UPSTREAM_PAGES: Final = 200
"""Most pages fetched for one menu."""
MAX_PARSE_QUEUE: Final = 64
"""Most parse jobs waiting for the process pool before submitters wait."""


def describe() -> list[tuple[str, int | float, str]]:
    """Return (name, value, description) for every limit, in source order."""
    import sys

    from whnode.docstrings import attribute_docs

    module = sys.modules[__name__]
    docs = attribute_docs(module, annotated_only=True)
    return [(name, getattr(module, name), " ".join(doc.split())) for name, doc in docs.items()]
