"""The requester's side of a fill: which nodes own a dispensary, and asking them in turn.

A node that holds no fresh record asks the dispensary's owners, closest first
(docs/architecture.md, "One request"). Two things matter for "one upstream call per
dispensary per freshness window" to hold on a busy network:

- **Every requester must name the same first owner.** A DHT lookup on a loaded node (an
  event loop that lags by more than the RPC timeout) hears back from only some of the
  owners; a list made of those alone names some other node first, often the requester
  itself, and every such requester then fills on its own. The owner list is therefore the
  closest of the nodes the lookup heard from *and* the owner-capable nodes this node has
  seen in its routing table or in lookups over the last KNOWN_SECONDS (the same lag makes
  the routing table drop live contacts): a node that did not answer in time is still an
  owner. A dead one costs one failed connection (or a hedge) and a failover, and is left out
  for UNREACHABLE_SECONDS.
- **The request's arrival time travels with the fill** (``requested_at``), so the owner
  answers with a record that was fresh when the request arrived even when the fill, the
  network or a busy event loop delayed its answer, instead of filling again.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from whnode.abc import OwnerLookup as OwnerDirectory
from whnode.abc import PeerTransport
from whnode.dht import Contact
from whnode.peer.client import FillAnswer
from whnode.peer.exceptions import PeerError, PeerRefused, PeerUnreachable
from whnode.peer.prefetch import HistoryPrefetch
from whnode.peer.wire import ErrorKind
from whnode.record.exceptions import RecordError
from whnode.record.keys import routing_key
from whnode.record.signed import SignedRecord
from whnode.service.exceptions import MenuNotFound, NoOwnerReachable
from whnode.service.filllog import FillReason
from whnode.service.hedging import LAGGING_SECONDS, HedgeDelay, first_answer
from whnode.upstream.exceptions import (
    UnknownDispensary,
    UpstreamBadResponse,
    UpstreamRateLimited,
    UpstreamRefused,
    UpstreamUnavailable,
)

__all__ = ["FillHere", "OwnerDirectory", "OwnerReply", "OwnerRequests", "merge_owners"]

UNREACHABLE_SECONDS: Final = 30.0
"""How long a node that did not answer over HTTP is left out of the routing table's part of
owner lists."""
MAX_UNREACHABLE: Final = 4096
KNOWN_SECONDS: Final = 600.0
"""How long a node seen in the routing table or a lookup stays a candidate owner."""
KNOWN_REFRESH_SECONDS: Final = 1.0
MAX_KNOWN: Final = 2048
ANSWER_REUSE_SECONDS: Final = 600.0
"""How long a lookup's answer for a dispensary is used again (merged with the nodes known
now, less those unreachable) instead of waiting for a new lookup."""
ANSWER_REFRESH_SECONDS: Final = 60.0
"""Age past which a reused lookup answer is looked up again, in the background."""
MAX_ANSWERS: Final = 100_000
HELD_PATHS: Final = frozenset({"hot", "store"})
"""Answer paths of an owner that held the record: their times set the hedge delay."""


@dataclass(frozen=True, slots=True)
class OwnerReply:
    """A remote owner's answer, its record verified."""

    contact: Contact
    fill: FillAnswer
    record: SignedRecord


@dataclass(frozen=True, slots=True)
class FillHere:
    """This node is the next owner in line: it fills itself, for ``reason``."""

    reason: FillReason


def merge_owners(
    found: Iterable[Contact],
    known: Iterable[Contact],
    key: bytes,
    count: int,
    cap: Callable[[list[Contact]], list[Contact]] | None = None,
) -> list[Contact]:
    """The ``count`` owner-capable nodes closest to ``key`` among those a lookup ``found``
    and those the routing table ``known``s, closest first, each once; ``cap`` (the DHT's
    per-IP owner cap) applied before counting."""
    merged: dict[bytes, Contact] = {}
    for contact in found:
        merged.setdefault(contact.node_id, contact)
    for contact in known:
        if not contact.routing_only:
            merged.setdefault(contact.node_id, contact)
    ranked = sorted(merged.values(), key=lambda contact: contact.distance_to(key))
    return (ranked if cap is None else cap(ranked))[:count]


def remote_error(exc: PeerRefused, dispensary_id: str) -> Exception | None:
    """The local exception for an owner's refusal, or None when another owner may do better."""
    source = f"owner {exc.peer}"
    kind = exc.kind
    if kind == ErrorKind.UNKNOWN_DISPENSARY:
        return UnknownDispensary(str(exc), source=source, dispensary_id=dispensary_id)
    if kind == ErrorKind.UPSTREAM_REFUSED:
        return UpstreamRefused(str(exc), source=source, dispensary_id=dispensary_id)
    if kind == ErrorKind.UPSTREAM_RATE_LIMITED:
        return UpstreamRateLimited(str(exc), source=source, dispensary_id=dispensary_id)
    if kind == ErrorKind.UPSTREAM_UNAVAILABLE:
        return UpstreamUnavailable(str(exc), source=source, dispensary_id=dispensary_id)
    if kind == ErrorKind.UPSTREAM_FAILED:
        return UpstreamBadResponse(str(exc), source=source, dispensary_id=dispensary_id)
    if kind == ErrorKind.NOT_FOUND:
        return MenuNotFound(str(exc), dispensary_id=dispensary_id)
    return None


CrossCheckAnswer = Callable[[SignedRecord, Contact, Sequence[Contact]], Awaitable[None]]
Accept = Callable[[bytes], Awaitable[SignedRecord]]
"""Verifies a record received for the dispensary asked about (the service's acceptance)."""


class OwnerRequests:
    """Finds a dispensary's owners and asks them for a record, closest first, hedging to
    the next owner when one is slow (whnode.service.hedging)."""

    def __init__(
        self,
        *,
        peers: PeerTransport,
        owners: OwnerDirectory,
        replication: int,
        hedge_delay: float,
    ) -> None:
        self._peers = peers
        self._owners = owners
        self._replication = replication
        self.hedge_delay = HedgeDelay(hedge_delay)
        self.failovers: Counter[str] = Counter()
        """Owners skipped for the next one, by cause (unreachable, bad_answer, refusal kind)."""
        self.hedges: Counter[str] = Counter()
        """Hedges sent, won (answered first) and declined (not_held or failed)."""
        self._unreachable: dict[bytes, float] = {}
        self._known: OrderedDict[bytes, tuple[Contact, float]] = OrderedDict()
        """Owner-capable nodes by id: contact and when last seen, least recent first."""
        self._known_refreshed = -math.inf
        self._answers: OrderedDict[str, tuple[tuple[Contact, ...], float]] = OrderedDict()
        """The last lookup answer per dispensary and when it came, least recent first."""
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._knows_neighbourhood: Callable[[bytes], bool] | None = getattr(
            owners, "knows_neighbourhood", None
        )
        """The DHT's ``knows_neighbourhood``, where it has one."""
        self.lookups: Counter[str] = Counter()
        """Owner lists by how they were made: ``awaited`` (a lookup waited for), ``reused``
        (a remembered answer), ``refreshed`` (background lookups)."""
        self._cap_per_ip: Callable[[list[Contact]], list[Contact]] | None = getattr(
            owners, "cap_per_ip", None
        )
        """The DHT's per-IP owner cap (docs/dht.md, "Costly positioning"), where it has one."""
        self.crosscheck: CrossCheckAnswer | None = None
        """Checks an owner's answer with another owner (whnode.service.crosscheck); raises
        a RecordError to move on to the next owner."""
        self.checkers: int = 0
        """How many other owners the cross-check asks (0: it is off). Their history is
        asked when the fill is sent (``PeerClient.prefetch_history``), so that the
        cross-check finds it on its way rather than costing one more round trip."""
        self.history_limit: int = 1

    async def aclose(self) -> None:
        """Cancel the background lookups and the history requests sent ahead."""
        prefetch = getattr(self._peers, "prefetch", None)
        if isinstance(prefetch, HistoryPrefetch):
            await prefetch.aclose()
        tasks = list(self._refreshing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._refreshing.clear()

    @property
    def node_id(self) -> bytes:
        return self._owners.node_id

    async def owner_list(self, dispensary_id: str, *, fresh: bool = False) -> list[Contact]:
        """The dispensary's owners as this node sees them, closest first (module docstring).

        With ``fresh`` (republishing: the owners of now), the answer of a new lookup alone.
        Otherwise the lookup's answer merged with the owner-capable nodes this node has
        known lately (``_known``), less those unreachable over HTTP in the last
        UNREACHABLE_SECONDS (the lookup may still name them).

        A lookup costs several round trips, each one longer on a busy host: the answer
        for a dispensary is remembered and used again for ANSWER_REUSE_SECONDS, looked up
        anew in the background once it is ANSWER_REFRESH_SECONDS old. What changed
        meanwhile still shows: nodes that joined closer to the key are in the routing
        table (``_known``), and an owner that died is unreachable (one failed connection,
        then left out for UNREACHABLE_SECONDS). With no answer remembered, a DHT whose
        routing table holds the key's neighbourhood (``knows_neighbourhood``: the bucket of
        the key has room, as every bucket has in a network smaller than one) is not waited
        for either: the nodes known now are the owners, and the lookup runs meanwhile.
        """
        key = routing_key(dispensary_id)
        if fresh:
            return list(await self._owners.find_owners(key, self._replication, fresh=True))
        now = time.monotonic()
        remembered = self._answers.get(dispensary_id)
        if remembered is not None and now - remembered[1] <= ANSWER_REUSE_SECONDS:
            found: Sequence[Contact] = remembered[0]
            self.lookups["reused"] += 1
            if now - remembered[1] >= ANSWER_REFRESH_SECONDS:
                self._refresh(dispensary_id, key)
        elif self._knows_neighbourhood is not None and self._knows_neighbourhood(key):
            # The routing table holds the key's neighbourhood: the nodes known now are
            # the owners a lookup would name; the lookup runs in the background.
            found = self._myself()
            self.lookups["from_table"] += 1
            self._refresh(dispensary_id, key)
        else:
            found = await self._look_up(dispensary_id, key)
            self.lookups["awaited"] += 1
        self._learn(found, now)
        for node_id, until in list(self._unreachable.items()):
            if until < now:
                del self._unreachable[node_id]
        known = [
            contact
            for contact, _ in self._known.values()
            if contact.node_id not in self._unreachable
        ]
        return merge_owners(found, known, key, self._replication, self._cap_per_ip)

    def _myself(self) -> tuple[Contact, ...]:
        """This node as a candidate owner (as a lookup's answer names it), unless it is
        routing-only."""
        me = getattr(self._owners, "self_contact", None)
        if not isinstance(me, Contact) or getattr(self._owners, "routing_only", False):
            return ()
        return (me,)

    async def _look_up(self, dispensary_id: str, key: bytes) -> Sequence[Contact]:
        """A lookup's answer for the dispensary, remembered."""
        found = tuple(await self._owners.find_owners(key, self._replication))
        self._answers[dispensary_id] = (found, time.monotonic())
        self._answers.move_to_end(dispensary_id)
        while len(self._answers) > MAX_ANSWERS:
            self._answers.popitem(last=False)
        return found

    def _refresh(self, dispensary_id: str, key: bytes) -> None:
        """Look the dispensary's owners up again in the background (one at a time)."""
        if dispensary_id in self._refreshing:
            return

        async def refresh() -> None:
            try:
                await self._look_up(dispensary_id, key)
                self.lookups["refreshed"] += 1
            except Exception:  # the remembered answer stays in use; the next call retries
                self.lookups["refresh_failed"] += 1

        task = asyncio.get_running_loop().create_task(refresh(), name=f"owners of {dispensary_id}")
        self._refreshing[dispensary_id] = task
        task.add_done_callback(lambda _: self._refreshing.pop(dispensary_id, None))

    def _learn(self, found: Iterable[Contact], now: float) -> None:
        """Remember the owner-capable nodes of a lookup's answer and, at most once per
        KNOWN_REFRESH_SECONDS, of the routing table.

        A busy node's routing table loses live contacts (their UDP replies come later than
        its RPC timeout): the nodes it knew over the last KNOWN_SECONDS stay candidates for
        ownership, so that its owner lists keep naming the owners everyone else names.
        """
        me = self.node_id
        for contact in found:
            if contact.node_id != me and not contact.routing_only:
                self._known[contact.node_id] = (contact, now)
                self._known.move_to_end(contact.node_id)
        if now - self._known_refreshed >= KNOWN_REFRESH_SECONDS:
            self._known_refreshed = now
            for contact in self._owners.contacts():
                if contact.node_id != me and not contact.routing_only:
                    self._known[contact.node_id] = (contact, now)
                    self._known.move_to_end(contact.node_id)
            while self._known:
                _, (_, seen) = next(iter(self._known.items()))
                if now - seen <= KNOWN_SECONDS and len(self._known) <= MAX_KNOWN:
                    break
                self._known.popitem(last=False)

    def _note_unreachable(self, contact: Contact) -> None:
        self._owners.note_unreachable(contact)
        self._unreachable[contact.node_id] = time.monotonic() + UNREACHABLE_SECONDS
        while len(self._unreachable) > MAX_UNREACHABLE:
            del self._unreachable[next(iter(self._unreachable))]

    async def ask(
        self,
        dispensary_id: str,
        owners: Sequence[Contact],
        *,
        max_age: float | None,
        requested_at_ms: int,
        deadline: float,
        accept: Accept,
        tried: int = 0,
    ) -> OwnerReply | FillHere:
        """Ask ``owners`` in turn until one answers with a usable record, or until this
        node's turn comes (``FillHere``). ``deadline`` is on the ``time.monotonic`` clock.

        A refusal that another owner would repeat (unknown dispensary, upstream refusing
        or failing) is raised as the local exception; an unreachable owner, a timeout or
        an unusable answer moves on to the next owner (failover). While an owner has not
        answered within the hedge delay, the next owner is sent a hedge. When every owner
        listed was unreachable, the owners of now (those left out) are asked once more;
        ``tried`` counts the owners asked before ``owners`` in that second round.
        """
        last_error: Exception | None = None
        unreachable = 0
        for index, contact in enumerate(owners):
            attempt = tried + index
            if contact.node_id == self.node_id:
                return FillHere(FillReason.FAILOVER if attempt else FillReason.MISS)
            budget = deadline - time.monotonic()
            if budget <= 0:
                break
            following = owners[index + 1] if index + 1 < len(owners) else None
            if following is not None and following.node_id == self.node_id:
                following = None  # this node holds nothing fresh: no hedge to itself
            request = _Request(dispensary_id, max_age, requested_at_ms, accept)
            self._ask_checkers_ahead(dispensary_id, owners, contact)
            try:
                reply = await self._ask_one(request, contact, attempt, budget, following)
                if self.crosscheck is not None:
                    await self.crosscheck(reply.record, reply.contact, owners)
                return reply
            except PeerRefused as exc:
                error = remote_error(exc, dispensary_id)
                if error is not None:
                    raise error from exc
                self.failovers[exc.kind] += 1
                last_error = exc
            except PeerUnreachable as exc:
                self._note_unreachable(contact)
                self.failovers["unreachable"] += 1
                unreachable += 1
                last_error = exc
            except (PeerError, RecordError) as exc:
                self.failovers["bad_answer"] += 1
                last_error = exc
        if not owners:
            # No owner known at all (an empty routing table): serve as our own owner.
            return FillHere(FillReason.MISS)
        if unreachable == len(owners) and not tried:
            # Every owner listed was unreachable: crashed nodes the routing table still held
            # (a crash of all of a dispensary's owners). Now left out of owner lists, they
            # give way to the owners of now, asked once in turn.
            listed = {contact.node_id for contact in owners}
            now_owners = [
                c for c in await self.owner_list(dispensary_id) if c.node_id not in listed
            ]
            if now_owners:
                return await self.ask(
                    dispensary_id,
                    now_owners,
                    max_age=max_age,
                    requested_at_ms=requested_at_ms,
                    deadline=deadline,
                    accept=accept,
                    tried=len(owners),
                )
        raise NoOwnerReachable(
            f"no owner of {dispensary_id} answered ({last_error})", dispensary_id=dispensary_id
        )

    def _ask_checkers_ahead(
        self, dispensary_id: str, owners: Sequence[Contact], asked: Contact
    ) -> None:
        """Send the cross-check's history requests now, beside the fill to ``asked``: the
        owners the cross-check will ask (those it would pick when ``asked`` answers with a
        record of its own making), closest first."""
        prefetch = getattr(self._peers, "prefetch_history", None)
        if self.crosscheck is None or not self.checkers or prefetch is None:
            return
        skip = {asked.node_id, self.node_id}
        checkers = [c for c in owners if c.node_id not in skip and not c.routing_only]
        if checkers:
            prefetch(checkers[: self.checkers], dispensary_id, self.history_limit)

    async def _ask_one(
        self,
        request: _Request,
        contact: Contact,
        attempt: int,
        budget: float,
        following: Contact | None,
    ) -> OwnerReply:
        """One owner's answer; a hedge to ``following`` when it is slow (the first usable
        answer wins, the other request is cancelled)."""
        sent = time.monotonic()

        async def fill(to: Contact, hedge: bool) -> OwnerReply:
            answer = await self._peers.fill(
                to,
                request.dispensary_id,
                max_age=request.max_age,
                budget=budget,
                attempt=attempt + 1 if hedge else attempt,
                requested_at_ms=request.requested_at_ms,
                hedge=hedge,
            )
            record = await request.accept(answer.data)
            if answer.path in HELD_PATHS:
                self.hedge_delay.observe(time.monotonic() - sent)
            return OwnerReply(contact=to, fill=answer, record=record)

        main = asyncio.ensure_future(fill(contact, False))
        main.add_done_callback(_take_outcome)
        try:
            if following is None or not self.hedge_delay.enabled:
                return await main
            delay = self.hedge_delay.current()
            done, _ = await asyncio.wait({main}, timeout=delay)
            if main in done:
                return main.result()
            lagging = time.monotonic() - sent - delay > LAGGING_SECONDS
            self.hedges["sent"] += 1
            hedge = asyncio.ensure_future(fill(following, True))
            hedge.add_done_callback(_take_outcome)
            try:
                done, _ = await asyncio.wait({main, hedge}, return_when=asyncio.FIRST_COMPLETED)
                if hedge in done and hedge.exception() is None:
                    self.hedges["won"] += 1
                    return hedge.result()
                if hedge in done:
                    self.hedges["declined"] += 1
                    if not main.done() and not lagging:
                        # The next owner neither holds it nor fills it: the closest is
                        # filling, or this request to it (or its connection) was lost. Ask
                        # it once more: its single-flight joins the fill it runs. (Not
                        # when this event loop lags: the slowness is then the CPU's, and
                        # a second request would only add work.)
                        return await self._resend(main, lambda: fill(contact, False))
                return await main
            finally:
                _discard(hedge)
        finally:
            _discard(main)

    async def _resend(
        self, main: asyncio.Future[OwnerReply], again: Callable[[], Awaitable[OwnerReply]]
    ) -> OwnerReply:
        """``main``'s answer or that of the same request sent ``again``, whichever comes
        first (whnode.service.hedging.first_answer)."""
        self.hedges["resent"] += 1
        second = asyncio.ensure_future(again())
        second.add_done_callback(_take_outcome)
        try:
            return await first_answer(main, second)
        finally:
            _discard(second)


def _discard(task: asyncio.Future[OwnerReply]) -> None:
    """Cancel ``task`` unless it ended."""
    if not task.done():
        task.cancel()


def _take_outcome(task: asyncio.Future[OwnerReply]) -> None:
    """Take a request's outcome: the loser of a hedge, or a request cancelled with its
    caller, may still end in an error, which is not news (nor a log line)."""
    if not task.cancelled():
        task.exception()


@dataclass(frozen=True, slots=True)
class _Request:
    dispensary_id: str
    max_age: float | None
    requested_at_ms: int
    accept: Accept
