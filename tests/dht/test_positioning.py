"""Costly positioning: the node-id puzzle and the per-IP caps, on real sockets.

The per-IP caps exempt loopback by default (a local network shares 127.0.0.1); these tests
turn the exemption off and bind nodes to distinct loopback addresses (127.0.0.x, all of
127.0.0.0/8 is loopback on Linux), so that each address stands for one host.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from whnode.dht import DhtNode, PublicKey, node_id_for
from whnode.identity import IdentityError, generate_identity, load_or_create_identity
from whnode.record.keys import SigningKey
from whnode.record.puzzle import DEFAULT_DIFFICULTY, puzzle_bits, solves

from .support import LOOPBACK, fast, fleet, start_node

pytestmark = pytest.mark.timeout(60)

DIFFICULTY = 6


def key_solving(difficulty: int, *, solved: bool = True) -> PublicKey:
    """A random 32-byte key whose id solves (or fails) the puzzle at ``difficulty``."""
    while True:
        key = PublicKey(os.urandom(32))
        if solves(node_id_for(key), difficulty) == solved:
            return key


def test_puzzle_bits_are_leading_zero_bits_of_the_hash_and_generation_grinds_them() -> None:
    key, attempts = generate_identity(DIFFICULTY)
    assert puzzle_bits(key.node_id) >= DIFFICULTY
    assert attempts >= 1
    assert solves(key.node_id, 0)
    counts = [puzzle_bits(node_id_for(key_solving(0))) for _ in range(2000)]
    # about half of all ids have no leading zero bit, a quarter exactly one
    assert 850 < counts.count(0) < 1150
    assert 380 < counts.count(1) < 620


def test_a_created_identity_solves_the_puzzle_and_a_node_refuses_a_weak_one(
    tmp_path: Path,
) -> None:
    key = load_or_create_identity(tmp_path / "a", DIFFICULTY)
    assert puzzle_bits(key.node_id) >= DIFFICULTY
    assert load_or_create_identity(tmp_path / "a", DIFFICULTY).node_id == key.node_id
    assert DEFAULT_DIFFICULTY >= 12


async def test_a_node_with_a_weak_id_does_not_start(tmp_path: Path) -> None:
    from whnode.node import Node
    from whnode.testing.cluster import cluster_config

    weak = SigningKey.generate()
    while solves(weak.node_id, DIFFICULTY):
        weak = SigningKey.generate()
    config = cluster_config(
        tmp_path / "node", sandbox_url=None, trust={"node_id_difficulty": DIFFICULTY}
    )
    with pytest.raises(IdentityError, match="puzzle"):
        await Node(config, signing_key=weak).start()


async def test_weak_ids_are_refused_as_senders_and_dropped_from_replies() -> None:
    config = fast(node_id_difficulty=DIFFICULTY)
    async with fleet() as nodes:
        seed = await start_node(config, key=key_solving(DIFFICULTY))
        # A node with a strong id that does not check (an old or careless peer), and a weak
        # node that joins through it.
        relay = await start_node(fast(), key=key_solving(DIFFICULTY))
        weak = await start_node(
            fast(bootstrap_attempts=1), key=key_solving(DIFFICULTY, solved=False)
        )
        nodes.extend([seed, relay, weak])
        assert await weak.bootstrap([(LOOPBACK, relay.port)]) == 1
        assert await weak.bootstrap([(LOOPBACK, seed.port)]) == 1  # only the relay answers
        assert seed.statistics().weak_ids >= 1  # its ping was refused
        # The seed joins through the relay, whose reply lists the weak node: dropped.
        before = seed.statistics().weak_ids
        assert await seed.bootstrap([(LOOPBACK, relay.port)]) >= 1
        assert seed.statistics().weak_ids > before
        assert weak.node_id not in {contact.node_id for contact in seed.contacts()}
        assert relay.node_id in {contact.node_id for contact in seed.contacts()}


async def test_one_ip_places_at_most_ids_per_ip_in_a_table_and_one_id_in_an_owner_list() -> None:
    config = fast(id_caps_exempt_loopback=False, ids_per_ip=2, owner_ids_per_ip=1)
    async with fleet() as nodes:

        async def node_at(host: str) -> DhtNode:
            node = DhtNode(PublicKey(os.urandom(32)), config)
            await node.listen(host, 0)
            nodes.append(node)
            return node

        observer = await node_at("127.0.0.10")
        honest = [await node_at(f"127.0.0.{11 + index}") for index in range(3)]
        crowd = [await node_at("127.0.0.50") for _ in range(5)]  # one host, five ids
        for node in honest + crowd:
            await node.bootstrap([("127.0.0.10", observer.port)])
        table = observer.contacts()
        assert sum(contact.host == "127.0.0.50" for contact in table) == 2
        assert observer.statistics().ip_cap_refusals >= 3
        assert {node.node_id for node in honest} <= {contact.node_id for contact in table}
        for node in crowd:  # a key right at one of the crowd's ids
            owners = await honest[0].find_owners(node.node_id, 3, fresh=True)
            assert sum(owner.host == "127.0.0.50" for owner in owners) <= 1
