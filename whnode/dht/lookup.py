"""Iterative node lookup with a deadline, rolling concurrency and liveness tracking.

kademlia's ``SpiderCrawl`` asks ``alpha`` nodes per round and waits for the whole round (one
dead node stalls it a full timeout), has no overall deadline, and returns nodes it never
heard from. This lookup:

- keeps ``alpha`` requests in flight and starts the next one as soon as one finishes or
  stalls (a request unanswered after the protocol's adaptive stall time, at most
  ``stall_timeout``, stops counting towards ``alpha``, so a dead contact does not hold a slot
  for a whole RPC timeout); never more than ``2 * alpha`` unstalled requests are in flight,
  so that an overloaded network is not flooded further;
- waits only a little for a stalled node: its node becomes a suspect (until it answers
  anything) at once, but the lookup converges past it only after ``PATIENCE_STALLS`` stall
  times (at most one RPC timeout), so a live node slowed by a busy host still answers and is
  still among the owners; an answer that arrives while the lookup runs always counts. A
  crashed node therefore costs the first lookup that meets it a few stall times (a round trip
  and its variation each), not an RPC timeout, and later lookups nothing (it is a suspect);
- stops at its deadline;
- asks nodes that missed a request in the last ``config.suspect_seconds`` without waiting
  for them (each dead node costs one RPC timeout per asker, not one per lookup; a live node
  that missed once because of a lost datagram or a busy host still counts if it answers);
- returns only nodes that answered, sorted by XOR distance;
- stops when the ``width`` closest known nodes that are ``wanted`` (for owner lookups: not
  routing-only), and every node closer than them, have answered (``width = k`` with every
  node wanted is the textbook termination). Unwanted nodes are still asked: they route.

Requests still in flight when the lookup ends are handed to the protocol, which owns them:
they end on rpcudp's own timer (never cancelled mid-flight, KADEMLIA.md 5) and their answers
still refresh the routing table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from whnode.dht.contact import Contact
from whnode.dht.protocol import WhnodeProtocol

__all__ = ["PATIENCE_STALLS", "LookupResult", "iterative_lookup"]

PATIENCE_STALLS = 4
"""Stall times a lookup waits for a stalled node (not a suspect before the lookup) before it
converges without it. One stall time frees the node's place under ``alpha``; waiting a few
more keeps a live node on a loaded host (its answer late by an event-loop lag) among the
answers, so that two askers agree on the owners."""


@dataclass(frozen=True, slots=True)
class LookupResult:
    """What one lookup found."""

    answered: list[Contact]
    """Nodes that answered during the lookup, closest to the target first."""
    rpcs: int
    """find_node requests sent."""
    converged: bool
    """False when the deadline ended the lookup before it converged."""


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
    ends_at = loop.time() + deadline
    stall_timeout = min(stall_timeout, protocol.stall_after())
    patience = min(protocol.config.rpc_timeout, PATIENCE_STALLS * stall_timeout)
    protocol.touch_bucket(target)
    known: dict[bytes, Contact] = {}
    first = [contact for contact in first or () if protocol.reachable(contact)]
    for contact in [*first, *(start or ()), *protocol.closest(target, protocol.config.ksize)]:
        if protocol.reachable(contact):
            known.setdefault(contact.node_id, contact)
    asked: set[bytes] = set()
    failed: set[bytes] = set()
    # Nodes that missed a request lately are still asked, but never waited for.
    suspects = {node_id for node_id in known if protocol.is_suspect(node_id)}
    answered: dict[bytes, Contact] = {}
    in_flight: dict[asyncio.Task[tuple[Contact, list[Contact]] | None], tuple[bytes, float]] = {}
    rpcs = 0
    converged = True

    def distance(contact: Contact) -> int:
        return contact.distance_to(target)

    asked_at: dict[bytes, float] = {}

    def ask(contact: Contact, started: float) -> None:
        nonlocal rpcs
        asked.add(contact.node_id)
        asked_at[contact.node_id] = started
        task = loop.create_task(protocol.request_find_node(contact, target))
        in_flight[task] = (contact.node_id, started)
        rpcs += 1

    stalled: set[bytes] = set()

    def settled(node_id: bytes) -> bool:
        if node_id in answered:
            return True
        if node_id not in asked:
            return False
        if node_id in suspects:
            return True
        return node_id in stalled and now - asked_at[node_id] >= patience

    first_ids = {contact.node_id for contact in first}
    suspects -= first_ids
    try:
        now = loop.time()
        for contact in first:
            ask(contact, now)
        while True:
            now = loop.time()
            for node_id, started in in_flight.values():
                if node_id not in stalled and now - started >= stall_timeout:
                    stalled.add(node_id)
                    if node_id not in suspects:
                        protocol.mark_suspect(node_id)
            closest = _frontier(
                sorted(
                    (contact for node_id, contact in known.items() if node_id not in failed),
                    key=distance,
                ),
                width,
                wanted,
                limit=width + protocol.config.ksize,
            )
            waiting_first = any(node_id in first_ids for node_id, _ in in_flight.values())
            if not waiting_first and all(settled(contact.node_id) for contact in closest):
                break  # converged; requests still in flight are farther away (or suspects)
            now = loop.time()
            active = sum(1 for _, started in in_flight.values() if now - started < stall_timeout)
            # Stalled requests (most likely lost, or their node gone) hold no place under the
            # 2 * alpha cap; a suspect is asked at once (it may be back) and never waited for.
            waiting = sum(1 for node_id, _ in in_flight.values() if node_id not in stalled)
            for contact in closest:
                if contact.node_id in asked:
                    continue
                if contact.node_id in suspects:
                    ask(contact, now - stall_timeout)  # counts as stalled from the start
                    stalled.add(contact.node_id)
                elif active < alpha and waiting < 2 * alpha:
                    ask(contact, now)
                    active += 1
                    waiting += 1
            if not in_flight:
                break
            if not waiting_first and all(settled(contact.node_id) for contact in closest):
                break  # the last ones asked were suspects: settled once asked
            remaining = ends_at - now
            if remaining <= 0:
                converged = False
                break
            # Wake up for the first answer, the next stall, the end of a stalled node's
            # patience, or the deadline.
            stalls = [
                max(0.0, started + stall_timeout - now)
                for node_id, started in in_flight.values()
                if node_id not in stalled
            ]
            stalls += [
                started + patience - now
                for node_id, started in in_flight.values()
                if node_id in stalled and node_id not in suspects and started + patience > now
            ]
            wake = min([remaining, *stalls])
            done, _ = await asyncio.wait(
                in_flight, timeout=wake, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                node_id, _ = in_flight.pop(task)
                result = task.result()
                if result is None:
                    failed.add(node_id)
                    continue
                responder, found = result
                stalled.discard(node_id)
                answered[node_id] = responder
                known[node_id] = responder
                suspects.discard(node_id)
                for contact in found:
                    if contact.node_id not in known:
                        known[contact.node_id] = contact
                        if protocol.is_suspect(contact.node_id):
                            suspects.add(contact.node_id)
    finally:
        for task in in_flight:
            protocol.adopt(task)
    return LookupResult(sorted(answered.values(), key=distance), rpcs, converged)


def _frontier(
    ordered: list[Contact], width: int, wanted: Callable[[Contact], bool] | None, *, limit: int
) -> list[Contact]:
    """The prefix of ``ordered`` holding ``width`` wanted contacts (at most ``limit`` long)."""
    if wanted is None:
        return ordered[:width]
    found = 0
    for index, contact in enumerate(ordered[:limit]):
        if wanted(contact):
            found += 1
            if found == width:
                return ordered[: index + 1]
    return ordered[:limit]
