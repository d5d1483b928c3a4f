"""Cross-checking owners: a second owner's view of a record, conflicts, and their resolution
(docs/dht.md, "Cross-checking owners and evidence").

**Requester side** (``check_answer``, called by whnode.service.requester for every answer
of an owner). The first time this node receives a given record from an owner, it asks one
other owner of the dispensary for its recent records (``GET /peer/v1/history``, one RPC):

- the other owner holds the same menu (same content hash): the answer stands, and the
  record is not checked again; when it holds nothing, the next owner is asked (at most
  ``MAX_CHECKERS`` owners), and when none holds anything the answer stands unconfirmed;
- it holds another menu: a **conflict**. The requester sends the record it received to that
  owner (``POST /peer/v1/evidence/{dispensary}``, a second RPC). The owner resolves the
  conflict (below) and answers with the evidence it holds for the dispensary; the requester
  verifies every pair and learns it (whnode.service.evidence). If the answer's publisher
  is now blocked for the dispensary, the answer is refused (``Refuted``, a NotEntitled) and
  the requester moves on to the next owner.

**Owner side** (``resolve``). An owner that receives a record in conflict with what it
holds (a requester's report, or a PUT of another publisher's record with another menu
within the contradiction window) prefers, in this order: the menu of a **fresh upstream
fetch** of its own (at most one per dispensary per ``RESOLVE_SECONDS``; the fetched record is
stored and replicated like any fill); without upstream, what it holds (the record confirmed by
more owners, itself and the owner it got it from, against the one publisher of the claim).
A claim that the fresh fetch contradicts is blocked for that dispensary and published as
evidence when the menu went back to one this node held before the claim (A, then the claim,
then A again), or when the claim is dated at most ``CLOSE_MS`` before the fresh fetch (or
after it): the claim leaves the hot cache and is moved to the store's quarantine (the
evidence keeps it too).
A PUT in conflict is refused (``ConflictingRecord``, 403 ``not_entitled``) while the
resolution runs in the background: it never displaces the record held.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from whnode.abc import PeerTransport
from whnode.dht import Contact
from whnode.peer.evidence import fetch_evidence, report_conflict
from whnode.peer.exceptions import PeerError
from whnode.record.exceptions import DecodeError, RecordError
from whnode.record.keys import node_id_for
from whnode.record.signed import SignedRecord, decode_record
from whnode.service.evidence import (
    CONTRADICTION_WINDOW_MS,
    EvidenceBook,
    contradiction,
    equivocation,
)
from whnode.service.exceptions import ConflictingRecord, Refuted
from whnode.store.types import StoredRecord

__all__ = ["ConflictingRecord", "CrossCheck", "CrossCheckStatistics", "Refuted"]

HISTORY_LIMIT: Final = 2
"""Records asked of the checking owner (its newest two: a record and the one before it)."""
RESOLVE_SECONDS: Final = 60.0
"""At most one resolving upstream fetch per dispensary per this many seconds."""
CLOSE_MS: Final = 5_000
"""A claim dated this close before a fresh fetch that shows another menu is contradicted."""
MAX_CHECKERS: Final = 2
"""Owners asked in turn until one holds a record of the dispensary."""
MAX_CONFIRMED: Final = 8192
"""Records remembered as already cross-checked."""


class Held(Protocol):
    """What the cross-check needs of the stores."""

    async def history(self, dispensary_id: str, limit: int) -> list[StoredRecord]: ...
    async def quarantine(self, dispensary_id: str, fetched_at_ms: int, reason: str) -> bool: ...


class Hot(Protocol):
    def delete(self, dispensary_id: str, fetched_at_ms: int) -> bool: ...


Refetch = Callable[[str], Awaitable[SignedRecord]]
"""A fresh upstream fetch of a dispensary by this node (stored and replicated)."""
Verify = Callable[[bytes, str], Awaitable[SignedRecord]]
"""Verifies a record of the dispensary (acceptance rules 1-7, counted), without keeping it."""


@dataclass(frozen=True, slots=True)
class CrossCheckStatistics:
    """A frozen snapshot of the cross-check counters."""

    checks: int
    """Answers cross-checked (one history RPC each)."""
    rpcs: int
    """RPCs the cross-check sent (history and reports)."""
    outcomes: dict[str, int]
    """Cross-check outcomes: agreed, unconfirmed, conflicts, refuted, upheld, no_checker,
    checker_failed."""
    resolutions: dict[str, int]
    """Owner-side resolutions: reports, put_conflicts, fetches, contradicted, confirmed,
    no_upstream, throttled."""


class CrossCheck:
    """Both sides of the owner cross-check (module docstring)."""

    def __init__(
        self,
        *,
        node_id: bytes,
        peers: PeerTransport,
        book: EvidenceBook,
        verify: Verify,
        store: Held,
        hot: Hot,
        refetch: Refetch | None,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._node_id = bytes(node_id)
        self._peers = peers
        self.book = book
        self._verify = verify
        self._store = store
        self._hot = hot
        self.refetch = refetch
        self.enabled = enabled
        self._clock = clock
        self._confirmed: OrderedDict[tuple[str, bytes, int], None] = OrderedDict()
        self._resolved: dict[str, tuple[float, SignedRecord]] = {}
        self._resolving: dict[str, asyncio.Future[SignedRecord | None]] = {}
        self._background: set[asyncio.Task[object]] = set()
        self._checks = 0
        self._rpcs = 0
        self._outcomes: Counter[str] = Counter()
        self._resolutions: Counter[str] = Counter()

    # ------------------------------------------------------------------ requester side
    async def check_answer(
        self, record: SignedRecord, answered_by: Contact, owners: Sequence[Contact]
    ) -> None:
        """Cross-check an owner's answer (module docstring); raise Refuted to fail over."""
        if not self.enabled:
            return
        dispensary_id = record.dispensary_id
        publisher = bytes(node_id_for(record.publisher))
        key = (dispensary_id, publisher, record.fetched_at_ms)
        if key in self._confirmed:
            return
        skip = {answered_by.node_id, publisher, self._node_id}
        candidates = [c for c in owners if c.node_id not in skip and not c.routing_only]
        if not candidates:
            self._outcomes["no_checker"] += 1
            return
        self._checks += 1
        checker = candidates[0]
        held: list[SignedRecord] = []
        for checker in candidates[:MAX_CHECKERS]:
            # the next owner is asked when one holds nothing (it may have just joined)
            self._rpcs += 1
            try:
                items = await self._peers.history(checker, dispensary_id, HISTORY_LIMIT)
            except PeerError:
                self._outcomes["checker_failed"] += 1
                continue
            held = await self._verified(items, dispensary_id)
            if held:
                break
        for other in held:
            proof = equivocation(record, other)
            if proof is not None:
                self.book.learn(proof)
                self._outcomes["refuted"] += 1
                raise Refuted(f"publisher {publisher.hex()[:12]} signed two menus for one snapshot")
        if not held:
            self._outcomes["unconfirmed"] += 1  # not remembered: checked again next time
            return
        if any(bytes(other.content_hash) == bytes(record.content_hash) for other in held):
            self._outcomes["agreed"] += 1
            self._confirm(key)
            return
        self._outcomes["conflicts"] += 1
        self._rpcs += 1
        try:
            document = await report_conflict(self._peers, checker, dispensary_id, record.encoded)
            self.book.learn_document(document)
        except (PeerError, RecordError):
            self._outcomes["checker_failed"] += 1
            return
        if self.book.blocked(publisher, dispensary_id):
            self._outcomes["refuted"] += 1
            raise Refuted(
                f"publisher {publisher.hex()[:12]} is contradicted for {dispensary_id} by "
                f"owner {checker.node_id.hex()[:12]}"
            )
        self._outcomes["upheld"] += 1
        self._confirm(key)

    def _confirm(self, key: tuple[str, bytes, int]) -> None:
        self._confirmed[key] = None
        self._confirmed.move_to_end(key)
        while len(self._confirmed) > MAX_CONFIRMED:
            self._confirmed.popitem(last=False)

    async def _verified(self, items: Sequence[bytes], dispensary_id: str) -> list[SignedRecord]:
        records = []
        for data in items:
            try:
                record = await self._verify(data, dispensary_id)
            except RecordError:
                continue
            if not self.book.blocked(bytes(node_id_for(record.publisher)), dispensary_id):
                records.append(record)
        return records

    async def fetch_evidence(self, contact: Contact, dispensary_id: str | None = None) -> int:
        """Learn the evidence a peer holds (``GET /peer/v1/evidence``); the pieces learned."""
        document = await fetch_evidence(self._peers, contact, dispensary_id)
        return len(self.book.learn_document(document))

    # ------------------------------------------------------------------ owner side
    async def _held(self, dispensary_id: str) -> list[SignedRecord]:
        records = []
        for stored in await self._store.history(dispensary_id, HISTORY_LIMIT):
            try:
                records.append(decode_record(stored.data))
            except DecodeError:
                continue
        return records

    async def on_put(self, record: SignedRecord) -> None:
        """A record a peer PUTs, already admitted and entitled: raise ConflictingRecord when
        it conflicts with the records held (another publisher, another menu, within the
        contradiction window), and resolve in the background."""
        if not self.enabled:
            return
        held = await self._held(record.dispensary_id)
        publisher = bytes(record.publisher)
        near = [
            other
            for other in held
            if abs(other.fetched_at_ms - record.fetched_at_ms) <= CONTRADICTION_WINDOW_MS
        ]
        if not near or any(bytes(o.content_hash) == bytes(record.content_hash) for o in near):
            return
        if all(bytes(other.publisher) == publisher for other in near):
            for other in near:
                proof = equivocation(record, other)
                if proof is not None:
                    self.book.learn(proof)
                    raise Refuted("the publisher signed two menus for one snapshot")
            return  # the publisher's own newer menu: an update
        self._resolutions["put_conflicts"] += 1
        task = asyncio.get_running_loop().create_task(
            self._resolve_quietly(record), name="crosscheck-resolve"
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        raise ConflictingRecord(
            f"another menu of {record.dispensary_id} is held for that time: resolving"
        )

    async def _resolve_quietly(self, record: SignedRecord) -> None:
        try:
            await self._judge(record)
        except Exception as exc:  # a background resolution is best effort
            self._resolutions[f"failed_{type(exc).__name__}"] += 1

    def evidence_document(self, dispensary_id: str | None) -> bytes:
        """The evidence held (of one dispensary when given): ``GET /peer/v1/evidence``."""
        return self.book.document(dispensary_id)

    async def resolve_conflict(self, dispensary_id: str, data: bytes) -> bytes:
        """A requester's report of a record in conflict with what this node holds: resolve
        and answer the evidence held for the dispensary."""
        self._resolutions["reports"] += 1
        record = await self._verify(data, dispensary_id)
        if self.book.blocked(bytes(node_id_for(record.publisher)), dispensary_id):
            return self.book.document(dispensary_id)
        held = await self._held(dispensary_id)
        if not held:
            self._resolutions["nothing_held"] += 1
        elif any(bytes(other.content_hash) == bytes(record.content_hash) for other in held):
            self._resolutions["agreed"] += 1  # e.g. the replica arrived meanwhile
        else:
            await self._judge(record)
        return self.book.document(dispensary_id)

    async def _judge(self, claim: SignedRecord) -> None:
        dispensary_id = claim.dispensary_id
        held = await self._held(dispensary_id)
        fresh = await self._fresh(dispensary_id)
        if fresh is None:
            return
        if bytes(fresh.content_hash) == bytes(claim.content_hash):
            self._resolutions["confirmed"] += 1
            return
        before = [
            other
            for other in held
            if other.fetched_at_ms <= claim.fetched_at_ms
            and bytes(other.publisher) != bytes(claim.publisher)
        ]
        went_back = any(bytes(o.content_hash) == bytes(fresh.content_hash) for o in before)
        close = fresh.fetched_at_ms - claim.fetched_at_ms <= CLOSE_MS
        proof = contradiction(claim, fresh)
        if proof is None or not (went_back or close):
            self._resolutions["unresolved"] += 1
            return
        self._resolutions["contradicted"] += 1
        self.book.learn(proof)
        if self._hot.delete(dispensary_id, claim.fetched_at_ms):
            self._resolutions["dropped"] += 1
        for stored in await self._store.history(dispensary_id, HISTORY_LIMIT):
            if stored.data == claim.encoded:
                await self._store.quarantine(dispensary_id, claim.fetched_at_ms, "contradicted")
                self._resolutions["dropped"] += 1

    async def _fresh(self, dispensary_id: str) -> SignedRecord | None:
        """This node's fresh upstream record of the dispensary: at most one fetch per
        RESOLVE_SECONDS (later callers get the last one), concurrent callers share it."""
        done = self._resolved.get(dispensary_id)
        if done is not None and self._clock() - done[0] < RESOLVE_SECONDS:
            self._resolutions["throttled"] += 1
            return done[1]
        running = self._resolving.get(dispensary_id)
        if running is not None:
            return await asyncio.shield(running)
        if self.refetch is None:
            self._resolutions["no_upstream"] += 1
            return None
        future: asyncio.Future[SignedRecord | None] = asyncio.get_running_loop().create_future()
        self._resolving[dispensary_id] = future
        try:
            self._resolutions["fetches"] += 1
            record = await self.refetch(dispensary_id)
            self._resolved[dispensary_id] = (self._clock(), record)
            if len(self._resolved) > MAX_CONFIRMED:
                del self._resolved[next(iter(self._resolved))]
            future.set_result(record)
            return record
        except Exception:  # upstream failing: keep what is held
            self._resolutions["no_upstream"] += 1
            future.set_result(None)
            return None
        finally:
            del self._resolving[dispensary_id]
            if not future.done():  # cancelled: waiters keep what is held
                future.set_result(None)

    async def aclose(self) -> None:
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def statistics(self) -> CrossCheckStatistics:
        return CrossCheckStatistics(
            checks=self._checks,
            rpcs=self._rpcs,
            outcomes=dict(self._outcomes),
            resolutions=dict(self._resolutions),
        )
