"""The node-to-node HTTP protocol: paths, headers and error kinds (docs/peer-protocol.md).

Every node serves these on the TCP port whose number equals its UDP (DHT) port, so a Kademlia
contact (host, port) is enough to reach it.

- ``GET  /peer/v1/records/{dispensary}[?at=MS]``  newest record, or the one current at MS.
- ``PUT  /peer/v1/records/{dispensary}``           store a record (validated first).
- ``POST /peer/v1/fill/{dispensary}?deadline_ms=MS[&max_age=S]``  owner-side fill; the fill
  is never forwarded again (hop limit 1) and gives up at the absolute deadline.
- ``GET  /peer/v1/history/{dispensary}?limit=N``  recent records, a CBOR array of records.

Records travel as ``application/cose`` bodies. Errors are problem+json documents whose
``kind`` member is one of ``ErrorKind``.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["COSE_TYPE", "HEADER_FRESH_UNTIL", "HEADER_NODE", "HEADER_PATH", "ErrorKind"]

PREFIX: Final = "/peer/v1"
COSE_TYPE: Final = "application/cose"
CBOR_TYPE: Final = "application/cbor"
HEADER_FRESH_UNTIL: Final = "X-Whnode-Fresh-Until"
"""Epoch ms until which the answering owner considers the record fresh."""
HEADER_STALE: Final = "X-Whnode-Stale"
"""'1' when the owner served a stale record (revalidating or upstream failing)."""
HEADER_PATH: Final = "X-Whnode-Path"
"""How the owner obtained the record (hot, store, owner, fill, stale)."""
HEADER_NODE: Final = "X-Whnode-Node"
"""The requesting node's id in hex; part of the per-peer rate-limit key."""


class ErrorKind(enum.StrEnum):
    """Machine-readable error kinds in peer problem documents."""

    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    REJECTED_RECORD = "rejected_record"
    UNKNOWN_DISPENSARY = "unknown_dispensary"
    UPSTREAM_REFUSED = "upstream_refused"
    UPSTREAM_RATE_LIMITED = "upstream_rate_limited"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    UPSTREAM_FAILED = "upstream_failed"
    RATE_LIMITED = "rate_limited"
    TOO_LARGE = "too_large"
    DEADLINE = "deadline"
    NOT_OWNER = "not_owner"
    NOT_HELD = "not_held"
    """A hedged fill: the owner neither holds a record fresh enough nor runs a fill to join."""
    BAD_PAYLOAD = "bad_payload"
    """The payload does not open, or holds another menu than its signed header says."""
    FUTURE_RECORD = "future_record"
    """Dated too far ahead of the receiver's clock to be kept."""
    NOT_ENTITLED = "not_entitled"
    """The publisher is not an owner of the dispensary, or the sender neither an owner nor
    the publisher."""
    CLIENT_DISCONNECTED = "client_disconnected"
    """The client hung up or broke the body framing mid-request (counted, never answered
    with 500: the client's fault, not the server's)."""
    INTERNAL = "internal"
