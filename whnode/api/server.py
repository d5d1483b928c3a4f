"""The HTTP server of a node: aiohttp's runner, behind a connection guard.

aiohttp keeps an idle keep-alive connection for an hour and accepts as many connections as
the descriptor table allows: 300 slow-header (slowloris) and 300 idle connections stayed
open, and past the descriptor limit new clients failed. ``http_runner`` and
``GuardedSite`` bound that:

- **header timeout** (``api.header_timeout``): once a request's first bytes arrive, its
  request line and headers must be complete within this many seconds, else the connection is
  closed. Bytes trickled in do not extend it.
- **idle timeout** (``api.idle_timeout``): a keep-alive connection with no request in
  progress is closed after this many seconds (aiohttp's ``keepalive_timeout``; it also
  bounds a connection that never sends a byte). Peers' HTTP clients close theirs sooner
  (aiohttp's client default is 15 s), so that a server never closes under a client's feet.
- **connection caps** (``api.max_connections`` in total, ``api.max_connections_per_ip`` per
  IP address or IPv6 /64; loopback skips the per-IP cap, as every node of a local network
  shares 127.0.0.1). A connection over a cap first sheds the oldest idle connection (of the
  same IP for the per-IP cap); only when none is idle is the newcomer closed at once. The
  total cap is kept below the process's descriptor limit (raised to its hard limit when
  needed), so that accepting never fails for want of descriptors.
- **penalty**: a client refused for its rate ``PENALTY_REFUSALS`` times within a second
  (``HttpIngress.note_refusal``) loses its connections, and its SYNs are dropped in the
  kernel for ``PENALTY_SECONDS`` (``whnode.dht.blocklist``'s filter, on the listening socket).
- **lingering** (``LINGER_SECONDS``): after answering a request whose body was not read (a
  refused upload), the rest of the body is drained for at most this long, not 10 s.

Every close and refusal is counted by reason in ``HttpIngress`` (``whnode.api.ingress``),
which is also the logger aiohttp reports parser errors to.

The guard sees a connection through a thin protocol wrapper. Whether aiohttp's handler is
idle is read from its ``_request_in_progress`` flag and ``_messages`` queue (the same state
aiohttp's own keep-alive timer reads); tests/api/test_ingress.py fails if that changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
import socket
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Final, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from whnode.api.ingress import HttpIngress
from whnode.api.ratelimit import client_key
from whnode.dht.blocklist import SourceBlocklist

__all__ = [
    "INGRESS_KEY",
    "ConnectionGuard",
    "ConnectionLimits",
    "GuardedSite",
    "http_runner",
    "ingress_of",
]

LOG = logging.getLogger(__name__)

INGRESS_KEY: Final = web.AppKey("whnode_http_ingress", HttpIngress)
LINGER_SECONDS: Final = 2.0
"""Longest time an unread request body is drained after the answer (aiohttp: 10 s)."""
DESCRIPTORS_RESERVED: Final = 256
"""Descriptors kept out of the connection cap: SQLite, the UDP socket, outgoing peer and
upstream connections, the parse pool's pipes."""


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout: float = 10.0
    idle_timeout: float = 30.0
    max_connections: int = 1024
    max_connections_per_ip: int = 64
    exempt_loopback: bool = True

    @classmethod
    def from_api_config(cls, api: Any) -> ConnectionLimits:
        return cls(
            header_timeout=api.header_timeout,
            idle_timeout=api.idle_timeout,
            max_connections=api.max_connections,
            max_connections_per_ip=api.max_connections_per_ip,
        )


def ingress_of(app: web.Application) -> HttpIngress:
    """The app's HttpIngress (created on first use, before the app is frozen)."""
    ingress = app.get(INGRESS_KEY)
    if ingress is None:
        ingress = app[INGRESS_KEY] = HttpIngress()
    return ingress


def http_runner(
    app: web.Application, limits: ConnectionLimits, *, shutdown_timeout: float = 60.0
) -> web.AppRunner:
    """An AppRunner with whnode's timeouts and its quiet logger (see module docstring)."""
    return web.AppRunner(
        app,
        handle_signals=False,
        shutdown_timeout=shutdown_timeout,
        access_log=None,
        keepalive_timeout=limits.idle_timeout,
        lingering_time=LINGER_SECONDS,
        logger=ingress_of(app),
    )


def descriptor_budget(wanted: int) -> int:
    """The connection cap the descriptor limit allows: raises the soft limit towards the hard
    one when ``wanted`` needs it, and returns what fits."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):  # pragma: no cover - not Linux
        return wanted
    needed = wanted + DESCRIPTORS_RESERVED
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(16, min(wanted, soft - DESCRIPTORS_RESERVED))


class _Connection(asyncio.Protocol):
    """Wraps aiohttp's RequestHandler: tells the guard when the connection opens, reads,
    goes idle and closes."""

    __slots__ = (
        "_factory",
        "_guard",
        "_header_timer",
        "_loop",
        "inner",
        "key",
        "last_activity",
        "transport",
    )

    def __init__(self, guard: ConnectionGuard, factory: Any) -> None:
        self._guard = guard
        self._factory = factory
        self.inner: RequestHandler | None = None
        self.transport: asyncio.Transport | None = None
        self.key = ""
        self.last_activity = 0.0
        self._header_timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.get_running_loop()

    # state read from aiohttp's handler ---------------------------------------------------
    def busy(self) -> bool:
        inner = self.inner
        if inner is None:
            return False
        return bool(inner._request_in_progress or inner._messages)

    def idle(self) -> bool:
        """No request in progress and no partial request being read."""
        return not self.busy() and self._header_timer is None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    # asyncio callbacks ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, hence the cast
        self.transport = cast(asyncio.Transport, transport)
        self.last_activity = self._loop.time()
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) and peer else None
        self.key = client_key(host)
        if not self._guard.admit(self, loopback=_is_loopback(host)):
            self.transport.abort()
            self.transport = None
            return
        self.inner = self._factory()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        inner = self.inner
        if inner is None:
            return
        was_idle = not self.busy()
        inner.data_received(data)
        self.last_activity = self._loop.time()
        if self.busy():
            self._stop_header_timer()
        elif was_idle and self._header_timer is None and self.transport is not None:
            self._header_timer = self._loop.call_later(
                self._guard.limits.header_timeout, self._header_timeout
            )

    def eof_received(self) -> None:
        if self.inner is not None:
            self.inner.eof_received()

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        self._guard.release(self)
        inner, self.inner = self.inner, None
        self.transport = None
        if inner is not None:
            inner.connection_lost(exc)

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.inner is not None and not self.busy():
            self._guard.ingress.count_connection("header_timeout")
            self.close()

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None


class ConnectionGuard:
    """The open connections of one listener, oldest first, and the caps on them."""

    def __init__(self, limits: ConnectionLimits, ingress: HttpIngress) -> None:
        self.limits = limits
        self.ingress = ingress
        self.max_connections = descriptor_budget(limits.max_connections)
        if self.max_connections < limits.max_connections:
            LOG.warning(
                "api.max_connections %d does not fit the descriptor limit: %d used",
                limits.max_connections,
                self.max_connections,
            )
        self._open: OrderedDict[_Connection, None] = OrderedDict()
        self._by_ip: dict[str, OrderedDict[_Connection, None]] = {}
        self.blocklists: list[SourceBlocklist] = []
        ingress.on_penalty.append(self.close_client)

    def __len__(self) -> int:
        return len(self._open)

    def protocol_factory(self, server: Any) -> Any:
        """The protocol factory to listen with, wrapping aiohttp's ``server``."""
        return lambda: _Connection(self, server)

    def close_client(self, key: str) -> None:
        """Close every connection of a penalized client ``key`` (IP address or IPv6 /64) and
        drop its new connection attempts in the kernel while the penalty lasts (a BPF filter
        on the listening sockets: its SYNs are discarded, so that a flooder reconnecting in a
        loop costs the node nothing; elsewhere than Linux ``admit`` refuses them)."""
        for connection in list(self._by_ip.get(key, ())):
            connection.close()
        until = self.ingress.penalized.get(key)
        if until is None or not self.blocklists:
            return
        loop = asyncio.get_running_loop()
        # the blocklists count in the loop's time; the ingress in time.monotonic()
        deadline = loop.time() + max(0.0, until - self.ingress.now())
        for blocklist in self.blocklists:
            blocklist.block(key, deadline)
        loop.call_at(deadline + 0.01, self._lift_blocks)

    def _lift_blocks(self) -> None:
        now = asyncio.get_running_loop().time()
        for blocklist in self.blocklists:
            blocklist.expire(now)

    def admit(self, connection: _Connection, *, loopback: bool) -> bool:
        if self.ingress.is_penalized(connection.key):
            self.ingress.count_connection("refused_penalized")
            return False
        per_ip = self._by_ip.get(connection.key)
        if (
            not (loopback and self.limits.exempt_loopback)
            and per_ip is not None
            and len(per_ip) >= self.limits.max_connections_per_ip
            and not self._shed(per_ip)
        ):
            self.ingress.count_connection("refused_per_ip")
            return False
        if len(self._open) >= self.max_connections and not self._shed(self._open):
            self.ingress.count_connection("refused_total")
            return False
        self._open[connection] = None
        self._by_ip.setdefault(connection.key, OrderedDict())[connection] = None
        self.ingress.open_connections = len(self._open)
        return True

    def _shed(self, connections: OrderedDict[_Connection, None]) -> bool:
        """Close the connection idle for the longest time among ``connections``."""
        oldest: _Connection | None = None
        for connection in connections:
            if connection.idle() and (
                oldest is None or connection.last_activity < oldest.last_activity
            ):
                oldest = connection
        if oldest is None:
            return False
        self.ingress.count_connection("shed_idle")
        self.release(oldest)
        oldest.close()
        return True

    def release(self, connection: _Connection) -> None:
        if connection in self._open:
            del self._open[connection]
            per_ip = self._by_ip.get(connection.key)
            if per_ip is not None:
                per_ip.pop(connection, None)
                if not per_ip:
                    del self._by_ip[connection.key]
        self.ingress.open_connections = len(self._open)


class GuardedSite(web.TCPSite):
    """A TCPSite whose connections go through a ConnectionGuard."""

    __slots__ = ("_duplicates", "guard")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str | None,
        port: int,
        *,
        limits: ConnectionLimits,
        ingress: HttpIngress,
        backlog: int = 1024,
    ) -> None:
        super().__init__(runner, host, port, backlog=backlog)
        self.guard = ConnectionGuard(limits, ingress)
        self._duplicates: list[socket.socket] = []

    async def start(self) -> None:
        await web.BaseSite.start(self)  # registers the site with its runner
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self.guard.protocol_factory(server),
            self._host,
            self._port,
            backlog=self._backlog,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
        # filters attach to the socket, not the descriptor: a duplicate to set them through
        self._duplicates = [socket.socket(fileno=os.dup(sock.fileno())) for sock in sockets]
        self.guard.blocklists = [SourceBlocklist(sock) for sock in self._duplicates]

    async def stop(self) -> None:
        await super().stop()
        self.guard.blocklists = []
        for duplicate in self._duplicates:
            duplicate.close()
        self._duplicates = []


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    return host.startswith(("127.", "::ffff:127.")) or host in ("::1", "localhost")
