"""Who may publish a dispensary's records: the right to publish, as this node sees the DHT.

A signature proves who published a record, not that the publisher had the right to. Under
the ``open`` trust policy a record of dispensary D is kept (stored, cached, replicated,
republished, handed off) only when:

1. its **publisher is entitled** to D: the publisher's node id (SHA-1 of the record's
   ``kid``, so bound to the signing key) is at least as close (XOR) to key(D) as the
   ``replication + owner_slack``-th closest owner-capable node this node knows of (the
   routing table, the answers of owner lookups, this node, and every node seen in them
   within the last ``entitlement_window`` seconds), or it was so, or was listed in an owner
   lookup of key(D), within that window. A publisher that left stays entitled while it is
   closer than the owners that remain (distance does not depend on being alive), and one
   that newcomers pushed out of the ranks stays entitled for the window: churn does not drop
   honest records;
2. for a record PUT by a peer, the **sender is an owner or the publisher**: the node id the
   request announces (``X-Whnode-Node``) was seen by this node within the window at the
   address the request comes from (the header alone proves nothing), and it is the publisher
   or is itself entitled to D by rule 1.

Records answered by an owner this node chose from its own owner lookup (fills, replicas)
are checked by rule 1 alone: the sender is an owner by construction.

Under the ``allowlist`` policy the operator vouches for every listed publisher, and the
rules above are not applied (a private federation where members may fill for each other).

Refusals raise ``NotEntitled`` (``publisher_not_entitled``) or ``SenderNotOwner``
(``sender_not_owner``), counted by the service like every other rejection and answered
403 ``not_entitled`` on the peer API.
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from whnode.dht import Contact
from whnode.peer.types import Sender
from whnode.record.acceptance import TrustMode, TrustPolicy
from whnode.record.exceptions import NotEntitled, SenderNotOwner
from whnode.record.keys import node_id_for, routing_key
from whnode.record.puzzle import puzzle_bits
from whnode.record.signed import SignedRecord

__all__ = ["Entitlement", "EntitlementStatistics", "Sender"]

MAX_REMEMBERED: Final = 8192
"""Most node ids remembered with the time they were last seen (oldest forgotten first)."""
REFRESH_SECONDS: Final = 1.0
"""The routing table is re-read at most this often."""


class ContactSource(Protocol):
    """What entitlement needs from the DHT."""

    @property
    def node_id(self) -> bytes: ...

    def contacts(self) -> Sequence[Contact]: ...


@dataclass(frozen=True, slots=True)
class EntitlementStatistics:
    """A frozen snapshot of the entitlement counters."""

    checks: int
    """Records checked."""
    refused_publishers: int
    """Records refused because their publisher is not entitled."""
    refused_senders: int
    """Records refused because their sender is neither an owner nor the publisher."""
    weak_ids: int
    """Records refused because their publisher's node id does not solve the id puzzle."""
    refused_blocked: int
    """Records refused because evidence blocks their publisher (whnode.service.evidence)."""
    remembered: int
    """Node ids currently remembered."""


class Entitlement:
    """Decides whether a publisher (and a sender) may publish a dispensary's records."""

    def __init__(
        self,
        directory: ContactSource,
        *,
        policy: TrustPolicy,
        replication: int,
        owner_slack: int,
        window: float,
        difficulty: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = directory
        self._policy = policy
        self._width = replication + owner_slack
        self._window = window
        self._difficulty = difficulty
        self._clock = clock
        self._seen: OrderedDict[bytes, tuple[Contact, float]] = OrderedDict()
        self._owners_seen: OrderedDict[tuple[bytes, bytes], float] = OrderedDict()
        self._refreshed = -1e18
        self._checks = 0
        self._refused_publishers = 0
        self._refused_senders = 0
        self._weak_ids = 0
        self._refused_blocked = 0
        self.blocked: Callable[[bytes, str], bool] | None = None
        """Whether evidence blocks a publisher (node id) for a dispensary
        (whnode.service.evidence); its records are refused."""

    @property
    def enforced(self) -> bool:
        """False under the allowlist policy (the operator vouches for the publishers)."""
        return self._policy.mode is TrustMode.OPEN

    # ------------------------------------------------------------------ what we know
    def observe(self, contacts: Iterable[Contact], *, key: bytes | None = None) -> None:
        """Remember ``contacts`` as seen now (table contacts; with ``key``, the answer of an
        owner lookup of ``key``: they are its owners)."""
        now = self._clock()
        own = self._directory.node_id
        for contact in contacts:
            if contact.routing_only or contact.node_id == own:
                continue
            self._seen[contact.node_id] = (contact, now)
            self._seen.move_to_end(contact.node_id)
            if key is not None:
                self._remember_owner(key, contact.node_id, now)
        while len(self._seen) > MAX_REMEMBERED:
            self._seen.popitem(last=False)

    def _remember_owner(self, key: bytes, node_id: bytes, now: float) -> None:
        entry = (bytes(key), bytes(node_id))
        self._owners_seen[entry] = now
        self._owners_seen.move_to_end(entry)
        while len(self._owners_seen) > MAX_REMEMBERED:
            self._owners_seen.popitem(last=False)

    def _was_owner(self, key: bytes, node_id: bytes) -> bool:
        seen_at = self._owners_seen.get((bytes(key), bytes(node_id)))
        return seen_at is not None and seen_at >= self._clock() - self._window

    def _refresh(self) -> None:
        now = self._clock()
        if now - self._refreshed >= REFRESH_SECONDS:
            self._refreshed = now
            self.observe(self._directory.contacts())
        horizon = now - self._window
        while self._seen:
            _, (_, seen_at) = next(iter(self._seen.items()))
            if seen_at >= horizon:
                break
            self._seen.popitem(last=False)

    def _known(self, node_id: bytes, host: str | None) -> bool:
        """Whether ``node_id`` was seen within the window at ``host``."""
        entry = self._seen.get(node_id)
        if entry is None:
            return False
        return host is None or entry[0].host == host

    def threshold(self, key: bytes, hint: Sequence[Contact] = ()) -> int:
        """The XOR distance to ``key`` within which a node id is entitled: that of the
        ``replication + owner_slack``-th closest node known (every distance when fewer are
        known)."""
        self._refresh()
        target = int.from_bytes(key, "big")
        ids = set(self._seen)
        ids.update(contact.node_id for contact in hint if not contact.routing_only)
        ids.add(self._directory.node_id)
        nearest = heapq.nsmallest(
            self._width, (int.from_bytes(node_id, "big") ^ target for node_id in ids)
        )
        if len(nearest) < self._width:
            return 2**160
        return nearest[-1]

    def is_entitled(self, node_id: bytes, key: bytes, hint: Sequence[Contact] = ()) -> bool:
        """Whether ``node_id`` may publish records under routing ``key`` (rule 1)."""
        distance = int.from_bytes(node_id, "big") ^ int.from_bytes(key, "big")
        if distance <= self.threshold(key, hint):
            self._remember_owner(key, node_id, self._clock())
            return True
        return self._was_owner(key, node_id)

    # ------------------------------------------------------------------ the checks
    def check(
        self,
        record: SignedRecord,
        *,
        sender: Sender | None = None,
        hint: Sequence[Contact] = (),
    ) -> None:
        """Raise NotEntitled (or SenderNotOwner) unless ``record`` may be kept.

        ``sender`` is given for records PUT by a peer; ``hint`` is the owner list of the
        dispensary when the caller has just looked it up.
        """
        if not self.enforced:
            return
        self._checks += 1
        key = routing_key(record.dispensary_id)
        if hint:
            self.observe(hint, key=key)
        publisher = node_id_for(record.publisher)
        if puzzle_bits(publisher) < self._difficulty:
            self._weak_ids += 1
            self._refused_publishers += 1
            raise NotEntitled(
                f"publisher {publisher.hex()[:12]} has a node id under the puzzle difficulty"
            )
        if self.blocked is not None and self.blocked(publisher, record.dispensary_id):
            self._refused_blocked += 1
            raise NotEntitled(
                f"publisher {publisher.hex()[:12]} is blocked for {record.dispensary_id} by "
                "evidence of misbehaviour"
            )
        if not self.is_entitled(publisher, key, hint):
            self._refused_publishers += 1
            raise NotEntitled(
                f"publisher {publisher.hex()[:12]} is not among the owners of "
                f"{record.dispensary_id} as this node sees them"
            )
        if sender is None:
            return
        if sender.node_id is not None and not self._known(sender.node_id, sender.host):
            self._refreshed = -1e18  # it may have joined within the last refresh interval
            self._refresh()
        if sender.node_id is None or not self._known(sender.node_id, sender.host):
            self._refused_senders += 1
            raise SenderNotOwner("the sender is not a node this node knows at that address")
        if sender.node_id != publisher and not self.is_entitled(sender.node_id, key, hint):
            self._refused_senders += 1
            raise SenderNotOwner(
                f"sender {sender.node_id.hex()[:12]} is neither an owner of "
                f"{record.dispensary_id} nor the publisher"
            )

    def statistics(self) -> EntitlementStatistics:
        return EntitlementStatistics(
            checks=self._checks,
            refused_publishers=self._refused_publishers,
            refused_senders=self._refused_senders,
            weak_ids=self._weak_ids,
            refused_blocked=self._refused_blocked,
            remembered=len(self._seen),
        )
