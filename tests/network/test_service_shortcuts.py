"""Shortcuts of the service: ``answer_hot`` (the synchronous hot-cache step the API takes
first) and puts of records a node already stores (not verified or written again).

Real nodes (UDP, TCP, SQLite, process pool) and the sandbox upstream.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from whnode.api.app import public_api
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

        # one answer object per record and freshness, handed out again ...
        assert service.answer_hot(dispensary, 600) is hot
        shorter = service.answer_hot(dispensary, 300)
        assert shorter is not None
        assert shorter is not hot
        assert shorter.fresh_until_ms == filled.record.fetched_at_ms + 300_000
        # ... until a newer record is held
        refreshed = await service.get_menu(dispensary, max_age=0)
        assert refreshed.record.fetched_at_ms > filled.record.fetched_at_ms
        newer = service.answer_hot(dispensary, 600)
        assert newer is not None
        assert newer is not hot
        assert newer.record.encoded == refreshed.record.encoded


async def test_answer_hot_follows_the_dispensary_lifetime_when_no_max_age_is_given(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(1, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        service = cluster.nodes[0].service
        filled = await service.get_menu(dispensary)  # the heuristic lifetime
        hot = service.answer_hot(dispensary)
        assert hot is not None
        assert hot.fresh_until_ms == filled.fresh_until_ms > filled.record.fetched_at_ms
        assert service.answer_hot(dispensary) is hot
        # a longer lifetime (say, learnt from newer snapshots) gives a new answer at once
        service._fresh_until[dispensary] = filled.fresh_until_ms + 60_000
        longer = service.answer_hot(dispensary)
        assert longer is not None
        assert longer is not hot
        assert longer.fresh_until_ms == filled.fresh_until_ms + 60_000
        # an expired lifetime: no hot answer, nothing counted
        requests = service.statistics().requests
        service._fresh_until[dispensary] = filled.record.fetched_at_ms
        assert service.answer_hot(dispensary) is None
        assert service.statistics().requests == requests


async def test_hot_api_answers_replay_within_a_second_and_follow_a_new_record(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with (
        LocalCluster(1, tmp_path, sandbox_url=sandbox.base_url) as cluster,
        aiohttp.ClientSession() as session,
    ):
        node = cluster.nodes[0]
        url = f"{node.http_url}/v1/menus/{dispensary}?max_age=600"
        answers = []
        for _ in range(3):
            async with session.get(url) as response:
                assert response.status == 200
                answers.append((response.headers.copy(), await response.read()))
        assert [a[0]["X-Whnode-Path"] for a in answers] == ["fill", "hot", "hot"]
        assert answers[1][1] == answers[2][1] == answers[0][1]
        assert answers[2][0]["ETag"] == answers[0][0]["ETag"]
        assert answers[2][0]["Access-Control-Allow-Origin"] == "*"
        renders = public_api(node.app).renders.statistics()
        assert renders.hits >= 2, "replayed bodies count as render cache hits"
        # the CBOR representation of the same answer is kept apart from the JSON one
        async with session.get(url, headers={"Accept": "application/cbor"}) as response:
            assert response.headers["Content-Type"] == "application/cbor"
            # (in the coding the client accepts: aiohttp's client sends gzip, deflate, br)
            assert response.headers["ETag"].endswith(('-cbor"', '-cbor+br"'))
            assert response.headers["ETag"] != answers[0][0]["ETag"]
        # a newer record is answered at once, not a kept response of the old one
        refreshed = await node.service.get_menu(dispensary, max_age=0)
        async with session.get(url) as response:
            assert response.headers["X-Whnode-Path"] == "hot"
            assert response.headers["X-Whnode-Fetched-At"] == str(refreshed.record.fetched_at_ms)
            assert response.headers["ETag"] != answers[0][0]["ETag"]


async def test_hot_menu_hits_are_answered_without_awaiting(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    """The menu handler answers a hot hit synchronously (a response, not an awaitable): the
    guard then awaits nothing, the cheapest path a request can take. The request is built
    with aiohttp's make_mocked_request (no socket): whether the handler returned a response
    or an awaitable cannot be seen over the wire. Everything else here is a real node."""
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(1, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        node = cluster.nodes[0]
        menus = public_api(node.app).menus

        path = f"/v1/menus/{dispensary}?max_age=600"

        async def answer(path: str, **headers: str) -> tuple[bool, web.StreamResponse]:
            made = make_mocked_request("GET", path, headers=headers, app=node.app)
            made._match_info = await node.app.router.resolve(made)
            result = menus.menu(made)
            if isinstance(result, web.StreamResponse):
                return True, result
            return False, await result

        synchronous, response = await answer(path)
        assert not synchronous, "a miss waits for the fill"
        assert response.headers["X-Whnode-Path"] == "fill"
        synchronous, response = await answer(path)
        assert synchronous
        assert response.headers["X-Whnode-Path"] == "hot"
        synchronous, response = await answer(path, Accept="application/cose")
        assert synchronous, "the signed record needs no rendering"
        # a representation not rendered yet is awaited once, then answered at once
        synchronous, response = await answer(path, Accept="application/cbor")
        assert not synchronous
        synchronous, response = await answer(path, Accept="application/cbor")
        assert synchronous
        assert response.headers["Content-Type"] == "application/cbor"
        # ``at`` asks for history: always awaited
        at = response.headers["X-Whnode-Fetched-At"]
        synchronous, response = await answer(f"/v1/menus/{dispensary}?at={at}")
        assert not synchronous
        assert response.status == 200


async def test_peer_routes_are_counted_in_the_request_metrics(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    dispensary = sandbox.tiny_dispensary
    async with (
        LocalCluster(3, tmp_path, sandbox_url=sandbox.base_url) as cluster,
        aiohttp.ClientSession() as session,
    ):
        await cluster.nodes[0].service.get_menu(dispensary, max_age=600)
        counted = 0
        for node in cluster.nodes:
            async with session.get(f"{node.http_url}/metrics") as response:
                text = await response.text()
            for line in text.splitlines():
                if line.startswith("whnode_http_requests_total{") and 'route="/peer/v1/' in line:
                    counted += int(float(line.rsplit(" ", 1)[1]))
        assert counted >= 1, "the fill stored its record on peers through /peer/v1/ routes"
        async with session.get(f"{cluster.nodes[1].http_url}/peer/v1/nowhere") as response:
            assert response.status == 404
            assert response.content_type == "application/problem+json"


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


async def test_large_records_are_verified_off_the_event_loop(
    tmp_path: Path, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Spies around the real admit_record and accept_record note the thread each record is
    verified on; a large record's payload is opened in the parse pool."""
    import threading
    import time

    from whnode.record import acceptance
    from whnode.record.codec import content_hash, encode_menu
    from whnode.record.keys import SigningKey
    from whnode.record.signed import sign_record
    from whnode.service import core
    from whnode.service.opening import POOL_OPEN_BYTES
    from whnode.testing.factories import make_menu

    threads: list[tuple[int, str]] = []
    real = acceptance.admit_record

    def spy(data: bytes, **kwargs: object) -> object:
        threads.append((len(data), threading.current_thread().name))
        return real(data, **kwargs)  # type: ignore[arg-type]

    checked: list[tuple[int, str]] = []
    real_accept = acceptance.accept_record

    def accept_spy(data: bytes, **kwargs: object) -> object:
        checked.append((len(data), threading.current_thread().name))
        return real_accept(data, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(core, "admit_record", spy)
    monkeypatch.setattr(core, "accept_record", accept_spy)
    key = SigningKey.generate()
    now = int(time.time() * 1000)
    records = []
    for index, products in enumerate((3, 250)):
        menu = make_menu(f"weedmaps:spied-{index}", products, seed=index, fetched_at_ms=now)
        records.append(
            sign_record(
                payload=encode_menu(menu),
                dispensary_id=menu.dispensary_id,
                fetched_at_ms=now,
                content_hash=content_hash(menu),
                signing_key=key,
            )
        )
    async with LocalCluster(1, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        service = cluster.nodes[0].service
        await cluster.pool.warm_up()  # else opened here while the workers start
        for record in records:
            assert await service.peer_put(record.dispensary_id, record.encoded) is True
        opened = service.statistics().records_opened
    small, large = (len(record.encoded) for record in records)
    assert small < POOL_OPEN_BYTES
    assert small <= core.INLINE_ACCEPT_BYTES < large
    by_size = dict(threads)
    assert by_size[small] == threading.main_thread().name  # opened on the loop: tiny
    assert large not in by_size  # opened in a worker process, not in this one
    assert dict(checked)[large] != threading.main_thread().name
    assert opened == {"pool": 1, "inline": 1}


async def test_a_node_readmitted_within_a_republish_interval_is_not_handed_records_again(
    tmp_path: Path, sandbox: SandboxHandle
) -> None:
    async with LocalCluster(2, tmp_path, sandbox_url=sandbox.base_url) as cluster:
        first, second = cluster.nodes
        newcomer = second.dht.self_contact
        skipped = first.service.statistics().hand_offs_skipped
        first.service.on_new_contact(newcomer)  # joined at start-up, or now: handed once
        first.service.on_new_contact(newcomer)  # evicted and re-admitted: not again
        assert first.service.statistics().hand_offs_skipped >= skipped + 1
        before = first.service.statistics().hand_offs_skipped
        first.service.on_new_contact(newcomer)
        assert first.service.statistics().hand_offs_skipped == before + 1
