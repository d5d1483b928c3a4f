"""Who may publish: the entitlement rules on their own, with an in-memory contact list."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from whnode.dht import Contact
from whnode.peer.routes import Sender
from whnode.record.acceptance import TrustPolicy
from whnode.record.exceptions import NotEntitled, SenderNotOwner
from whnode.record.keys import NodeId, SigningKey, node_id_for, routing_key
from whnode.record.puzzle import puzzle_bits
from whnode.service.entitlement import Entitlement
from whnode.testing import forgery
from whnode.testing.factories import make_menu

DISPENSARY = "jane:1547"
KEY = routing_key(DISPENSARY)


class Table:
    """A routing table that tests edit by hand."""

    def __init__(self, own: bytes, contacts: list[Contact]) -> None:
        self._own = own
        self.entries = contacts

    @property
    def node_id(self) -> bytes:
        return self._own

    def contacts(self) -> Sequence[Contact]:
        return list(self.entries)


def distance(node_id: bytes) -> int:
    return int.from_bytes(node_id, "big") ^ int.from_bytes(KEY, "big")


def nodes(count: int) -> list[tuple[SigningKey, Contact]]:
    """``count`` keys and contacts at distinct 127.0.0.x addresses, closest to KEY first."""
    keys = sorted((SigningKey.generate() for _ in range(count)), key=lambda k: distance(k.node_id))
    return [
        (key, Contact(NodeId(key.node_id), f"127.0.0.{index + 2}", 9000 + index))
        for index, key in enumerate(keys)
    ]


def record_by(key: SigningKey) -> object:
    return forgery.forge(make_menu(DISPENSARY, 2, fetched_at_ms=1_760_000_000_000), key)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def entitlement(table: Table, clock: Clock, **options: object) -> Entitlement:
    settings: dict[str, object] = {
        "policy": TrustPolicy.open(),
        "replication": 3,
        "owner_slack": 0,
        "window": 60.0,
    }
    settings.update(options)
    return Entitlement(table, clock=clock, **settings)  # type: ignore[arg-type]


def test_only_the_closest_owners_may_publish_and_only_owners_or_the_publisher_may_send() -> None:
    members = nodes(12)
    me = members[-1]  # this node: the farthest from the key
    table = Table(me[0].node_id, [contact for _, contact in members[:-1]])
    rules = entitlement(table, Clock())
    owner_key, owner = members[0]
    third_key, third = members[2]
    fourth_key, fourth = members[3]
    rules.check(record_by(owner_key))  # type: ignore[arg-type]
    rules.check(record_by(third_key))  # type: ignore[arg-type]
    with pytest.raises(NotEntitled):
        rules.check(record_by(fourth_key))  # type: ignore[arg-type]
    # sent by the publisher itself, by another owner: kept
    rules.check(record_by(owner_key), sender=Sender(owner.node_id, owner.host))  # type: ignore[arg-type]
    rules.check(record_by(owner_key), sender=Sender(third.node_id, third.host))  # type: ignore[arg-type]
    # sent by a known node that is no owner, by an unknown one, from another address
    for sender in (
        Sender(fourth.node_id, fourth.host),
        Sender(SigningKey.generate().node_id, "127.0.0.99"),
        Sender(third.node_id, "127.0.0.99"),
        Sender(None, third.host),
    ):
        with pytest.raises(SenderNotOwner):
            rules.check(record_by(owner_key), sender=sender)  # type: ignore[arg-type]
    statistics = rules.statistics()
    assert (statistics.refused_publishers, statistics.refused_senders) == (1, 4)


def test_an_owner_that_left_stays_entitled_for_the_window_then_newer_owners_replace_it() -> None:
    members = nodes(10)
    me = members[-1]
    table = Table(me[0].node_id, [contact for _, contact in members[:-1]])
    clock = Clock()
    rules = entitlement(table, clock)
    rules.check(record_by(members[1][0]))  # type: ignore[arg-type]
    # The two closest owners leave, and three newcomers land closer than everyone.
    newcomers = [
        forgery.grind_key_near(KEY, closer_than=distance(members[0][0].node_id), budget=50_000)
        for _ in range(3)
    ]
    assert all(result.reached for result in newcomers)
    table.entries = [contact for _, contact in members[2:-1]] + [
        Contact(NodeId(result.key.node_id), f"127.0.1.{index}", 9100)
        for index, result in enumerate(newcomers)
    ]
    clock.now += 30
    # Within the window: the departed owner is still entitled and still a known sender...
    sender = Sender(members[1][1].node_id, members[1][1].host)
    rules.check(record_by(members[1][0]), sender=sender)  # type: ignore[arg-type]
    # ...but a node never seen among the three closest is not (three newcomers are closer).
    with pytest.raises(NotEntitled):
        rules.check(record_by(members[2][0]))  # type: ignore[arg-type]
    clock.now += 61  # past the window
    with pytest.raises(NotEntitled):
        rules.check(record_by(members[1][0]))  # type: ignore[arg-type]
    with pytest.raises(SenderNotOwner):
        rules.check(record_by(newcomers[0].key), sender=sender)  # type: ignore[arg-type]
    rules.check(record_by(newcomers[0].key))  # type: ignore[arg-type]


def test_owner_lookup_answers_count_as_seen_and_allowlist_skips_the_rules() -> None:
    members = nodes(8)
    table = Table(members[-1][0].node_id, [])  # an empty table: every id is "close"
    entitlement(table, Clock()).check(record_by(members[5][0]))  # type: ignore[arg-type]
    rules = entitlement(table, Clock())
    rules.observe([contact for _, contact in members[:3]], key=KEY)  # an owner lookup's answer
    with pytest.raises(NotEntitled):
        rules.check(record_by(members[5][0]))  # type: ignore[arg-type]
    allowing = entitlement(table, Clock(), policy=TrustPolicy.allowlist([members[5][0].public_key]))
    allowing.observe([contact for _, contact in members[:3]])
    allowing.check(record_by(members[5][0]), sender=Sender(None, None))  # type: ignore[arg-type]


def test_a_publisher_id_under_the_puzzle_difficulty_is_refused() -> None:
    weak = SigningKey.generate()
    while puzzle_bits(node_id_for(weak.public_key)) >= 1:
        weak = SigningKey.generate()
    table = Table(SigningKey.generate().node_id, [])
    rules = entitlement(table, Clock(), difficulty=1)
    with pytest.raises(NotEntitled):
        rules.check(record_by(weak))  # type: ignore[arg-type]
    assert rules.statistics().weak_ids == 1
