"""``GET /v1/menus/{dispensary}/events``: a Server-Sent Events stream of new snapshots.

One ``snapshot`` event for every snapshot of the dispensary this node learns (a fill, a
replica put, a republish), with the snapshot's and the previous one's identity (publisher,
content hash, fetch time: a light client fetches and checks them) and the diff summary
between them (``GET /v1/menus/{id}/changes`` has the details). The event id is
``<fetched_at_ms>-<hash>``; a client that reconnects with ``Last-Event-ID`` first gets the
snapshots it missed, from the dispensary's history. Without it, the stream starts with the
current snapshot.

Bounded: at most ``api.max_streams`` streams in all and ``api.max_streams_per_ip`` per client
address (IPv6: /64; 503 and 429 problem documents beyond), each with a queue of
``STREAM_QUEUE`` events: a reader that falls that far behind is dropped (the stream ends; it
reconnects with ``Last-Event-ID`` and loses nothing the history holds), never buffered
without limit. A comment line every ``api.stream_heartbeat`` seconds keeps proxies from
closing an idle stream and finds readers that are gone. Every stream ends cleanly when the
node drains. While a dispensary has listeners the node refreshes it ahead of expiry
(``whnode.service.events.RefreshAhead``).
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Final

from aiohttp import web

from whnode.api.changes import summary_of
from whnode.api.context import ApiContext, MenuReader, service_of
from whnode.api.exceptions import ClientRateLimited, NodeNotReady
from whnode.api.menus import CORS_HEADERS
from whnode.api.opened import OpenedMenus
from whnode.api.params import single_values
from whnode.api.ratelimit import client_key
from whnode.api.render import dumps, history_entry
from whnode.record.diff import diff_menus
from whnode.record.model import parse_dispensary_id
from whnode.record.signed import SignedRecord
from whnode.service.events import RefreshAhead

__all__ = ["STREAM_QUEUE", "EventStreams", "event_id"]

STREAM_QUEUE: Final = 16
"""Events queued for one reader; one more and the reader is dropped."""
RESUME_HISTORY: Final = 50
"""Snapshots read from history to resume after ``Last-Event-ID``."""

_EVENT_ID = re.compile(r"(?P<ms>[0-9]{1,16})-(?P<hash>[0-9a-f]{24})")


def event_id(record: SignedRecord) -> str:
    return f"{record.fetched_at_ms}-{bytes(record.content_hash).hex()[:24]}"


@dataclass(eq=False)
class _Stream:
    dispensary_id: str
    client: str
    queue: asyncio.Queue[SignedRecord]
    dropped: bool = False


class EventStreams:
    """Open change streams, their limits, and refresh-ahead of the watched dispensaries."""

    def __init__(self, context: ApiContext, opened: OpenedMenus) -> None:
        self._context = context
        self._opened = opened
        self._streams: set[_Stream] = set()
        self._per_client: dict[str, int] = defaultdict(int)
        self._closing = asyncio.Event()
        self._refresh: RefreshAhead | None = None
        self.opened = 0
        self.slow_dropped = 0
        self.refused = 0
        self.events_sent = 0

    def open_streams(self) -> int:
        return len(self._streams)

    def watched(self) -> int:
        return 0 if self._refresh is None else self._refresh.watched()

    async def events(self, request: web.Request) -> web.StreamResponse:
        """GET /v1/menus/{dispensary}/events"""
        dispensary_id = parse_dispensary_id(request.match_info["dispensary"])
        single_values(request.query, ())
        config = self._context.config.api
        client = client_key(request.remote)
        if self._closing.is_set():
            raise NodeNotReady("the node is draining")
        if len(self._streams) >= config.max_streams:
            self.refused += 1
            raise NodeNotReady(f"{config.max_streams} event streams are open: try again later")
        if self._per_client[client] >= config.max_streams_per_ip:
            self.refused += 1
            raise ClientRateLimited(
                f"at most {config.max_streams_per_ip} event streams per client", retry_after=30
            )
        service = service_of(self._context)
        current = (await service.get_menu(dispensary_id)).record  # the menu must exist
        stream = _Stream(dispensary_id, client, asyncio.Queue(STREAM_QUEUE))

        def on_snapshot(record: SignedRecord) -> None:
            try:
                stream.queue.put_nowait(record)
            except asyncio.QueueFull:  # the handler is behind: it ends the stream next turn
                stream.dropped = True

        previous, backlog = await self._backlog(request.headers.get("Last-Event-ID"), current)
        stop_listening = service.events.listen(dispensary_id, on_snapshot)
        self._streams.add(stream)
        self._per_client[client] += 1
        self.opened += 1
        refresh = self._refresher(service)
        refresh.watch(dispensary_id)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "X-Accel-Buffering": "no",  # nginx: pass events on at once
                **CORS_HEADERS,
            }
        )
        try:
            await response.prepare(request)
            await response.write(b"retry: 5000\n\n")
            for record in backlog:
                previous = await self._send(response, record, previous)
            await self._pump(response, stream, previous or current, config.stream_heartbeat)
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the reader went away, or the node is stopping
        finally:
            stop_listening()
            refresh.unwatch(dispensary_id)
            self._streams.discard(stream)
            self._per_client[client] -= 1
            if self._per_client[client] <= 0:
                del self._per_client[client]
        return response

    async def _pump(
        self,
        response: web.StreamResponse,
        stream: _Stream,
        previous: SignedRecord,
        heartbeat: float,
    ) -> None:
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            while not self._closing.is_set():
                getting = asyncio.ensure_future(stream.queue.get())
                done, _ = await asyncio.wait(
                    {getting, closing}, timeout=heartbeat, return_when=asyncio.FIRST_COMPLETED
                )
                if getting not in done:
                    getting.cancel()
                    if closing in done:
                        break
                    await response.write(b": heartbeat\n\n")
                    continue
                if stream.dropped:
                    self.slow_dropped += 1
                    await response.write(b"event: dropped\ndata: {}\n\n")
                    break
                record = getting.result()
                if record.fetched_at_ms > previous.fetched_at_ms:
                    previous = await self._send(response, record, previous)
        finally:
            closing.cancel()

    async def _send(
        self, response: web.StreamResponse, record: SignedRecord, previous: SignedRecord | None
    ) -> SignedRecord:
        data: dict[str, Any] = {
            "dispensary_id": record.dispensary_id,
            "snapshot": history_entry(record),
            "previous": None if previous is None else history_entry(previous),
            "summary": None,
        }
        if previous is not None and previous is not record:
            before = (await self._opened.get(previous)).menu
            after = (await self._opened.get(record)).menu
            data["summary"] = summary_of(diff_menus(before, after))
        message = f"id: {event_id(record)}\nevent: snapshot\ndata: ".encode()
        await response.write(message + dumps(data) + b"\n\n")
        self.events_sent += 1
        return record

    async def _backlog(
        self, last_event_id: str | None, current: SignedRecord
    ) -> tuple[SignedRecord | None, list[SignedRecord]]:
        """(the snapshot the reader saw last, if still held; the snapshots to send first):
        those after ``Last-Event-ID``, or the current one."""
        match = None if last_event_id is None else _EVENT_ID.fullmatch(last_event_id.strip())
        if match is None:
            return None, [current]
        seen_ms = int(match["ms"])
        history = await service_of(self._context).history(current.dispensary_id, RESUME_HISTORY)
        missed = sorted(
            (record for record in history if record.fetched_at_ms > seen_ms),
            key=lambda record: record.fetched_at_ms,
        )
        if not missed and current.fetched_at_ms > seen_ms:
            missed = [current]
        seen = next((record for record in history if record.fetched_at_ms == seen_ms), None)
        return seen, missed

    def _refresher(self, service: MenuReader) -> RefreshAhead:
        if self._refresh is None:
            self._refresh = RefreshAhead(lambda dispensary_id: service.get_menu(dispensary_id))
        return self._refresh

    async def aclose(self) -> None:
        """End every stream (the node drains) and stop refreshing."""
        self._closing.set()
        if self._refresh is not None:
            await self._refresh.aclose()
        for _ in range(50):  # handlers end at their next turn
            if not self._streams:
                break
            await asyncio.sleep(0.01)
