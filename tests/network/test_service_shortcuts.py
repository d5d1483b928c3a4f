"""Shortcuts of the service: ``answer_hot`` (the synchronous hot-cache step the API takes
first) and puts of records a node already stores (not verified or written again).

Real nodes (UDP, TCP, SQLite, process pool) and the sandbox upstream.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from whnode.record.exceptions import RecordError
from whnode.service.types import AnswerPath
from whnode.testing.cluster import LocalCluster
from whnode.testing.sandbox_fixture import SandboxHandle

pytestmark = pytest.mark.timeout(120)


async def test_answer_hot_answers_fresh_records_and_counts_only_what_it_answers(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(1, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        service = cluster.nodes[0].service
        assert service.answer_hot(dispensary, 600) is None  # nothing held yet
        assert service.statistics().requests == 0, "a None answer counts nothing"
        filled = await service.get_menu(dispensary, max_age=600)
        assert filled.path is AnswerPath.FILL

        hot = service.answer_hot(dispensary, 600)
        assert hot is not None
        assert hot.path is AnswerPath.HOT
        assert hot.record.encoded == filled.record.encoded
        assert hot.fresh_until_ms == filled.record.fetched_at_ms + 600_000
        statistics = service.statistics()
        assert statistics.requests == 2
        assert statistics.answers_by_path.get("hot") == 1

        # Too old for the caller's max_age: no answer, nothing counted, and get_menu
        # then goes past the hot cache (here to upstream again).
        assert service.answer_hot(dispensary, 0) is None
        assert service.statistics().requests == 2
        # an unvalidated id is the caller's job; an unknown one simply misses
        assert service.answer_hot("weedmaps:not-held-here", 600) is None


async def test_a_record_put_again_is_counted_as_duplicate_and_not_stored_twice(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(2, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        first, second = cluster.nodes
        answer = await first.service.get_menu(dispensary, max_age=600)
        await cluster.wait_idle()
        data = answer.record.encoded
        await second.service.peer_put(dispensary, data)  # stored (or already replicated)
        before = second.service.statistics().duplicate_puts
        assert await second.service.peer_put(dispensary, data) is False
        assert second.service.statistics().duplicate_puts == before + 1
        held = await second.store.newest(dispensary)
        assert held is not None
        assert held.data == data
        # a tampered copy is not a duplicate: it is verified, and refused
        tampered = bytearray(data)
        tampered[-1] ^= 1
        with pytest.raises(RecordError):
            await second.service.peer_put(dispensary, bytes(tampered))
        assert second.service.statistics().duplicate_puts == before + 1
