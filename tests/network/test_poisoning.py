"""Menu poisoning on loopback: records that must never be kept, and who may publish.

Real nodes (UDP + TCP + SQLite) and the sandbox upstream; the attacker talks to them over
HTTP like any peer.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from whnode.peer.client import PeerClient
from whnode.peer.exceptions import PeerRefused
from whnode.record.acceptance import open_record
from whnode.record.keys import SigningKey
from whnode.record.signed import decode_record
from whnode.testing import forgery
from whnode.testing.cluster import LocalCluster
from whnode.testing.sandbox_fixture import SandboxHandle

pytestmark = pytest.mark.timeout(240)


async def test_records_whose_payload_lies_are_refused_and_the_good_record_stays_newest(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    """The reproduced attack: an attacker's own key, payloads that do not open as their
    header says, dated 289 s ahead (inside the 300 s verification skew). Each PUT is refused
    with its own problem kind, nothing is stored, and GET keeps answering the good record."""
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(3, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        honest = await cluster.nodes[1].service.get_menu(dispensary, max_age=600)
        await cluster.wait_idle()
        menu = open_record(honest.record)
        other = open_record(
            (await cluster.nodes[1].service.get_menu(sandbox.other_dispensary)).record
        )
        attacker = SigningKey.generate()
        ahead = cluster.nodes[0].service.now_ms() + 289_000
        poisoned = {
            "wrong_content_hash": forgery.wrong_content_hash(menu, attacker, ahead),
            "inner_menu_of_another": forgery.inner_menu_for_another_dispensary(
                other, dispensary, attacker, ahead
            ),
            "lying_lz4_sizes": forgery.lying_sizes(menu, attacker, ahead),
        }
        async with aiohttp.ClientSession() as session:
            client = PeerClient(session, node_id_hex=attacker.node_id.hex(), timeout=10)
            for node in cluster.nodes:
                for name, record in poisoned.items():
                    with pytest.raises(PeerRefused) as refused:
                        await client.put_record(node.dht.self_contact, dispensary, record.encoded)
                    assert (refused.value.status, refused.value.kind) == (422, "bad_payload"), name
                # A well-formed fake dated 289 s ahead would outrank every fetch of the next
                # five minutes: it is not kept either.
                ahead_fake = forgery.forge(forgery.fake_menu(menu), attacker, fetched_at_ms=ahead)
                with pytest.raises(PeerRefused) as refused:
                    await client.put_record(node.dht.self_contact, dispensary, ahead_fake.encoded)
                assert (refused.value.status, refused.value.kind) == (422, "future_record")
                rejections = node.service.statistics().peer_rejections
                assert rejections.get("payload_mismatch", 0) == 3
                assert rejections.get("ahead_of_clock", 0) == 1
                held = await node.store.newest(dispensary)
                assert held is None or decode_record(held.data).publisher != attacker.public_key
            # Every node still serves the good record over its public API.
            for node in cluster.nodes:
                async with session.get(
                    f"{node.http_url}/v1/menus/{dispensary}",
                    headers={"Accept": "application/cose"},
                ) as response:
                    assert response.status == 200
                    body = await response.read()
                assert decode_record(body).publisher != attacker.public_key
                assert decode_record(body).content_hash == honest.record.content_hash
