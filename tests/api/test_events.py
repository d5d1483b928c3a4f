"""``GET /v1/menus/{id}/events`` (Server-Sent Events) with a real aiohttp client reading the
stream from a real server over ``ServiceDouble``; refresh-ahead on its own."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from tests.api.support import ApiServer, ContextDouble, ServiceDouble, make_record, now_ms
from whnode.api.app import public_api
from whnode.api.events import STREAM_QUEUE, event_id
from whnode.config import ApiConfig, Config
from whnode.record.keys import SigningKey
from whnode.record.signed import SignedRecord
from whnode.service.events import RefreshAhead
from whnode.service.types import AnswerPath, MenuAnswer
from whnode.testing.clock import ManualClock, eventually
from whnode.testing.factories import evolve_menu, make_menu

DISPENSARY = "weedmaps:events-target"
EVENTS = f"/v1/menus/{DISPENSARY}/events"


def config(**api: Any) -> Config:
    return Config(api=ApiConfig(requests_per_second=10_000.0, burst=10_000, **api))


class Snapshots:
    """Successive signed snapshots of one menu."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key
        self.menu = make_menu(DISPENSARY, 40, seed=1, fetched_at_ms=now_ms() - 3_600_000)

    def next(self) -> SignedRecord:
        self.menu = evolve_menu(
            self.menu, self.menu.fetched_at_ms, self.menu.fetched_at_ms + 60_000, 0.2
        )
        return make_record(self.menu, self.key)


async def read_event(response: aiohttp.ClientResponse) -> dict[str, str]:
    """The next event (comments skipped): field -> value."""
    while True:
        block = (await asyncio.wait_for(response.content.readuntil(b"\n\n"), 5)).decode()
        fields: dict[str, str] = {}
        for line in block.strip("\n").split("\n"):
            if line.startswith(":"):
                fields.setdefault("comment", line[1:].strip())
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if "event" in fields or "comment" in fields:
            return fields


async def next_snapshot(response: aiohttp.ClientResponse) -> dict[str, Any]:
    while True:
        event = await read_event(response)
        if event.get("event") == "snapshot":
            data: dict[str, Any] = json.loads(event["data"])
            data["id"] = event["id"]
            return data


@pytest.fixture
def snapshots(signing_key: SigningKey) -> Snapshots:
    return Snapshots(signing_key)


async def test_a_stream_starts_with_the_current_snapshot_then_tells_each_new_one(
    snapshots: Snapshots,
) -> None:
    service = ServiceDouble()
    first = snapshots.next()
    service.add(first)
    # a reader that went away is found by the next heartbeat's write
    async with ApiServer(ContextDouble(service, config=config(stream_heartbeat=0.05))) as server:
        async with server.http.get(EVENTS) as response:
            assert response.status == 200
            assert response.content_type == "text/event-stream"
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            current = await next_snapshot(response)
            assert current["id"] == event_id(first)
            assert current["snapshot"]["content_hash"] == bytes(first.content_hash).hex()
            assert current["previous"] is None
            second = snapshots.next()
            service.add(second)
            service.events.publish(second)
            told = await next_snapshot(response)
            assert told["id"] == event_id(second)
            assert told["previous"]["content_hash"] == bytes(first.content_hash).hex()
            assert told["summary"]["changed"] > 0
            assert told["summary"]["price_changed"] > 0
            streams = public_api(server.app).streams
            assert streams.open_streams() == 1
            assert service.events.listeners() == 1
        await eventually(lambda: streams.open_streams() == 0)  # the handler notices it
        assert service.events.listeners() == 0


async def test_last_event_id_resumes_from_history(snapshots: Snapshots) -> None:
    service = ServiceDouble()
    records = [snapshots.next() for _ in range(4)]
    for record in records:
        service.add(record)
    async with ApiServer(ContextDouble(service, config=config())) as server:
        headers = {"Last-Event-ID": event_id(records[1])}
        async with server.http.get(EVENTS, headers=headers) as response:
            missed = [await next_snapshot(response) for _ in range(2)]
    assert [event["id"] for event in missed] == [event_id(records[2]), event_id(records[3])]
    assert missed[0]["previous"]["content_hash"] == bytes(records[1].content_hash).hex()


async def test_a_slow_reader_is_dropped_not_buffered(snapshots: Snapshots) -> None:
    service = ServiceDouble()
    service.add(snapshots.next())
    async with ApiServer(ContextDouble(service, config=config())) as server:
        async with server.http.get(EVENTS) as response:
            await next_snapshot(response)
            # more new snapshots at once than one reader's queue holds
            for _ in range(STREAM_QUEUE + 1):
                record = snapshots.next()
                service.add(record)
                service.events.publish(record)
            events = []
            while True:
                event = await read_event(response)
                events.append(event.get("event"))
                if event.get("event") == "dropped":
                    break
            assert await response.content.read() == b""  # the stream ended
        assert public_api(server.app).streams.slow_dropped == 1
        assert events.count("snapshot") <= STREAM_QUEUE


async def test_limits_per_client_and_in_all(snapshots: Snapshots) -> None:
    service = ServiceDouble()
    service.add(snapshots.next())
    limited = config(max_streams_per_ip=1, max_streams=2)
    async with ApiServer(ContextDouble(service, config=limited)) as server:
        async with server.http.get(EVENTS) as first:
            await next_snapshot(first)
            async with server.http.get(EVENTS) as second:
                assert second.status == 429
                assert second.headers["Retry-After"]
                assert second.content_type == "application/problem+json"
        assert public_api(server.app).streams.refused == 1


async def test_heartbeats_and_a_clean_end_when_the_node_drains(snapshots: Snapshots) -> None:
    service = ServiceDouble()
    service.add(snapshots.next())
    server = ApiServer(ContextDouble(service, config=config(stream_heartbeat=0.05)))
    await server.__aenter__()
    try:
        async with (
            aiohttp.ClientSession(base_url=server.url) as session,
            session.get(EVENTS) as response,
        ):
            await next_snapshot(response)
            assert (await read_event(response)) == {"comment": "heartbeat"}
            closing = asyncio.ensure_future(server.__aexit__(None, None, None))
            body = await asyncio.wait_for(response.content.read(), 5)
            assert b"snapshot" not in body
            await asyncio.wait_for(closing, 10)
    finally:
        if not closing.done():
            await closing


async def test_refresh_ahead_asks_again_when_the_snapshot_expires() -> None:
    clock = ManualClock()
    asked: list[float] = []

    async def get_menu(dispensary_id: str) -> MenuAnswer:
        asked.append(clock())
        if len(asked) == 2:
            raise RuntimeError("upstream down")  # retried after the back-off
        return MenuAnswer(
            record=None,  # type: ignore[arg-type]
            path=AnswerPath.HOT,
            fresh_until_ms=int(clock() * 1000) + 100,
            stale=False,
        )

    refresh = RefreshAhead(
        get_menu,
        min_interval=0.05,
        min_backoff=0.2,
        now_ms=lambda: int(clock() * 1000),
        sleep=clock.sleep,
    )
    refresh.watch(DISPENSARY)
    refresh.watch(DISPENSARY)  # two listeners, one refresher
    assert refresh.watched() == 1
    await clock.run_for(1.5)
    refresh.unwatch(DISPENSARY)
    assert refresh.watched() == 1
    refresh.unwatch(DISPENSARY)
    assert refresh.watched() == 0
    count = len(asked)
    await clock.run_for(3.0)
    assert len(asked) == count  # stopped with the last listener
    # asked at once; again when the snapshot expired (100 ms + 0.5 s margin); that failure
    # is retried after the back-off (0.2 s); then once per freshness window
    assert asked[:4] == pytest.approx([1000.0, 1000.6, 1000.8, 1001.4])
    assert count == 4
    assert refresh.refreshes == 3
    assert refresh.failures == 1
    await refresh.aclose()
