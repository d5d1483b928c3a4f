"""Cross-checking owners: the other owners' view of a record, conflicts, and their
resolution (docs/dht.md, "Cross-checking owners and evidence").

**Requester side** (``check_answer``, called by whnode.service.requester for every answer
of an owner). The first time this node receives a given record from an owner, it asks every
other owner of its list (at most ``MAX_CHECKERS``) at once for their recent records
(``GET /peer/v1/history``, one RPC each), so that one liar cannot vouch for another unseen:

- all that answer hold the same menu (same content hash): the answer stands, and the record
  is not checked again;
- one holds another menu: a **conflict**. The answer is reported to that owner, the rival
  menus to an owner that agrees (``POST /peer/v1/evidence/{dispensary}``); each settles
  what it is sent with a fresh upstream fetch (below) and answers with the evidence it
  holds, which the requester verifies and learns (whnode.service.evidence). If the answer's
  publisher is now blocked, the answer is refused (``Refuted``, a NotEntitled) and the
  requester moves on to the next owner;
- one holds nothing (**verify**): the answer is reported to it, and it settles the answer
  as a conflict once its replica failed to come;
- when the owners leave it open, this node's own upstream fetch settles it (``_settle``).

**Owner side** (``resolve``). An owner that receives a record in conflict with what it
holds (a requester's report, a PUT of another publisher's record with another menu within
the contradiction window, or, holding nothing, a PUT another owner contradicts) prefers, in
this order: the menu of a **fresh upstream fetch** of its own (at most one per dispensary
per ``RESOLVE_SECONDS``; the fetched record is stored and replicated like any fill); without
upstream, what it holds (the record confirmed by more owners, itself and the owner it got
it from, against the one publisher of the claim). A claim that the fresh fetch contradicts
is blocked for that dispensary and published as evidence when the menu went back to one
this node held before the claim (A, then the claim, then A again), or when the claim is
dated at most ``CLOSE_MS`` before the fresh fetch (or after it): the claim, and every other
record of its publisher held for the dispensary, leave the hot cache and are moved to the
store's quarantine (the evidence keeps the claim too). A PUT in conflict is refused
(``ConflictingRecord``, 403 ``not_entitled``) while the resolution runs in the background:
it never displaces the record held.
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
MAX_CHECKERS: Final = 4
"""Other owners asked at once (every other owner of the requester's list, at most this many)."""
REPLICA_WAIT_SECONDS: Final = 2.0
"""How long an owner asked to settle a record it does not hold waits for its replica."""
REPLICA_POLL_SECONDS: Final = 0.1
PUT_SCAN: Final = 8
"""Newest records a PUT is compared with (an update of its publisher's own menu is kept only
when no other publisher's record within the contradiction window shows another menu)."""
DROP_SCAN: Final = 16
"""Newest records scanned for those of a contradicted publisher, to drop them."""
MAX_PUT_CHECKERS: Final = 2
"""Other owners an owner that holds nothing asks before keeping a record PUT to it."""
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
OwnerList = Callable[[str], Awaitable[Sequence[Contact]]]
"""The dispensary's owners as this node sees them, closest first."""
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
    """Cross-check outcomes: agreed, conflicts, verify, refuted, upheld, superseded,
    settled_upheld, settled_refuted, unsettled, unconfirmed, doubted, no_checker,
    checker_failed."""
    resolutions: dict[str, int]
    """Owner-side resolutions: reports, put_checks, put_conflicts, replica_waited,
    nothing_held, fetches, contradicted, dropped, confirmed, unresolved, no_upstream,
    throttled."""


def _newest(records: Sequence[SignedRecord]) -> int:
    return max(record.fetched_at_ms for record in records)


def _holds(records: Sequence[SignedRecord], content_hash: bytes) -> bool:
    return any(bytes(other.content_hash) == content_hash for other in records)


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
        owner_list: OwnerList | None = None,
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
        self.owner_list = owner_list
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
        self.trace: dict[tuple[str, bytes, int], list[str]] | None = None
        """When set (the poison bench), the outcomes of every record checked, by (dispensary,
        publisher id, fetch time)."""

    # ------------------------------------------------------------------ requester side
    async def check_answer(
        self,
        record: SignedRecord,
        answered_by: Contact,
        owners: Sequence[Contact],
        *,
        settle: bool = True,
    ) -> None:
        """Cross-check an owner's answer (module docstring); raise Refuted to fail over.

        Without ``settle`` (an owner filling from another owner's replica, which fetches
        upstream itself when the replica is refused), an answer that another owner
        contradicts, or that no other owner confirms once asked to, is refused: this node
        fetches nothing for the check.
        """
        if not self.enabled:
            return
        dispensary_id = record.dispensary_id
        publisher = bytes(node_id_for(record.publisher))
        key = (dispensary_id, publisher, record.fetched_at_ms)
        if key in self._confirmed:
            return
        skip = {answered_by.node_id, publisher, self._node_id}
        checkers = [c for c in owners if c.node_id not in skip and not c.routing_only]
        checkers = checkers[:MAX_CHECKERS]
        if not checkers:
            self._outcome(key, "no_checker")  # a network too small to check
            return
        self._checks += 1
        # every other owner at once: one liar cannot vouch for another unseen
        views = await asyncio.gather(
            *(self._view(key, checker, dispensary_id) for checker in checkers)
        )
        for checker, held in zip(checkers, views, strict=True):
            for other in held or ():
                proof = equivocation(record, other)
                if proof is not None:
                    self.book.learn(proof)
                    self._outcome(key, "refuted", checker)
                    raise Refuted(
                        f"publisher {publisher.hex()[:12]} signed two menus for one snapshot"
                    )
        menu = bytes(record.content_hash)
        agreeing = [c for c, h in zip(checkers, views, strict=True) if h and _holds(h, menu)]
        disagreeing = [c for c, h in zip(checkers, views, strict=True) if h and not _holds(h, menu)]
        if not disagreeing and agreeing:
            self._outcome(key, "agreed", agreeing[0])
            self._confirm(key)
            return
        if disagreeing and not settle:
            self._outcome(key, "doubted", disagreeing[0])
            raise Refuted(f"another owner holds another menu of {dispensary_id}")
        if disagreeing:
            self._outcome(key, "conflicts", disagreeing[0])
            resolver = disagreeing[0]
            # Each side goes to an owner of the other side, which settles it with a fresh
            # fetch of its own: the answer to an owner that disagrees, the rival menus to
            # an owner that agrees (not the answerer: it may be the liar).
            rivals = {
                bytes(other.content_hash): other
                for c, h in zip(checkers, views, strict=True)
                if c in disagreeing
                for other in h or ()
                if bytes(other.content_hash) != menu
            }
            reports = [self._report(key, resolver, record)]
            if agreeing:
                reports += [self._report(key, agreeing[0], rival) for rival in rivals.values()]
            await asyncio.gather(*reports)
            if self.book.blocked(publisher, dispensary_id):
                self._outcome(key, "refuted", resolver)
                raise Refuted(
                    f"publisher {publisher.hex()[:12]} is contradicted for {dispensary_id} by "
                    f"owner {resolver.node_id.hex()[:12]}"
                )
            if agreeing and all(
                self.book.blocked(bytes(node_id_for(rival.publisher)), dispensary_id)
                for rival in rivals.values()
            ):
                self._outcome(key, "upheld", agreeing[0])  # the rivals were contradicted
                self._confirm(key)
                return
        else:
            # no other owner holds anything (a churned owner set, replicas not landed yet, or
            # a liar's first answer): the answer stands, checked again when next received
            self._outcome(key, "unconfirmed")
            return
        after = await self._view(key, resolver, dispensary_id)
        if after and _holds(after, menu):
            self._outcome(key, "upheld", resolver)  # its replica, or its fresh fetch, agrees
            self._confirm(key)
            return
        if not settle:
            self._outcome(key, "doubted", resolver)
            raise Refuted(f"no other owner confirms the menu of {dispensary_id}")
        if not agreeing and after and _newest(after) > record.fetched_at_ms:
            # nobody else vouches for the answer, and the owner that settled it holds a
            # newer menu (its fresh fetch): that one is served, by the next owner
            self._outcome(key, "superseded", resolver)
            raise Refuted(
                f"the menu of {dispensary_id} by {publisher.hex()[:12]} is superseded by a "
                f"newer one at owner {resolver.node_id.hex()[:12]}"
            )
        await self._settle(key, record)

    async def _report(
        self, key: tuple[str, bytes, int], owner: Contact, record: SignedRecord
    ) -> None:
        """Report ``record`` to ``owner``, which settles it, and learn the evidence it
        answers (a failure is counted: the caller goes on without)."""
        self._rpcs += 1
        try:
            document = await report_conflict(
                self._peers, owner, record.dispensary_id, record.encoded
            )
            self.book.learn_document(document)
        except (PeerError, RecordError):
            self._outcome(key, "checker_failed", owner)

    async def _settle(self, key: tuple[str, bytes, int], record: SignedRecord) -> None:
        """Owners disagree and none settled it: this node's own upstream fetch does (at most
        one per dispensary per RESOLVE_SECONDS, shared); raise Refuted when it shows another
        menu."""
        fresh = await self._fresh(record.dispensary_id)
        if fresh is None:
            self._outcome(key, "unsettled")  # no upstream here: the answer stands
            return
        if bytes(fresh.content_hash) == bytes(record.content_hash):
            self._outcome(key, "settled_upheld")
            self._confirm(key)
            return
        proof = contradiction(record, fresh)
        if proof is not None and fresh.fetched_at_ms - record.fetched_at_ms <= CLOSE_MS:
            self.book.learn(proof)  # this node is the reporter: it blocks
        self._outcome(key, "settled_refuted")
        raise Refuted(
            f"the menu of {record.dispensary_id} by {key[1].hex()[:12]} is not what upstream "
            "serves now"
        )

    async def _view(
        self, key: tuple[str, bytes, int], checker: Contact, dispensary_id: str
    ) -> list[SignedRecord] | None:
        """The checker's newest records (verified, blocked publishers left out); None when
        it failed to answer."""
        self._rpcs += 1
        try:
            items = await self._peers.history(checker, dispensary_id, HISTORY_LIMIT)
        except PeerError:
            self._outcome(key, "checker_failed", checker)
            return None
        return await self._verified(items, dispensary_id)

    def _outcome(
        self, key: tuple[str, bytes, int], name: str, checker: Contact | None = None
    ) -> None:
        self._outcomes[name] += 1
        if self.trace is not None:
            who = "" if checker is None else f"@{checker.node_id.hex()[:8]}"
            self.trace.setdefault(key, []).append(name + who)

    def _confirm(self, key: tuple[str, bytes, int]) -> None:
        self._confirmed[key] = None
        self._confirmed.move_to_end(key)
        while len(self._confirmed) > MAX_CONFIRMED:
            self._confirmed.popitem(last=False)

    async def _verified(
        self, items: Sequence[bytes], dispensary_id: str
    ) -> list[SignedRecord] | None:
        """The records that verify, less those of blocked publishers; None when there were
        records and none is left (an owner that serves only blocked or broken records
        says nothing, and is not taken for one that holds nothing)."""
        records = []
        for data in items:
            try:
                record = await self._verify(data, dispensary_id)
            except RecordError:
                continue
            if not self.book.blocked(bytes(node_id_for(record.publisher)), dispensary_id):
                records.append(record)
        return records if records or not items else None

    async def fetch_evidence(self, contact: Contact, dispensary_id: str | None = None) -> int:
        """Learn the evidence a peer holds (``GET /peer/v1/evidence``); the pieces learned."""
        document = await fetch_evidence(self._peers, contact, dispensary_id)
        return len(self.book.learn_document(document))

    # ------------------------------------------------------------------ owner side
    async def _held(self, dispensary_id: str, limit: int = HISTORY_LIMIT) -> list[SignedRecord]:
        records = []
        for stored in await self._store.history(dispensary_id, limit):
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
        # deeper than the newest two: a liar first replicates an honest fetch of its own,
        # then "updates" it, and the newest two records are then both its own
        held = await self._held(record.dispensary_id, PUT_SCAN)
        publisher = bytes(record.publisher)
        if not held:
            if await self._rival_elsewhere(record):
                self._conflict(record)
            return
        near = [
            other
            for other in held
            if abs(other.fetched_at_ms - record.fetched_at_ms) <= CONTRADICTION_WINDOW_MS
        ]
        if any(bytes(o.content_hash) == bytes(record.content_hash) for o in near):
            return
        if not near:
            # older records only: a change of menu is an update when the newest held is
            # the publisher's own (or has that menu); another publisher's change is settled
            newest = max(held, key=lambda other: other.fetched_at_ms)
            if bytes(newest.publisher) == publisher or bytes(newest.content_hash) == bytes(
                record.content_hash
            ):
                return
            if newest.fetched_at_ms < record.fetched_at_ms:
                self._conflict(record)
            return
        if all(bytes(other.publisher) == publisher for other in near):
            for other in near:
                proof = equivocation(record, other)
                if proof is not None:
                    self.book.learn(proof)
                    raise Refuted("the publisher signed two menus for one snapshot")
            return  # the publisher's own newer menu: an update
        self._conflict(record)

    def _conflict(self, record: SignedRecord) -> None:
        """Refuse a PUT in conflict (ConflictingRecord) and resolve it in the background."""
        self._resolutions["put_conflicts"] += 1
        task = asyncio.get_running_loop().create_task(
            self._resolve_quietly(record), name="crosscheck-resolve"
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        raise ConflictingRecord(
            f"another menu of {record.dispensary_id} is held for that time: resolving"
        )

    async def _rival_elsewhere(self, record: SignedRecord) -> bool:
        """For a record PUT to this node while it holds nothing of the dispensary: whether
        another owner holds another menu from then or later (a record this node could not
        compare with itself). Up to MAX_PUT_CHECKERS other owners are asked, at once."""
        if self.owner_list is None:
            return False
        dispensary_id = record.dispensary_id
        publisher = bytes(node_id_for(record.publisher))
        try:
            owners = await self.owner_list(dispensary_id)
        except Exception:  # no owner list now: the record is compared when next read
            return False
        checkers = [
            c for c in owners if c.node_id not in {self._node_id, publisher} and not c.routing_only
        ][:MAX_PUT_CHECKERS]
        if not checkers:
            return False
        self._resolutions["put_checks"] += 1
        key = (dispensary_id, publisher, record.fetched_at_ms)
        views = await asyncio.gather(*(self._view(key, c, dispensary_id) for c in checkers))
        since = record.fetched_at_ms - CONTRADICTION_WINDOW_MS
        return any(
            bytes(other.content_hash) != bytes(record.content_hash) and other.fetched_at_ms >= since
            for view in views
            for other in view or ()
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
            held = await self._replica(dispensary_id)
        if not held:
            # a record no other owner holds (an owner's first fill whose replica did not
            # come, or a liar's first answer): settled upstream
            self._resolutions["nothing_held"] += 1
            await self._judge(record)
        elif any(bytes(other.content_hash) == bytes(record.content_hash) for other in held):
            self._resolutions["agreed"] += 1  # e.g. the replica arrived meanwhile
        else:
            await self._judge(record)
        return self.book.document(dispensary_id)

    async def _replica(self, dispensary_id: str) -> list[SignedRecord]:
        """The records held after waiting up to REPLICA_WAIT_SECONDS for one to arrive (a
        requester often checks an owner's fresh fill before its replicas land)."""
        deadline = self._clock() + REPLICA_WAIT_SECONDS
        while self._clock() < deadline:
            await asyncio.sleep(REPLICA_POLL_SECONDS)
            held = await self._held(dispensary_id)
            if held:
                self._resolutions["replica_waited"] += 1
                return held
        return []

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
        # the claim, and every other record of its publisher held for the dispensary (its
        # replicas of honest fetches included: requesters that learn the block refuse them,
        # so this node must not answer them)
        accused = bytes(claim.publisher)
        if self._hot.delete(dispensary_id, claim.fetched_at_ms):
            self._resolutions["dropped"] += 1
        for stored in await self._store.history(dispensary_id, DROP_SCAN):
            try:
                kept = decode_record(stored.data)
            except DecodeError:
                continue
            if bytes(kept.publisher) == accused:
                self._hot.delete(dispensary_id, kept.fetched_at_ms)
                await self._store.quarantine(dispensary_id, kept.fetched_at_ms, "contradicted")
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
