"""The read-through policy: the one place that coordinates cache, store, owners and upstream.

A request for a dispensary's menu goes, in order (DESIGN.md section 1):

1. this node's hot cache, then its SQLite store, if the record there is fresh enough;
2. the dispensary's owners (the r nodes closest to its routing key), closest first: the first
   that answers gives a record, filling it from upstream if it must. If this node is the
   closest live owner it fills itself;
3. an owner fills under single-flight per dispensary: it first asks the other owners for a
   fresh record (so a new owner is refilled from replicas, not from upstream), then calls
   upstream once, parses in the process pool, signs, stores, replicates to the other owners
   and answers every waiter.

Records from peers and from storage are accepted only through whnode.record.acceptance.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final, TypeVar

from whnode.abc import HotRecords, MenuFetcher, OwnerLookup, PeerTransport, RecordStore
from whnode.config import Config
from whnode.dht import Contact
from whnode.errors import WhnodeError
from whnode.peer.client import PeerAddress
from whnode.peer.exceptions import PeerError, PeerProblem
from whnode.peer.types import FillResult, Sender
from whnode.peer.wire import ErrorKind
from whnode.record.acceptance import TrustMode, TrustPolicy, accept_record, admit_record
from whnode.record.exceptions import RecordError
from whnode.record.keys import SigningKey, routing_key
from whnode.record.model import parse_dispensary_id
from whnode.record.signed import SignedRecord, sign_record
from whnode.service.crosscheck import HISTORY_LIMIT, MAX_CHECKERS, CrossCheck
from whnode.service.entitlement import Entitlement
from whnode.service.events import SnapshotEvents
from whnode.service.evidence import EvidenceBook
from whnode.service.exceptions import MenuNotFound, NoOwnerReachable
from whnode.service.filllog import FillObserver, FillReason, UpstreamFetch
from whnode.service.freshness import (
    RecordAge,
    classify,
    heuristic_lifetime,
    refresh_ahead_due,
)
from whnode.service.hedging import may_join, resent
from whnode.service.opening import RecordOpener
from whnode.service.requester import FillHere, OwnerReply, OwnerRequests
from whnode.service.singleflight import SingleFlight
from whnode.service.types import AnswerPath, MenuAnswer, RecentFill, ServiceStatistics
from whnode.store.types import StoredRecord
from whnode.upstream.exceptions import (
    UnknownDispensary,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRefused,
    UpstreamUnavailable,
)

__all__ = ["MenuService", "OwnerDirectory", "UpstreamFetcher"]

LOG = logging.getLogger(__name__)

TRACKED_DISPENSARIES = 100_000
"""Most dispensaries whose freshness, popularity and negative entries are remembered."""
RECENT_FILLS = 50
"""Fills kept for the status page."""
HAND_OFF_DELAY = 1.0
"""Seconds newcomers are batched before records are handed to them."""
MAX_HANDED_OFF_MEMORY: Final = 4096
"""Nodes whose last hand-off time is remembered (oldest forgotten first)."""
INLINE_ACCEPT_BYTES: Final = 16 * 1024
"""Records up to this size are verified and decoded on the event loop; larger ones in a
worker thread."""
LIFETIME_CACHE_MS = 10_000
"""How long a dispensary's change history read from the store is reused."""
_HOT: Final = AnswerPath.HOT.value
MAX_REQUEST_AGE_MS: Final = 120_000
"""Oldest request arrival a fill's freshness is judged at (the longest fill budget)."""
MAX_HOT_ANSWERS: Final = 4096
"""Hot answers kept for reuse, one per (dispensary, max_age) (the table is cleared when full)."""


UpstreamFetcher = MenuFetcher
"""The fetcher seam (whnode.abc.MenuFetcher), under its older name."""
OwnerDirectory = OwnerLookup
"""The DHT seam (whnode.abc.OwnerLookup), under its older name."""


@dataclass(frozen=True, slots=True)
class _Negative:
    until_ms: int
    error: UpstreamError


K = TypeVar("K")
V = TypeVar("V")


class _BoundedDict(OrderedDict[K, V]):
    """An insertion-ordered dict that forgets its oldest keys past ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > self.limit:
            self.popitem(last=False)


def _admit(
    data: bytes, *, now_ms: int, policy: TrustPolicy, expected_dispensary: str | None
) -> SignedRecord:
    """``admit_record`` (open before keep), keeping the record."""
    return admit_record(
        data, now_ms=now_ms, policy=policy, expected_dispensary=expected_dispensary
    )[0]


def _peer_problem(exc: WhnodeError) -> WhnodeError:
    """The peer-protocol problem for an error met while answering a peer's fill."""
    table: tuple[tuple[type[Exception], int, ErrorKind], ...] = (
        (MenuNotFound, 404, ErrorKind.NOT_FOUND),
        (UnknownDispensary, 404, ErrorKind.UNKNOWN_DISPENSARY),
        (UpstreamRefused, 502, ErrorKind.UPSTREAM_REFUSED),
        (UpstreamRateLimited, 503, ErrorKind.UPSTREAM_RATE_LIMITED),
        (UpstreamUnavailable, 503, ErrorKind.UPSTREAM_UNAVAILABLE),
        (UpstreamError, 502, ErrorKind.UPSTREAM_FAILED),
        (NoOwnerReachable, 504, ErrorKind.DEADLINE),
    )
    for cls, status, kind in table:
        if isinstance(exc, cls):
            return PeerProblem(str(exc), status=status, kind=kind)
    return exc


class MenuService:
    """Answers menu requests under the read-through policy (module docstring)."""

    def __init__(
        self,
        *,
        config: Config,
        signing_key: SigningKey,
        hot: HotRecords,
        store: RecordStore,
        owners: OwnerLookup,
        peers: PeerTransport,
        fetcher: MenuFetcher | None,
        policy: TrustPolicy,
        clock: Callable[[], float] = time.time,
        opener: RecordOpener | None = None,
    ) -> None:
        self._config = config
        self._fresh = config.freshness
        self._key = signing_key
        self._hot = hot
        self.events = SnapshotEvents()
        self._store = store
        self._owners = owners
        self._peers = peers
        self._fetcher = fetcher
        self._policy = policy
        self._clock = clock
        self._opener = opener
        """Opens kept records in the parse pool (whnode.service.opening); None: inline."""
        self.entitlement = Entitlement(
            owners,
            policy=policy,
            replication=config.node.replication,
            owner_slack=config.trust.owner_slack,
            window=config.trust.entitlement_window,
            difficulty=config.trust.node_id_difficulty,
        )
        self._fills: SingleFlight[str, MenuAnswer] = SingleFlight()
        self._asks: SingleFlight[tuple[str, float | None], OwnerReply | FillHere] = SingleFlight()
        self._fresh_until: _BoundedDict[str, int] = _BoundedDict(TRACKED_DISPENSARIES)
        self._popularity: _BoundedDict[str, tuple[int, int]] = _BoundedDict(TRACKED_DISPENSARIES)
        self._negative: _BoundedDict[str, _Negative] = _BoundedDict(TRACKED_DISPENSARIES)
        self._change_times: _BoundedDict[str, tuple[int, tuple[int, ...]]] = _BoundedDict(
            TRACKED_DISPENSARIES
        )
        self._rng = random.Random()
        self._background: set[asyncio.Task[object]] = set()
        self._requests = 0
        self._answers: Counter[str] = Counter()
        # (dispensary, max_age) -> (the hot cache's record, the answer built for it)
        self._hot_answers: dict[tuple[str, float | None], tuple[StoredRecord, MenuAnswer]] = {}
        self._upstream_calls = 0
        self._rejections: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._recent: deque[RecentFill] = deque(maxlen=RECENT_FILLS)
        self._newcomers: dict[bytes, Contact] = {}
        self._hand_off_scheduled = False
        self._handed_off: dict[bytes, float] = {}
        self._hand_offs_skipped = 0
        self._duplicate_puts = 0
        self._fill_observers: list[FillObserver] = []
        self._calling_upstream: set[str] = set()
        self._calls_by_reason: Counter[str] = Counter()
        """Dispensaries whose running fill is past its replica round."""
        self._requests_to_owners = OwnerRequests(
            peers=peers,
            owners=owners,
            replication=config.node.replication,
            hedge_delay=config.node.hedge_delay,
        )
        # owner cross-check and evidence (docs/dht.md, "Cross-checking owners and evidence")
        self.crosscheck = CrossCheck(
            node_id=owners.node_id,
            peers=peers,
            book=EvidenceBook(
                node_id=owners.node_id,
                is_owner=lambda node_id, d: self.entitlement.is_entitled(node_id, routing_key(d)),
            ),
            verify=lambda data, d: self._accept(data, d, self.now_ms()),
            store=store,
            hot=hot,
            refetch=self._refetch,
            owner_list=self._owner_list,
            enabled=policy.mode is TrustMode.OPEN,
        )
        self.entitlement.blocked = self.crosscheck.book.blocked
        self._requests_to_owners.crosscheck = self.crosscheck.check_answer
        if self.crosscheck.enabled:  # its history requests go out with the fill
            self._requests_to_owners.checkers = MAX_CHECKERS
            self._requests_to_owners.history_limit = HISTORY_LIMIT

    def observe_fills(self, observer: FillObserver) -> None:
        """Call ``observer`` with every upstream fetch this node makes (whnode.service.filllog)."""
        self._fill_observers.append(observer)

    def replace_fetcher(self, fetcher: MenuFetcher) -> None:
        """Use ``fetcher`` for fills from now on (sources reloaded); running fills finish."""
        self._fetcher = fetcher
        self._negative.clear()

    # ------------------------------------------------------------------ helpers
    def now_ms(self) -> int:
        return int(self._clock() * 1000)

    @property
    def node_id(self) -> bytes:
        return self._owners.node_id

    def _spawn(self, coroutine: object, name: str) -> None:
        task: asyncio.Task[object] = asyncio.get_running_loop().create_task(
            coroutine,  # type: ignore[arg-type]
            name=name,
        )
        self._background.add(task)

        def done(finished: asyncio.Task[object]) -> None:
            self._background.discard(finished)
            if not finished.cancelled() and finished.exception() is not None:
                error = finished.exception()
                self._errors[type(error).__name__] += 1
                LOG.warning("%s failed: %s", name, error)

        task.add_done_callback(done)

    async def aclose(self) -> None:
        """Cancel background work (refreshes, replication, hand-offs) and running fills."""
        await self.crosscheck.aclose()
        await self._asks.aclose()
        await self._fills.aclose()
        await self._requests_to_owners.aclose()
        if self._opener is not None:
            await self._opener.aclose()
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait_idle(self) -> None:
        """Wait until no background task (replication, refresh, hand-off) runs."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def _accept(
        self,
        data: bytes,
        dispensary_id: str | None,
        now_ms: int,
        *,
        keep: bool = False,
        sender: Sender | None = None,
    ) -> SignedRecord:
        """Verify and decode a record under the acceptance rules (whnode.record.acceptance);
        with ``keep`` (a record from a peer that this node will store, cache or pass on), also
        open its payload and check its rank (``admit_record``) and who published and sent
        it (``whnode.service.entitlement``).

        Verifying and decoding costs about 15 ms for a 250-product menu and 170 ms for 2,500
        products, so records over INLINE_ACCEPT_BYTES are accepted in a worker thread: the
        event loop keeps answering (it gets the interpreter back at every switch interval)
        instead of stalling for the whole decode. Rejections are counted here, on the loop.
        """
        check = _admit if keep else accept_record
        opener = self._opener
        if keep and opener is not None:
            if opener.wants(data):
                # the open (the costly part) runs in the parse pool, after the checks here
                check = accept_record
            else:
                opener.inline += 1
        try:
            if len(data) <= INLINE_ACCEPT_BYTES:
                record = check(
                    data, now_ms=now_ms, policy=self._policy, expected_dispensary=dispensary_id
                )
            else:
                record = await asyncio.to_thread(
                    check,
                    data,
                    now_ms=now_ms,
                    policy=self._policy,
                    expected_dispensary=dispensary_id,
                )
            if check is accept_record and keep and opener is not None:
                await opener.open(data, now_ms=now_ms, policy=self._policy, expected=dispensary_id)
            if keep:
                self.entitlement.check(record, sender=sender)
                if sender is not None:
                    await self.crosscheck.on_put(record)
            return record
        except RecordError as exc:
            self._rejections[exc.reason] += 1
            raise

    def _to_stored(self, record: SignedRecord) -> StoredRecord:
        return StoredRecord(
            dispensary_id=record.dispensary_id,
            fetched_at_ms=record.fetched_at_ms,
            content_hash=bytes(record.content_hash),
            data=record.encoded,
            decoded=record,
        )

    def _remember(self, record: SignedRecord) -> None:
        self._hot.put(self._to_stored(record))

    async def _verified_hot(self, stored: StoredRecord, now_ms: int) -> SignedRecord | None:
        """The verified record of a hot cache entry: the one this service kept in
        ``decoded`` when it accepted the record, else ``stored.data`` accepted now (and kept
        in its place); None, the entry dropped, when it fails acceptance."""
        if isinstance(stored.decoded, SignedRecord):
            return stored.decoded  # only ever set by _to_stored, from an accepted record
        try:
            record = await self._accept(stored.data, stored.dispensary_id, now_ms)
        except RecordError:
            self._hot.delete(stored.dispensary_id, stored.fetched_at_ms)
            return None
        self._hot.delete(stored.dispensary_id, stored.fetched_at_ms)
        self._remember(record)
        return record

    def _is_owner_set(self, owners: Sequence[Contact]) -> bool:
        return any(contact.node_id == self.node_id for contact in owners)

    async def _owner_list(self, dispensary_id: str, *, fresh: bool = False) -> list[Contact]:
        found = await self._requests_to_owners.owner_list(dispensary_id, fresh=fresh)
        # owners seen now may publish (docs/dht.md, "Who may publish a menu")
        self.entitlement.observe(found, key=routing_key(dispensary_id))
        return found

    def _count_popularity(self, dispensary_id: str, now_ms: int, lifetime: float) -> int:
        start, count = self._popularity.get(dispensary_id, (now_ms, 0))
        if now_ms - start > lifetime * 1000:
            start, count = now_ms, 0
        self._popularity[dispensary_id] = (start, count + 1)
        return count + 1

    def _check_negative(self, dispensary_id: str, now_ms: int) -> None:
        entry = self._negative.get(dispensary_id)
        if entry is None:
            return
        if entry.until_ms < now_ms:
            del self._negative[dispensary_id]
            return
        raise entry.error

    def _learn_negative(self, dispensary_id: str, error: Exception, now_ms: int) -> None:
        if isinstance(error, UnknownDispensary | UpstreamRefused):
            until = now_ms + int(self._fresh.negative_ttl * 1000)
            self._negative[dispensary_id] = _Negative(until, error)

    async def _lifetime(self, dispensary_id: str, now_ms: int) -> float:
        """Heuristic lifetime from the change history held in the local store.

        The change times are read from SQLite at most once per LIFETIME_CACHE_MS per
        dispensary, and again whenever a new snapshot is stored.
        """
        cached = self._change_times.get(dispensary_id)
        if cached is None or now_ms - cached[0] > LIFETIME_CACHE_MS:
            times = await self._store.change_times(dispensary_id, include_first=True)
            cached = (now_ms, tuple(times))
            self._change_times[dispensary_id] = cached
        return heuristic_lifetime(cached[1], now_ms, self._fresh)

    async def _store_put(self, record: SignedRecord) -> bool:
        created = await self._store.put(self._to_stored(record))
        self._change_times.pop(record.dispensary_id, None)
        if created:
            self.events.publish(record)  # change streams (whnode/service/events.py)
        return created

    def _answer(self, record: SignedRecord, path: AnswerPath, fresh_until: int) -> MenuAnswer:
        stale = path is AnswerPath.STALE
        self._answers[path.value] += 1
        return MenuAnswer(record=record, path=path, fresh_until_ms=fresh_until, stale=stale)

    # ------------------------------------------------------------------ public API
    async def get_menu(
        self,
        dispensary_id: str,
        *,
        max_age: float | None = None,
        at_ms: int | None = None,
    ) -> MenuAnswer:
        """The menu of ``dispensary_id``: fresh within ``max_age`` seconds when given, the
        snapshot current at ``at_ms`` when given, else fresh under the heuristic policy."""
        dispensary_id = parse_dispensary_id(dispensary_id)
        if at_ms is None:
            answer = self.answer_hot(dispensary_id, max_age)
            if answer is not None:
                return answer
        self._requests += 1
        now_ms = self.now_ms()
        try:
            if at_ms is not None:
                return await self._get_at(dispensary_id, at_ms, now_ms)
            self._check_negative(dispensary_id, now_ms)
            answer = await self._get_local(dispensary_id, max_age, now_ms)
            if answer is not None:
                return answer
            async with asyncio.timeout(self._config.node.request_deadline):
                return await self._get_via_owners(dispensary_id, max_age, now_ms)
        except Exception as exc:
            self._errors[type(exc).__name__] += 1
            raise

    def answer_hot(self, dispensary_id: str, max_age: float | None = None) -> MenuAnswer | None:
        """The answer from the hot cache when it holds a fresh record, else None.

        The synchronous first step of ``get_menu`` (for a dispensary id already validated
        by ``parse_dispensary_id``; an unknown or invalid id is simply not held): it counts
        a request and a hot answer only when it answers, so a caller that gets None goes on
        with ``get_menu`` and nothing is counted twice. Hot hits are most requests: the
        answer object for one record and freshness is built once and handed out again
        (MenuAnswer is frozen).
        """
        stored = self._hot.peek_newest(dispensary_id)
        if stored is None or dispensary_id in self._negative:
            return None
        now_ms = int(self._clock() * 1000)
        key = (dispensary_id, max_age)
        held = self._hot_answers.get(key)
        if held is not None and held[0] is stored:
            # the answer built for this very record: only its freshness is checked again
            answer = held[1]
            if max_age is not None:
                fresh = now_ms - stored.fetched_at_ms <= max_age * 1000
            elif self._fresh_until.get(dispensary_id) != answer.fresh_until_ms:
                # the dispensary's lifetime changed since: a new answer
                return self._answer_hot_anew(stored, key, now_ms)
            else:
                fresh = now_ms <= answer.fresh_until_ms
            if not fresh:
                return None
            self._hot.touch(dispensary_id)  # counts the hit, refreshes the LRU order
            self._requests += 1
            self._answers[_HOT] += 1
            return answer
        return self._answer_hot_anew(stored, key, now_ms)

    def _answer_hot_anew(
        self, stored: StoredRecord, key: tuple[str, float | None], now_ms: int
    ) -> MenuAnswer | None:
        """answer_hot for a record without a kept answer (or whose lifetime changed)."""
        dispensary_id, max_age = key
        if not self._locally_fresh(stored, max_age, now_ms):
            return None
        record = stored.decoded
        if not isinstance(record, SignedRecord):
            return None
        if len(self._hot_answers) >= MAX_HOT_ANSWERS:
            self._hot_answers.clear()
        answer = MenuAnswer(
            record=record, path=AnswerPath.HOT, fresh_until_ms=self._fresh_until_of(stored, max_age)
        )
        self._hot_answers[key] = (stored, answer)
        self._hot.touch(dispensary_id)  # counts the hit, refreshes the LRU order
        self._requests += 1
        self._answers[_HOT] += 1
        return answer

    async def _get_local(
        self, dispensary_id: str, max_age: float | None, now_ms: int
    ) -> MenuAnswer | None:
        """A fresh record from the hot cache or the store, or None."""
        stored = self._hot.newest(dispensary_id)
        path = AnswerPath.HOT
        if stored is not None and self._locally_fresh(stored, max_age, now_ms):
            record = await self._verified_hot(stored, now_ms)
            if record is not None:
                return self._answer(record, path, self._fresh_until_of(stored, max_age))
        stored = await self._store.newest(dispensary_id)
        if stored is None:
            return None
        if max_age is None and dispensary_id not in self._fresh_until:
            lifetime = await self._lifetime(dispensary_id, now_ms)
            self._fresh_until[dispensary_id] = stored.fetched_at_ms + int(lifetime * 1000)
        if not self._locally_fresh(stored, max_age, now_ms):
            return None
        try:
            record = await self._accept(stored.data, dispensary_id, now_ms)
        except RecordError as exc:  # moved aside (counted, logged once), then refilled
            await self._store.quarantine(dispensary_id, stored.fetched_at_ms, str(exc))
            return None
        self._remember(record)
        return self._answer(record, AnswerPath.STORE, self._fresh_until_of(stored, max_age))

    def _fresh_until_of(self, stored: StoredRecord, max_age: float | None) -> int:
        if max_age is not None:
            return stored.fetched_at_ms + int(max_age * 1000)
        return self._fresh_until.get(stored.dispensary_id, stored.fetched_at_ms)

    def _locally_fresh(self, stored: StoredRecord, max_age: float | None, now_ms: int) -> bool:
        if max_age is not None:
            return now_ms - stored.fetched_at_ms <= max_age * 1000
        fresh_until = self._fresh_until.get(stored.dispensary_id)
        if fresh_until is None or fresh_until < stored.fetched_at_ms:
            return False
        return now_ms <= fresh_until

    async def _get_via_owners(
        self, dispensary_id: str, max_age: float | None, now_ms: int
    ) -> MenuAnswer:
        """Ask the owners (whnode.service.requester), or fill here when this node's turn
        comes. ``now_ms`` is the request's arrival: the answer is a record that was fresh
        then."""

        async def ask() -> OwnerReply | FillHere:
            owners = await self._owner_list(dispensary_id)
            return await self._requests_to_owners.ask(
                dispensary_id,
                owners,
                max_age=max_age,
                requested_at_ms=now_ms,
                deadline=time.monotonic() + self._config.node.request_deadline,
                accept=lambda data: self._accept(data, dispensary_id, self.now_ms(), keep=True),
            )

        try:
            # Concurrent requests here for one dispensary and max_age share one question to
            # the owners; one that arrived after the record it got had expired asks anew.
            reply = await self._asks.run((dispensary_id, max_age), ask)
            if (
                isinstance(reply, OwnerReply)
                and max_age is not None
                and now_ms - reply.record.fetched_at_ms > max_age * 1000
            ):
                reply = await ask()
        except (UnknownDispensary, UpstreamRefused) as exc:
            self._learn_negative(dispensary_id, exc, now_ms)
            raise
        if isinstance(reply, FillHere):
            return await self.fill_as_owner(
                dispensary_id, max_age, reason=reply.reason, requested_at_ms=now_ms
            )
        fill = reply.fill
        self._remember(reply.record)
        if max_age is None:
            self._fresh_until[dispensary_id] = fill.fresh_until_ms
        if fill.stale:
            path = AnswerPath.STALE
        elif fill.path == AnswerPath.FILL.value:
            path = AnswerPath.FILL
        else:
            path = AnswerPath.OWNER
        return self._answer(reply.record, path, fill.fresh_until_ms)

    async def _get_at(self, dispensary_id: str, at_ms: int, now_ms: int) -> MenuAnswer:
        stored = await self._store.at(dispensary_id, at_ms)
        if stored is not None:
            record = await self._accept(stored.data, dispensary_id, now_ms)
            return self._answer(record, AnswerPath.STORE, stored.fetched_at_ms)
        for contact in await self._owner_list(dispensary_id):
            if contact.node_id == self.node_id:
                continue
            try:
                data = await self._peers.get_record(contact, dispensary_id, at_ms=at_ms)
                if data is None:
                    continue
                record = await self._accept(data, dispensary_id, now_ms, keep=True)
            except (PeerError, RecordError):
                continue
            if record.fetched_at_ms > at_ms:
                self._rejections["not_current_at"] += 1
                continue
            return self._answer(record, AnswerPath.OWNER, record.fetched_at_ms)
        raise MenuNotFound(
            f"no snapshot of {dispensary_id} current at {at_ms}", dispensary_id=dispensary_id
        )

    async def history(self, dispensary_id: str, limit: int) -> list[SignedRecord]:
        """Recent snapshots, newest first: from the local store, else from an owner."""
        dispensary_id = parse_dispensary_id(dispensary_id)
        now_ms = self.now_ms()
        records: list[SignedRecord] = []
        for stored in await self._store.history(dispensary_id, limit):
            with contextlib.suppress(RecordError):
                records.append(await self._accept(stored.data, dispensary_id, now_ms))
        if records:
            return records
        for contact in await self._owner_list(dispensary_id):
            if contact.node_id == self.node_id:
                continue
            try:
                items = await self._peers.history(contact, dispensary_id, limit)
            except PeerError:
                continue
            for data in items:
                with contextlib.suppress(RecordError):
                    records.append(await self._accept(data, dispensary_id, now_ms, keep=True))
            if records:
                break
        records.sort(key=lambda record: record.fetched_at_ms, reverse=True)
        return records[:limit]

    # ------------------------------------------------------------------ owner side
    async def fill_as_owner(
        self,
        dispensary_id: str,
        max_age: float | None,
        *,
        reason: FillReason = FillReason.MISS,
        requested_at_ms: int | None = None,
        hedge_from: bytes | None = None,
    ) -> MenuAnswer:
        """Answer as an owner: a fresh local record, else one fill under single-flight.

        Freshness is judged at ``requested_at_ms``, when the request arrived at the node
        that first received it (no later than now, no earlier than MAX_REQUEST_AGE_MS ago):
        a record fresh then is the answer, however long the fill, the network or a busy
        event loop delayed it.

        A hedge (``hedge_from``: the asking node's id, b"" if unknown) is answered only with
        a fresh record held here or the record of a running fill it may join
        (whnode.service.hedging.may_join), else refused with ``not_held``: it never starts
        an upstream fetch, a refresh included.
        """
        hedge = hedge_from is not None
        now_ms = self.now_ms()
        if requested_at_ms is not None:
            now_ms = min(now_ms, max(requested_at_ms, now_ms - MAX_REQUEST_AGE_MS))
        self._check_negative(dispensary_id, now_ms)
        lifetime = max_age if max_age is not None else await self._lifetime(dispensary_id, now_ms)
        stored = self._hot.newest(dispensary_id) or await self._store.newest(dispensary_id)
        current: SignedRecord | None = None
        if stored is not None and isinstance(stored.decoded, SignedRecord):
            current = stored.decoded  # verified when it entered the hot cache
        elif stored is not None:
            try:
                current = await self._accept(stored.data, dispensary_id, now_ms)
            except RecordError:
                current = None
        popularity = self._count_popularity(dispensary_id, now_ms, lifetime)
        if current is not None:
            freshness = classify(
                current.fetched_at_ms,
                now_ms,
                lifetime,
                self._fresh,
                allow_revalidate=max_age is None,
            )
            if freshness.age is RecordAge.FRESH:
                if (
                    not hedge
                    and max_age is None
                    and refresh_ahead_due(
                        current.fetched_at_ms, now_ms, lifetime, popularity, self._fresh, self._rng
                    )
                ):
                    self._start_refresh(dispensary_id)
                self._remember(current)
                path = AnswerPath.HOT if dispensary_id in self._hot else AnswerPath.STORE
                return self._answer(current, path, freshness.fresh_until_ms)
            if freshness.age is RecordAge.STALE_WHILE_REVALIDATE and not hedge:
                self._start_refresh(dispensary_id)
                return self._answer(current, AnswerPath.STALE, freshness.fresh_until_ms)
        if hedge_from is not None:
            return await self._answer_hedge(dispensary_id, max_age, now_ms, hedge_from)
        try:
            answer = await self._fills.run(
                dispensary_id,
                lambda: self._fill(dispensary_id, reason, max_age=max_age, as_of_ms=now_ms),
            )
            if max_age is not None and now_ms - answer.record.fetched_at_ms > max_age * 1000:
                # joined a fill that took a replica's record fresh enough for its leader only
                answer = await self._fills.run(
                    dispensary_id,
                    lambda: self._fill(dispensary_id, FillReason.TOO_OLD_JOIN, refresh=True),
                )
        except UpstreamError as exc:
            self._learn_negative(dispensary_id, exc, now_ms)
            if current is not None:
                freshness = classify(
                    current.fetched_at_ms, now_ms, lifetime, self._fresh, allow_revalidate=False
                )
                if freshness.age is not RecordAge.EXPIRED:
                    LOG.info("serving stale %s: upstream failed: %s", dispensary_id, exc)
                    return self._answer(current, AnswerPath.STALE, freshness.fresh_until_ms)
            raise
        self._answers[answer.path.value] += 1
        if max_age is not None:
            return MenuAnswer(
                record=answer.record,
                path=answer.path,
                fresh_until_ms=answer.record.fetched_at_ms + int(max_age * 1000),
            )
        return answer

    async def _answer_hedge(
        self, dispensary_id: str, max_age: float | None, now_ms: int, asker: bytes
    ) -> MenuAnswer:
        """A hedge finding no fresh record here: join the running fill if allowed."""
        joinable = self._fills.running(dispensary_id) and may_join(
            past_replicas=dispensary_id in self._calling_upstream,
            me=self.node_id,
            asker=asker or None,
            key=routing_key(dispensary_id),
        )
        answer = await self._fills.join(dispensary_id) if joinable else None
        if answer is None or (
            max_age is not None and now_ms - answer.record.fetched_at_ms > max_age * 1000
        ):
            raise PeerProblem(
                "neither held fresh nor being filled here", status=404, kind=ErrorKind.NOT_HELD
            )
        self._answers[answer.path.value] += 1
        if max_age is not None:
            return MenuAnswer(
                record=answer.record,
                path=answer.path,
                fresh_until_ms=answer.record.fetched_at_ms + int(max_age * 1000),
            )
        return answer

    async def _refetch(self, dispensary_id: str) -> SignedRecord:
        """A fresh upstream record of this node's own (whnode.service.crosscheck resolves
        conflicts with it): stored and replicated like any fill."""
        for _ in range(2):  # a running fill joined may have taken a replica's record
            answer = await self._fills.run(
                dispensary_id,
                lambda: self._fill(dispensary_id, FillReason.REFRESH, refresh=True),
            )
            if bytes(answer.record.publisher) == bytes(self._key.public_key):
                break
        return answer.record

    def _start_refresh(self, dispensary_id: str) -> None:
        """Refresh in the background unless a fill of this dispensary already runs."""
        if self._fills.running(dispensary_id):
            return
        task = self._fills.start(
            dispensary_id, lambda: self._fill(dispensary_id, FillReason.REFRESH, refresh=True)
        )
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _fill(
        self,
        dispensary_id: str,
        reason: FillReason,
        *,
        max_age: float | None = None,
        refresh: bool = False,
        as_of_ms: int | None = None,
    ) -> MenuAnswer:
        """One fill: replicas first (unless refreshing), then upstream. Runs under
        single-flight. A replica's record is taken only if fresh within ``max_age`` (when
        given) and the heuristic lifetime at ``as_of_ms`` (the leading request's arrival;
        now when not given)."""
        began = time.monotonic()
        now_ms = self.now_ms() if as_of_ms is None else as_of_ms
        lifetime = await self._lifetime(dispensary_id, now_ms)
        if max_age is not None:
            lifetime = min(lifetime, max_age)
        if not refresh:
            from_replica = await self._fill_from_replicas(dispensary_id, lifetime, now_ms, max_age)
            if from_replica is not None:
                return from_replica
        self._calling_upstream.add(dispensary_id)  # hedges may join this fill from now on
        try:
            return await self._fill_upstream(dispensary_id, reason, began)
        finally:
            self._calling_upstream.discard(dispensary_id)

    async def _fill_upstream(
        self, dispensary_id: str, reason: FillReason, began: float
    ) -> MenuAnswer:
        """The upstream part of a fill: fetch, parse, sign, store; replicate meanwhile."""
        if self._fetcher is None:
            raise UpstreamUnavailable(
                "this node makes no upstream calls", source="node", dispensary_id=dispensary_id
            )
        previous = await self._store.newest(dispensary_id)
        started = time.monotonic()
        self._upstream_calls += 1
        # The snapshot's time is when upstream is asked, not when this fill began (the
        # replica round and the store read above may have taken a while under load).
        parsed = await self._fetcher.fetch(dispensary_id, self.now_ms())
        record = sign_record(
            payload=parsed.payload,
            dispensary_id=dispensary_id,
            fetched_at_ms=parsed.fetched_at_ms,
            content_hash=parsed.content_hash,
            signing_key=self._key,
        )
        fetched = time.monotonic()
        self._calls_by_reason[reason.value] += 1
        for observe in self._fill_observers:
            observe(
                UpstreamFetch(
                    dispensary_id=dispensary_id,
                    node_id=self.node_id,
                    reason=reason,
                    fetched_at_ms=record.fetched_at_ms,
                    duration_ms=(fetched - began) * 1000,
                    upstream_ms=(fetched - started) * 1000,
                )
            )
        await self._store_put(record)
        self._remember(record)
        changed = previous is None or previous.content_hash != bytes(record.content_hash)
        lifetime = await self._lifetime(dispensary_id, record.fetched_at_ms)
        fresh_until = record.fetched_at_ms + int(lifetime * 1000)
        self._fresh_until[dispensary_id] = fresh_until
        self._recent.appendleft(
            RecentFill(
                dispensary_id=dispensary_id,
                fetched_at_ms=record.fetched_at_ms,
                duration_ms=(time.monotonic() - started) * 1000,
                product_count=parsed.product_count,
                changed=changed,
            )
        )
        # Waiters get the record now; the other owners get it meanwhile (a hedge or fill that
        # reaches them first is answered by this node, which holds it).
        self._spawn(self._replicate(record), "replicate")
        return MenuAnswer(record=record, path=AnswerPath.FILL, fresh_until_ms=fresh_until)

    async def _fill_from_replicas(
        self, dispensary_id: str, lifetime: float, now_ms: int, max_age: float | None
    ) -> MenuAnswer | None:
        """A record fresh at ``now_ms`` from another owner, stored here; or None.

        The other owners are sent hedges (whnode.service.hedging): each answers with a
        fresh record it holds or with the record of a fill it runs, and never calls upstream
        for it. The first fresh answer is taken and the other hedges are cancelled.
        """
        try:
            owners = await self._owner_list(dispensary_id)
        except Exception:  # a lookup failure must not block the fill
            return None
        candidates = [contact for contact in owners if contact.node_id != self.node_id]

        delay = self._requests_to_owners.hedge_delay
        resend_after = delay.current() if delay.enabled else None

        async def ask(contact: Contact) -> SignedRecord | None:
            try:
                fill, twice = await resent(
                    lambda: self._peers.fill(
                        contact,
                        dispensary_id,
                        max_age=max_age,
                        budget=self._config.node.peer_timeout,
                        requested_at_ms=now_ms,
                        hedge=True,
                    ),
                    resend_after,
                )
                if twice:
                    self._requests_to_owners.hedges["replica_resent"] += 1
                record = await self._accept(fill.data, dispensary_id, self.now_ms(), keep=True)
                # a replica no other owner confirms is not taken: the fill goes upstream
                await self.crosscheck.check_answer(record, contact, owners, settle=False)
                return record
            except (PeerError, RecordError):
                return None

        asked = [asyncio.ensure_future(ask(contact)) for contact in candidates]
        found: SignedRecord | None = None
        try:
            for next_answer in asyncio.as_completed(asked):
                record = await next_answer
                if record is None:
                    continue
                freshness = classify(
                    record.fetched_at_ms, now_ms, lifetime, self._fresh, allow_revalidate=False
                )
                if freshness.age is RecordAge.FRESH:
                    found = record
                    break
        finally:
            for task in asked:
                task.cancel()
        if found is None:
            return None
        await self._store_put(found)
        self._remember(found)
        fresh_until = found.fetched_at_ms + int(lifetime * 1000)
        self._fresh_until[dispensary_id] = fresh_until
        return MenuAnswer(record=found, path=AnswerPath.OWNER, fresh_until_ms=fresh_until)

    async def _replicate(self, record: SignedRecord) -> None:
        """Put ``record`` to the other owners; failures are counted, not raised."""
        try:
            owners = await self._owner_list(record.dispensary_id)
        except Exception as exc:
            self._errors["replicate_lookup"] += 1
            LOG.warning("replication lookup for %s failed: %s", record.dispensary_id, exc)
            return
        await self._put_to(record, [c for c in owners if c.node_id != self.node_id])

    async def _put_to(self, record: SignedRecord, contacts: Sequence[PeerAddress]) -> int:
        async def put(contact: PeerAddress) -> bool:
            try:
                return await self._peers.put_record(contact, record.dispensary_id, record.encoded)
            except PeerError as exc:
                self._errors["replicate"] += 1
                LOG.debug("put to %s:%s failed: %s", contact.host, contact.port, exc)
                return False

        results = await asyncio.gather(*(put(contact) for contact in contacts))
        return sum(results)

    # ------------------------------------------------------------------ membership
    async def republish(self) -> int:
        """Put every held dispensary's newest record to its current owners; return puts."""
        placed = 0
        now_ms = self.now_ms()
        async for stored in self._store.iter_newest():
            try:
                record = await self._accept(stored.data, stored.dispensary_id, now_ms, keep=True)
                owners = await self._owner_list(stored.dispensary_id, fresh=True)
            except (RecordError, Exception) as exc:  # one bad entry must not stop the rest
                self._errors["republish"] += 1
                LOG.debug("republish of %s skipped: %s", stored.dispensary_id, exc)
                continue
            placed += await self._put_to(
                record, [contact for contact in owners if contact.node_id != self.node_id]
            )
        return placed

    def on_new_contact(self, contact: Contact) -> None:
        """A node joined our routing table: hand it the records it now owns.

        Newcomers are batched for HAND_OFF_DELAY seconds, so that a burst of joins costs one
        pass over the held records, not one per newcomer.
        """
        if self._config.node.routing_only:
            return
        now = time.monotonic()
        handed = self._handed_off.pop(contact.node_id, None)
        if handed is not None and now - handed < self._config.node.republish_interval:
            # Re-admitted after missing a few requests (e.g. under load): it got its records
            # less than a republish interval ago, and the periodic republish covers the rest.
            self._handed_off[contact.node_id] = handed
            self._hand_offs_skipped += 1
            return
        self._handed_off[contact.node_id] = now  # insertion order is hand-off time order
        if len(self._handed_off) > MAX_HANDED_OFF_MEMORY:
            del self._handed_off[next(iter(self._handed_off))]
        self._newcomers[contact.node_id] = contact
        if not self._hand_off_scheduled:
            self._hand_off_scheduled = True
            self._spawn(self._hand_off(), "hand-off")

    async def _hand_off(self) -> None:
        await asyncio.sleep(HAND_OFF_DELAY)
        self._hand_off_scheduled = False
        newcomers, self._newcomers = self._newcomers, {}
        known: set[bytes] = {
            contact.node_id for contact in self._owners.contacts() if not contact.routing_only
        }
        known |= set(newcomers) | {self.node_id}
        replication = self._config.node.replication
        async for stored in self._store.iter_newest():
            key = int.from_bytes(routing_key(stored.dispensary_id), "big")
            closest = sorted(known, key=lambda node_id: int.from_bytes(node_id, "big") ^ key)
            if self.node_id not in closest[: replication + 1]:
                continue  # not an owner (nor the one just displaced): not ours to hand off
            for node_id in closest[:replication]:
                newcomer = newcomers.get(node_id)
                if newcomer is None:
                    continue
                try:
                    await self._peers.put_record(newcomer, stored.dispensary_id, stored.data)
                except PeerError:
                    self._errors["hand_off"] += 1
                    newcomers.pop(node_id, None)

    # ------------------------------------------------------------------ peer endpoints
    async def peer_get(self, dispensary_id: str, at_ms: int | None) -> bytes | None:
        if at_ms is not None:
            stored = await self._store.at(dispensary_id, at_ms)
        else:
            stored = self._hot.newest(dispensary_id) or await self._store.newest(dispensary_id)
        return None if stored is None else stored.data

    async def peer_put(self, dispensary_id: str, data: bytes, sender: Sender | None = None) -> bool:
        if await self._holds_exactly(dispensary_id, data):
            # The same bytes were verified when first stored (hand-off and republish send
            # records their owners often hold already): nothing to check or write.
            self._duplicate_puts += 1
            return False
        record = await self._accept(data, dispensary_id, self.now_ms(), keep=True, sender=sender)
        created = await self._store_put(record)
        if dispensary_id in self._hot:  # the hot cache refuses records older than its own
            self._remember(record)
        return created

    async def _holds_exactly(self, dispensary_id: str, data: bytes) -> bool:
        """Whether the newest record in the durable store is byte for byte ``data`` (the hot
        cache does not count: a requester keeps records there that it does not store)."""
        held = await self._store.newest(dispensary_id)
        return held is not None and held.data == data

    async def peer_fill(
        self,
        dispensary_id: str,
        max_age: float | None,
        budget: float,
        *,
        attempt: int = 0,
        requested_at_ms: int | None = None,
        hedge_from: bytes | None = None,
    ) -> FillResult:
        del budget  # the route enforces it with asyncio.timeout
        reason = FillReason.FAILOVER if attempt else FillReason.MISS
        try:
            answer = await self.fill_as_owner(
                dispensary_id,
                max_age,
                reason=reason,
                requested_at_ms=requested_at_ms,
                hedge_from=hedge_from,
            )
        except WhnodeError as exc:
            raise _peer_problem(exc) from exc
        return FillResult(
            data=answer.record.encoded,
            fresh_until_ms=answer.fresh_until_ms,
            stale=answer.stale,
            path=answer.path.value,
        )

    async def peer_history(self, dispensary_id: str, limit: int) -> list[bytes]:
        return [stored.data for stored in await self._store.history(dispensary_id, limit)]

    def count_peer_error(self, kind: str) -> None:
        self._rejections[kind] += 1

    # ------------------------------------------------------------------ statistics
    def statistics(self) -> ServiceStatistics:
        answered = sum(self._answers.values())
        return ServiceStatistics(
            requests=self._requests,
            answers_by_path=dict(self._answers),
            upstream_calls=self._upstream_calls,
            upstream_calls_saved=max(0, answered - self._answers[AnswerPath.FILL.value]),
            fills_coalesced=self._fills.coalesced,
            peer_rejections=dict(self._rejections),
            errors_by_kind=dict(self._errors),
            recent_fills=tuple(self._recent),
            duplicate_puts=self._duplicate_puts,
            hand_offs_skipped=self._hand_offs_skipped,
            failovers=dict(self._requests_to_owners.failovers),
            hedges=dict(self._requests_to_owners.hedges),
            owner_lists=dict(self._requests_to_owners.lookups),
            records_opened=(
                {}
                if self._opener is None
                else {"pool": self._opener.opened, "inline": self._opener.inline}
            ),
            fills_by_reason=dict(self._calls_by_reason),
        )
