"""Iterative node lookup with a deadline, rolling concurrency and liveness tracking.

kademlia's ``SpiderCrawl`` asks ``alpha`` nodes per round and waits for the whole round (one
dead node stalls it a full timeout), has no overall deadline, and returns nodes it never
heard from. This lookup:

- keeps ``alpha`` requests in flight and starts the next one as soon as one finishes or
  stalls (a request unanswered after the protocol's adaptive stall time, at most
  ``stall_timeout``, stops counting towards ``alpha``, so a dead contact does not hold a slot
  for a whole RPC timeout); never more than ``alpha`` unstalled requests are in flight
  (the ``first`` contacts aside), so that an overloaded network is not flooded further;
- waits only a little for a stalled node: its node becomes a suspect (until it answers
  anything) at once, but the lookup converges past it only after ``PATIENCE_STALLS`` stall
  times and at least ``MIN_PATIENCE_SECONDS`` (at most ``PATIENCE_CAP`` of an RPC timeout),
  so a live node slowed by a busy host still answers and is
  still among the owners; an answer that arrives while the lookup runs always counts. A
  crashed node therefore costs the first lookup that meets it a few stall times (a round trip
  and its variation each), not an RPC timeout, and later lookups nothing (it is a suspect);
- widens the set of nodes it asks past every stalled node it still waits for, and drops
  suspects and nodes stalled past their patience from the frontier: the next closest nodes are
  asked meanwhile, so dead contacts closer than any live node (a liar's list, a crash) never
  hide the live owners behind them;
- stops at its deadline, and sends nothing once it is reached;
- asks nodes that missed a request in the last ``config.suspect_seconds`` without waiting
  for them (each dead node costs one RPC timeout per asker, not one per lookup; a live node
  that missed once because of a lost datagram or a busy host still counts if it answers);
- returns only nodes that answered, sorted by XOR distance;
- stops when the ``width`` closest known nodes that are ``wanted`` (for owner lookups: not
  routing-only), and every node closer than them, have answered (``width = k`` with every
  node wanted is the textbook termination). Unwanted nodes are still asked: they route.
- asks the ``first`` contacts (bootstrap's seeds) at once, however far they are from the
  target, and waits for their answers (or their failure) before it converges.

Every one of these rules lives in ``LookupState``, a pure state machine: it is fed replies,
failures and ``now`` (seconds on any monotonic clock) and says which contacts to ask, which
requests just stalled, when it next needs to be woken, and whether it is done. It never
awaits, sleeps or reads a clock, so tests drive it on virtual time. ``iterative_lookup`` is
the small asyncio loop that runs it over a ``WhnodeProtocol``.

Requests still in flight when the lookup ends are handed to the protocol, which owns them:
they end on rpcudp's own timer (never cancelled mid-flight, KADEMLIA.md 5) and their answers
still refresh the routing table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from whnode.dht.contact import Contact
from whnode.dht.exceptions import DhtUsageError
from whnode.dht.protocol import WhnodeProtocol

__all__ = [
    "MIN_PATIENCE_SECONDS",
    "PATIENCE_CAP",
    "PATIENCE_STALLS",
    "LookupResult",
    "LookupState",
    "iterative_lookup",
]

PATIENCE_STALLS = 4
"""Stall times a lookup waits for a stalled node (not a suspect before the lookup) before it
converges without it. One stall time frees the node's place under ``alpha``; waiting a few
more keeps a live node on a loaded host (its answer late by an event-loop lag) among the
answers, so that two askers agree on the owners."""
PATIENCE_CAP = 0.75
"""Most patience, as a share of the RPC timeout: a crashed node always costs less than one."""
MIN_PATIENCE_SECONDS = 1.0
"""Least patience (below the cap): on loopback and LANs the stall time is
its 0.1 s floor, and an event-loop lag of a few hundred milliseconds on a busy host would
otherwise drop a live owner from the answers."""


@dataclass(frozen=True, slots=True)
class LookupResult:
    """What one lookup found."""

    answered: list[Contact]
    """Nodes that answered during the lookup, closest to the target first."""
    rpcs: int
    """find_node requests sent."""
    converged: bool
    """False when the deadline ended the lookup before it converged."""


class LookupState:
    """The rules of one iterative lookup, on a clock the caller supplies (see the module
    docstring). No I/O: the caller sends what ``next_requests`` returns and reports each
    request's end with ``on_reply`` or ``on_failure``.

    A driver's loop, at each wake-up: mark ``newly_stalled(now)`` nodes suspect, send
    ``next_requests(now)``, stop when ``done(now)``, else sleep until the first reply or
    ``next_wakeup(now)``.
    """

    __slots__ = (
        "_alpha",
        "_answered",
        "_asked_at",
        "_converged",
        "_ends_at",
        "_failed",
        "_first_ids",
        "_in_flight",
        "_is_suspect",
        "_known",
        "_limit",
        "_patience",
        "_pending_first",
        "_reported",
        "_rpcs",
        "_stall_timeout",
        "_suspects",
        "_target",
        "_wanted",
        "_width",
    )

    def __init__(
        self,
        target: bytes,
        contacts: Iterable[Contact],
        *,
        now: float,
        width: int,
        alpha: int,
        stall_timeout: float,
        patience: float,
        deadline: float,
        first: Sequence[Contact] = (),
        wanted: Callable[[Contact], bool] | None = None,
        is_suspect: Callable[[bytes], bool] = lambda node_id: False,
        limit: int | None = None,
    ) -> None:
        """``contacts`` are the known candidates (the first seen of an id is kept);
        ``first`` are asked at once and awaited; ``deadline`` is in seconds from ``now``;
        ``is_suspect`` says which nodes missed a request lately (asked, never waited for);
        ``limit`` bounds how far past ``width`` the frontier looks for wanted nodes."""
        if width < 1 or alpha < 1:
            raise DhtUsageError("a lookup needs width >= 1 and alpha >= 1")
        self._target = int.from_bytes(target, "big")
        self._width = width
        self._alpha = alpha
        self._stall_timeout = stall_timeout
        self._patience = patience
        self._ends_at = now + deadline
        self._wanted = wanted
        self._is_suspect = is_suspect
        self._limit = width if limit is None else max(width, limit)
        self._known: dict[bytes, Contact] = {}
        for contact in [*first, *contacts]:
            self._known.setdefault(contact.node_id, contact)
        self._first_ids = {contact.node_id for contact in first}
        # Nodes that missed a request lately are still asked, but never waited for; the
        # first contacts are always waited for.
        self._suspects = {
            node_id
            for node_id in self._known
            if node_id not in self._first_ids and is_suspect(node_id)
        }
        self._asked_at: dict[bytes, float] = {}
        self._in_flight: set[bytes] = set()
        self._answered: dict[bytes, Contact] = {}
        self._failed: set[bytes] = set()
        self._reported: set[bytes] = set()
        self._converged: bool | None = None
        self._rpcs = 0
        self._pending_first: list[Contact] | None = list(
            {contact.node_id: contact for contact in first}.values()
        )

    # ------------------------------------------------------------------ inputs
    def on_reply(self, responder: Contact, found: Iterable[Contact]) -> None:
        """The node asked as ``responder.node_id`` answered, listing ``found``."""
        node_id = responder.node_id
        self._finish(node_id)
        self._answered[node_id] = responder
        self._known[node_id] = responder
        self._suspects.discard(node_id)
        for contact in found:
            if contact.node_id not in self._known:
                self._known[contact.node_id] = contact
                if self._is_suspect(contact.node_id):
                    self._suspects.add(contact.node_id)

    def on_failure(self, node_id: bytes) -> None:
        """The request to ``node_id`` ended without a usable answer: the node is dropped."""
        self._finish(node_id)
        self._failed.add(node_id)

    # ------------------------------------------------------------------ outputs
    def newly_stalled(self, now: float) -> list[bytes]:
        """Nodes whose request stalled since the last call and that were not suspects: the
        driver marks them suspect. Each node is reported once."""
        stalled = [
            node_id
            for node_id in self._in_flight
            if node_id not in self._reported
            and node_id not in self._suspects
            and self._stalled(node_id, now)
        ]
        self._reported.update(stalled)
        return stalled

    def next_requests(self, now: float) -> list[Contact]:
        """Contacts to ask now (each is then in flight until its reply or failure). The
        first call returns the ``first`` contacts, whatever ``alpha``, then the others."""
        asks: list[Contact] = []
        if self._pending_first is not None:
            for contact in self._pending_first:
                self._ask(contact.node_id, now)
                asks.append(contact)
            self._pending_first = None
        if self._converged is not None or now >= self._ends_at:
            return asks
        if self._settled(now):
            return asks
        closest = self._to_ask(now)
        active = sum(1 for node_id in self._in_flight if not self._stalled(node_id, now))
        waiting = active  # unstalled requests: at most 2 * alpha of them
        for contact in closest:
            node_id = contact.node_id
            if node_id in self._asked_at:
                continue
            if node_id in self._suspects:
                # a suspect is asked at once (it may be back) and counts as stalled from the
                # start: it holds no place under alpha and is never waited for
                self._ask(node_id, now - self._stall_timeout)
                asks.append(contact)
            elif active < self._alpha and waiting < 2 * self._alpha:
                self._ask(node_id, now)
                asks.append(contact)
                active += 1
                waiting += 1
        return asks

    def done(self, now: float) -> bool:
        """Whether the lookup is over: converged, nothing left to ask or wait for, or past
        its deadline. Once done, it stays done. Never done before ``next_requests``."""
        if self._converged is None and self._pending_first is None:
            if self._settled(now) or not self._in_flight:
                self._converged = True
            elif now >= self._ends_at:
                self._converged = False
        return self._converged is not None

    def next_wakeup(self, now: float) -> float:
        """The time at which the state changes without a reply: the next stall, the end of a
        stalled node's patience, or the deadline."""
        times = [self._ends_at]
        for node_id in self._in_flight:
            started = self._asked_at[node_id]
            if not self._stalled(node_id, now):
                times.append(started + self._stall_timeout)
            elif node_id not in self._suspects and started + self._patience > now:
                times.append(started + self._patience)
        return min(times)

    @property
    def rpcs(self) -> int:
        """find_node requests started."""
        return self._rpcs

    def in_flight(self) -> frozenset[bytes]:
        """Node ids with a request in flight."""
        return frozenset(self._in_flight)

    def result(self) -> LookupResult:
        """The nodes that answered, closest first; ``converged`` is False only when the
        deadline ended the lookup (call after ``done``)."""
        answered = sorted(self._answered.values(), key=self._distance)
        return LookupResult(answered, self.rpcs, self._converged is not False)

    # ------------------------------------------------------------------ rules
    def _ask(self, node_id: bytes, started: float) -> None:
        self._asked_at[node_id] = started
        self._in_flight.add(node_id)
        self._rpcs += 1

    def _finish(self, node_id: bytes) -> None:
        if node_id not in self._in_flight:
            raise DhtUsageError("an answer for a request that is not in flight")
        self._in_flight.remove(node_id)

    def _distance(self, contact: Contact) -> int:
        return int.from_bytes(contact.node_id, "big") ^ self._target

    def _stalled(self, node_id: bytes, now: float) -> bool:
        return now - self._asked_at[node_id] >= self._stall_timeout

    def _given_up(self, node_id: bytes, now: float) -> bool:
        """Asked, unanswered and no longer waited for: a suspect (never waited for) or a node
        stalled past its patience. It leaves the frontier (the next candidate takes its place)
        but counts again if it answers while the lookup runs."""
        if node_id not in self._in_flight:
            return False
        return node_id in self._suspects or now - self._asked_at[node_id] >= self._patience

    def _candidates(self, now: float) -> list[Contact]:
        """Known nodes that neither failed nor were given up, closest first."""
        return sorted(
            (
                contact
                for node_id, contact in self._known.items()
                if node_id not in self._failed and not self._given_up(node_id, now)
            ),
            key=self._distance,
        )

    def _prefix(self, now: float, *, skip_waiting: bool) -> list[Contact]:
        """The closest candidates up to and including the ``width``-th wanted one, looking at
        most ``limit`` candidates past the skipped ones. With ``skip_waiting``, stalled nodes
        still waited for do not count towards ``width``."""
        ordered = self._candidates(now)
        found = skipped = 0
        for index, contact in enumerate(ordered):
            if index >= self._limit + skipped:
                return ordered[:index]
            node_id = contact.node_id
            if skip_waiting and node_id in self._in_flight and self._stalled(node_id, now):
                skipped += 1
            elif self._wanted is None or self._wanted(contact):
                found += 1
                if found == self._width:
                    return ordered[: index + 1]
        return ordered

    def _frontier(self, now: float) -> list[Contact]:
        """The closest candidates up to and including the ``width``-th wanted one: the lookup
        has converged when every one of them has answered."""
        return self._prefix(now, skip_waiting=False)

    def _to_ask(self, now: float) -> list[Contact]:
        """The frontier widened past every stalled node still waited for: the next closest
        nodes are asked while a slow one may still answer, so that giving up on it costs no
        further round trip."""
        return self._prefix(now, skip_waiting=True)

    def _settled(self, now: float) -> bool:
        """Converged: no first contact is awaited and every node of the frontier answered
        (suspects and nodes stalled past their patience are not in it)."""
        if not self._first_ids.isdisjoint(self._in_flight):
            return False
        return all(contact.node_id in self._answered for contact in self._frontier(now))


async def iterative_lookup(
    protocol: WhnodeProtocol,
    target: bytes,
    *,
    width: int,
    alpha: int,
    deadline: float,
    stall_timeout: float,
    start: list[Contact] | None = None,
    first: list[Contact] | None = None,
    wanted: Callable[[Contact], bool] | None = None,
) -> LookupResult:
    """Find the nodes closest to ``target`` that answer, within ``deadline`` seconds.

    ``start`` adds contacts to the routing table's closest ones; ``first`` are asked at once,
    however far they are from the target, and their answers are awaited (bootstrap asks its
    seeds first: they know the most nodes).
    """
    loop = asyncio.get_running_loop()
    stall_timeout = min(stall_timeout, protocol.stall_after())
    protocol.touch_bucket(target)
    config = protocol.config
    state = LookupState(
        target,
        (
            contact
            for contact in [*(start or ()), *protocol.closest(target, config.ksize)]
            if protocol.reachable(contact)
        ),
        now=loop.time(),
        width=width,
        alpha=alpha,
        stall_timeout=stall_timeout,
        patience=min(
            PATIENCE_CAP * config.rpc_timeout,
            max(MIN_PATIENCE_SECONDS, PATIENCE_STALLS * stall_timeout),
        ),
        deadline=deadline,
        first=[contact for contact in first or () if protocol.reachable(contact)],
        wanted=wanted,
        is_suspect=protocol.is_suspect,
        limit=width + config.ksize,
    )
    tasks: dict[asyncio.Task[tuple[Contact, list[Contact]] | None], bytes] = {}

    def send(contacts: Iterable[Contact]) -> None:
        for contact in contacts:
            task = loop.create_task(protocol.request_find_node(contact, target))
            tasks[task] = contact.node_id

    try:
        while True:
            now = loop.time()
            for node_id in state.newly_stalled(now):
                protocol.mark_suspect(node_id)
            send(state.next_requests(now))
            if state.done(now):
                break
            finished, _ = await asyncio.wait(
                tasks, timeout=state.next_wakeup(now) - now, return_when=asyncio.FIRST_COMPLETED
            )
            for task in finished:
                node_id = tasks.pop(task)
                answer = task.result()
                if answer is None:
                    state.on_failure(node_id)
                else:
                    state.on_reply(answer[0], answer[1])
    finally:
        for task in tasks:
            protocol.adopt(task)
    return state.result()
