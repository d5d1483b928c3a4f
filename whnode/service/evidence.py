"""Evidence of misbehaviour: two signed records that show a publisher lied, and the blocks
it leads to (docs/dht.md, "Cross-checking owners and evidence").

A piece of evidence is a pair of records, each a valid record on its own (rules 1-7 of
whnode.record.acceptance, and its payload opens as its header says), that together show:

- **equivocation**: one publisher signed two different menus (different content hashes) for
  one snapshot, that is for the same dispensary and the same fetch time. Snapshots are
  identified by (dispensary, fetch time): an honest node signs one menu per snapshot. Anyone
  can check this from the two records alone, and every node that learns it blocks the
  publisher for every dispensary.
- **contradiction**: a reporter's own upstream fetch (the second record, signed by the
  reporter) made at most ``CONTRADICTION_WINDOW_MS`` after the accused record's fetch time
  (or up to the keep skew before it: the accused may date ahead) found another menu. The two
  records prove that the reporter says so, not who is right (a menu may change within
  minutes), so a node blocks the accused *for that dispensary* only when the reporter is an
  owner of it as this node sees them (entitled to publish it), or is this node itself, which
  checks that the menu went back to what it was before the accused record (docs/dht.md).

Blocks last ``BLOCK_SECONDS``; the book holds at most ``MAX_EVIDENCE`` pieces and
``MAX_BLOCKS`` blocks, the oldest forgotten first.

``find_evidence`` and ``verify_evidence`` are pure (no I/O, no clock).
"""

from __future__ import annotations

import enum
import hashlib
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import cbor2

from whnode import limits
from whnode.record.acceptance import TrustPolicy, accept_record, open_record
from whnode.record.exceptions import DecodeError, LimitExceeded, RecordError
from whnode.record.keys import node_id_for
from whnode.record.signed import SignedRecord

__all__ = [
    "BLOCK_SECONDS",
    "CONTRADICTION_WINDOW_MS",
    "Evidence",
    "EvidenceBook",
    "EvidenceKind",
    "EvidenceStatistics",
    "contradiction",
    "decode_document",
    "encode_document",
    "equivocation",
    "verify_evidence",
]

CONTRADICTION_WINDOW_MS: Final = 300_000
"""How long after an accused record's fetch time a reporter's upstream fetch still
contradicts it (5 minutes: a menu rarely changes twice, back and forth, within it)."""
AHEAD_MS: Final = limits.MAX_KEEP_SKEW_SECONDS * 1000
"""How far an accused record may be dated after the reporter's fetch (the keep skew)."""
BLOCK_SECONDS: Final = 24 * 3600.0
"""How long a block lasts."""
MAX_EVIDENCE: Final = 1024
"""Most pieces of evidence held (and served on ``GET /peer/v1/evidence``)."""
MAX_BLOCKS: Final = 4096
"""Most blocks held (publisher, or publisher and dispensary)."""
MAX_DOCUMENT_ITEMS: Final = 64
"""Most pairs in one evidence document."""
MAX_DOCUMENT_BYTES: Final = 2 * MAX_DOCUMENT_ITEMS * limits.MAX_RECORD_BYTES
"""Cap on an evidence document read from a peer."""
_NO_CLOCK_MS: Final = 2**62
"""Verification passes this as "now": evidence is checked without a clock."""


class EvidenceKind(enum.StrEnum):
    """What a pair of records shows."""

    EQUIVOCATION = "equivocation"
    """One publisher, one snapshot (dispensary, fetch time), two menus: provable."""
    CONTRADICTION = "contradiction"
    """A reporter's later upstream fetch found another menu than the accused record."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """A verified pair: ``accused`` (first) and ``other`` (second)."""

    kind: EvidenceKind
    accused: SignedRecord
    other: SignedRecord

    @property
    def dispensary_id(self) -> str:
        return self.accused.dispensary_id

    @property
    def accused_id(self) -> bytes:
        """The node id of the publisher accused."""
        return bytes(node_id_for(self.accused.publisher))

    @property
    def reporter_id(self) -> bytes:
        """The node id of the second record's publisher (the accused itself when equivocating)."""
        return bytes(node_id_for(self.other.publisher))

    def pair(self) -> tuple[bytes, bytes]:
        return self.accused.encoded, self.other.encoded

    @property
    def digest(self) -> bytes:
        return hashlib.sha256(self.accused.encoded + self.other.encoded).digest()


def equivocation(first: SignedRecord, second: SignedRecord) -> Evidence | None:
    """The evidence that one publisher signed two menus for one snapshot, or None."""
    if (
        first.dispensary_id != second.dispensary_id
        or bytes(first.publisher) != bytes(second.publisher)
        or first.fetched_at_ms != second.fetched_at_ms
        or bytes(first.content_hash) == bytes(second.content_hash)
    ):
        return None
    accused, other = sorted((first, second), key=lambda record: record.encoded)
    return Evidence(EvidenceKind.EQUIVOCATION, accused, other)


def contradiction(accused: SignedRecord, upstream: SignedRecord) -> Evidence | None:
    """The evidence that ``upstream`` (a reporter's own fetch) contradicts ``accused``, or
    None when the records do not qualify (module docstring)."""
    if (
        accused.dispensary_id != upstream.dispensary_id
        or bytes(accused.publisher) == bytes(upstream.publisher)
        or bytes(accused.content_hash) == bytes(upstream.content_hash)
    ):
        return None
    delay = upstream.fetched_at_ms - accused.fetched_at_ms
    if not -AHEAD_MS <= delay <= CONTRADICTION_WINDOW_MS:
        return None
    return Evidence(EvidenceKind.CONTRADICTION, accused, upstream)


def find_evidence(first: SignedRecord, second: SignedRecord) -> Evidence | None:
    """``equivocation`` or ``contradiction`` (``first`` accused), or None."""
    return equivocation(first, second) or contradiction(first, second)


def _verified(data: bytes) -> SignedRecord:
    record = accept_record(data, now_ms=_NO_CLOCK_MS, policy=TrustPolicy.open())
    open_record(record)  # the content hash is the hash of the menu inside
    return record


def verify_evidence(first: bytes, second: bytes) -> Evidence:
    """Check a pair from the two records alone: each is a valid record whose payload opens
    as its header says, and together they are evidence (``find_evidence``, ``first``
    accused). Raises RecordError otherwise. No clock, no key directory, no network."""
    evidence = find_evidence(_verified(first), _verified(second))
    if evidence is None:
        raise DecodeError("the two records are not evidence of misbehaviour")
    return evidence


def encode_document(items: list[Evidence]) -> bytes:
    """The ``GET /peer/v1/evidence`` body: a CBOR array of [accused, other] record pairs."""
    return bytes(cbor2.dumps([list(item.pair()) for item in items[-MAX_DOCUMENT_ITEMS:]]))


def decode_document(data: bytes) -> list[tuple[bytes, bytes]]:
    """The pairs of an evidence document (not yet verified); raises DecodeError."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise LimitExceeded("evidence document too large")
    try:
        items = cbor2.loads(data)
    except Exception as exc:  # cbor2 raises several types on garbage
        raise DecodeError("evidence is not CBOR") from exc
    if not isinstance(items, list) or len(items) > MAX_DOCUMENT_ITEMS:
        raise DecodeError(f"evidence is not an array of at most {MAX_DOCUMENT_ITEMS} pairs")
    pairs: list[tuple[bytes, bytes]] = []
    for item in items:
        if not (
            isinstance(item, list)
            and len(item) == 2
            and all(isinstance(part, bytes) for part in item)
        ):
            raise DecodeError("a piece of evidence is not a pair of records")
        pairs.append((item[0], item[1]))
    return pairs


@dataclass(frozen=True, slots=True)
class EvidenceStatistics:
    """A frozen snapshot of the evidence book."""

    held: int
    """Pieces of evidence held."""
    blocked_publishers: int
    """Publishers blocked for every dispensary (equivocation)."""
    blocked_pairs: int
    """(publisher, dispensary) pairs blocked (contradiction)."""
    learned: dict[str, int]
    """Evidence learned, by kind; ``untrusted`` counts contradictions whose reporter is not an
    owner of the dispensary (kept, no block); ``invalid`` pairs that did not verify."""


class EvidenceBook:
    """The evidence this node holds and the blocks it leads to."""

    def __init__(
        self,
        *,
        node_id: bytes,
        is_owner: Callable[[bytes, str], bool],
        block_seconds: float = BLOCK_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._node_id = bytes(node_id)
        self._is_owner = is_owner
        self._block_seconds = block_seconds
        self._clock = clock
        self._evidence: OrderedDict[bytes, Evidence] = OrderedDict()
        self._blocks: OrderedDict[tuple[bytes, str | None], float] = OrderedDict()
        self._learned: Counter[str] = Counter()

    # ------------------------------------------------------------------ blocks
    def blocked(self, publisher_id: bytes, dispensary_id: str) -> bool:
        """Whether records of ``publisher_id`` (a node id) for the dispensary are refused."""
        now = self._clock()
        for key in ((bytes(publisher_id), None), (bytes(publisher_id), dispensary_id)):
            until = self._blocks.get(key)
            if until is not None:
                if until > now:
                    return True
                del self._blocks[key]
        return False

    def _block(self, publisher_id: bytes, dispensary_id: str | None) -> None:
        key = (bytes(publisher_id), dispensary_id)
        self._blocks[key] = self._clock() + self._block_seconds
        self._blocks.move_to_end(key)
        while len(self._blocks) > MAX_BLOCKS:
            self._blocks.popitem(last=False)

    # ------------------------------------------------------------------ learning
    def learn(self, evidence: Evidence) -> bool:
        """Hold verified ``evidence`` and block as the module docstring says; True when it
        blocks the accused (now or already)."""
        if evidence.digest not in self._evidence:
            self._learned[evidence.kind.value] += 1
        self._evidence[evidence.digest] = evidence
        self._evidence.move_to_end(evidence.digest)
        while len(self._evidence) > MAX_EVIDENCE:
            self._evidence.popitem(last=False)
        if evidence.kind is EvidenceKind.EQUIVOCATION:
            self._block(evidence.accused_id, None)
            return True
        reporter = evidence.reporter_id
        if reporter == self._node_id or self._is_owner(reporter, evidence.dispensary_id):
            self._block(evidence.accused_id, evidence.dispensary_id)
            return True
        self._learned["untrusted"] += 1
        return False

    def learn_pair(self, first: bytes, second: bytes) -> Evidence | None:
        """Verify a pair (``verify_evidence``) and learn it; None (counted) if it does not
        verify."""
        try:
            evidence = verify_evidence(first, second)
        except RecordError:
            self._learned["invalid"] += 1
            return None
        self.learn(evidence)
        return evidence

    def learn_document(self, data: bytes) -> list[Evidence]:
        """Every pair of a document that verifies, learned; raises DecodeError when the
        document itself is malformed."""
        learned = []
        for first, second in decode_document(data):
            evidence = self.learn_pair(first, second)
            if evidence is not None:
                learned.append(evidence)
        return learned

    # ------------------------------------------------------------------ serving
    def items(self, dispensary_id: str | None = None) -> list[Evidence]:
        """Evidence held, oldest first (of one dispensary when given)."""
        return [
            item
            for item in self._evidence.values()
            if dispensary_id is None or item.dispensary_id == dispensary_id
        ]

    def document(self, dispensary_id: str | None = None) -> bytes:
        """The evidence document (the newest ``MAX_DOCUMENT_ITEMS`` pieces)."""
        return encode_document(self.items(dispensary_id))

    def statistics(self) -> EvidenceStatistics:
        now = self._clock()
        live = [key for key, until in self._blocks.items() if until > now]
        return EvidenceStatistics(
            held=len(self._evidence),
            blocked_publishers=sum(1 for _, dispensary in live if dispensary is None),
            blocked_pairs=sum(1 for _, dispensary in live if dispensary is not None),
            learned=dict(self._learned),
        )
