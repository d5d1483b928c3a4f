"""The hardened Kademlia protocol: kademlia's routing table, whnode's wire rules.

``WhnodeProtocol`` subclasses ``kademlia.protocol.KademliaProtocol`` (and so rpcudp's
``RPCProtocol``) and keeps the routing table (``KBucket``, ``RoutingTable``), but replaces
every path a datagram takes. KADEMLIA.md items fixed here:

1, 2  no value store: ``store`` is answered False, ``find_value`` does not exist.
3, 8  every request and reply is decoded by ``whnode.dht.wire`` (shapes, exact 20-byte ids,
      at most 20 contacts, routable hosts and ports) and ids must equal SHA-1(public key).
4, 5  rpcudp's own timer (``_wait_timeout`` = config.rpc_timeout) ends every request; nothing
      wraps a request in ``wait_for``; a cancelled request cleans its ``_outstanding`` entry,
      and a late reply never touches a finished future. A contact is evicted after
      ``misses_before_eviction`` misses in a row, not one.
7     datagrams are handled synchronously in ``datagram_received`` (no task per datagram);
      every error is caught, counted and logged through a ``LogLimiter``.
9     no value hand-off: a contact entering the table is reported to ``on_table_add``.
10    ``closest()`` sorts the whole table by XOR distance.
11    a reply counts only if it comes from the address the request went to; every source
      address is rate-limited; datagrams over limits.MAX_DATAGRAM_BYTES are dropped.
13    ``error_received`` is counted and logged.
6     SO_RCVBUF is enlarged in ``connection_made``.

Remotely callable: rpcudp dispatches any ``rpc_<name>`` attribute; this class answers only
``ping``, ``find_node`` and ``store`` (the inherited ``rpc_find_value`` and ``rpc_stun`` are
shadowed with None), and datagrams are dispatched through an explicit table anyway. rpcudp's
``__getattr__`` (any unknown attribute becomes a remote call) is disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import ipaddress
import logging
import os
import socket
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterator
from functools import partial
from typing import Any, Final, NoReturn, cast

from kademlia.node import Node
from kademlia.protocol import KademliaProtocol
from kademlia.routing import RoutingTable

from whnode import limits
from whnode.dht.amplification import AmplificationGuard
from whnode.dht.blocklist import SourceBlocklist
from whnode.dht.config import DhtConfig
from whnode.dht.contact import Contact, NodeId, is_loopback
from whnode.dht.exceptions import DhtUsageError, IdentityMismatch, InvalidMessage
from whnode.dht.packing import Packed
from whnode.dht.ratelimit import LogLimiter, SourceRateLimiter
from whnode.dht.statistics import DhtCounters
from whnode.dht.wire import (
    MSG_ID_BYTES,
    FrameKind,
    Hello,
    RpcName,
    decode_body,
    decode_find_node_args,
    decode_find_node_reply,
    decode_header,
    decode_ping_args,
    decode_ping_reply,
    decode_request,
    encode_frame,
    encode_request,
    packed_contact,
)
from whnode.record.puzzle import solves

__all__ = ["RoutingNode", "WhnodeProtocol", "ip_group"]

LOG = logging.getLogger(__name__)

Address = tuple[str, int]
Reply = tuple[bool, object]

IDENTITY_REASONS = frozenset({"node_id", "identity", "puzzle"})
MAX_SUSPECTS: Final = limits.MAX_SUSPECTS
"""See whnode.limits."""
MIN_STALL_SECONDS: Final = 0.1
"""Floor of the adaptive stall time (``WhnodeProtocol.stall_after``)."""
MAX_DEPARTED: Final = 256
"""Evicted contacts remembered for recall (``WhnodeProtocol.departed``)."""


class RoutingNode(Node):  # type: ignore[misc]
    """A routing-table entry: kademlia's ``Node`` carrying the whnode ``Contact``."""

    def __init__(self, contact: Contact, seen: float = 0.0) -> None:
        super().__init__(contact.node_id, contact.host, contact.port)
        self.contact = contact
        self.seen = seen
        """Event-loop time of the datagram from this node that (re)entered it in the table."""


class _RoutingTable(RoutingTable):  # type: ignore[misc]
    """kademlia's table, asking the protocol (not ``ensure_future``) to check a full bucket's
    least recently seen contact, so that the check is an owned, de-duplicated task."""

    def add_contact(self, node: RoutingNode) -> None:
        index = self.get_bucket_for(node)
        bucket = self.buckets[index]
        if bucket.add_node(node):
            return
        if bucket.has_in_range(self.node) or bucket.depth() % 5 != 0:
            self.split_bucket(index)
            self.add_contact(node)
        else:
            self.protocol.check_head(bucket.head())


class _NoStorage:
    """The value store handed to kademlia: empty, and refusing writes."""

    def __setitem__(self, key: bytes, value: object) -> None:
        raise DhtUsageError("the DHT stores no values")

    def get(self, key: bytes, default: object = None) -> object:
        return default

    def __iter__(self) -> Iterator[tuple[bytes, object]]:
        return iter(())


class WhnodeProtocol(KademliaProtocol):  # type: ignore[misc]
    """One node's datagram endpoint and routing table."""

    rpc_find_value = None
    """Removed: whnode keeps no values in the DHT (KADEMLIA.md 1-3)."""
    rpc_stun = None
    """Removed: an address oracle nobody needs, and an amplification helper."""

    def __init__(
        self,
        hello: Hello,
        config: DhtConfig,
        counters: DhtCounters,
        *,
        on_table_add: Callable[[Contact], None],
    ) -> None:
        super().__init__(Node(hello.node_id), _NoStorage(), config.ksize)
        self._wait_timeout = config.rpc_timeout
        self._outstanding: dict[bytes, tuple[asyncio.Future[Reply], asyncio.TimerHandle]] = {}
        self.router = _RoutingTable(self, config.table_bucket_size, self.source_node)
        self.hello = hello
        self.config = config
        self.counters = counters
        self._on_table_add = on_table_add
        self._destinations: dict[bytes, Address] = {}
        self._misses: dict[bytes, int] = {}
        self._suspects: OrderedDict[bytes, float] = OrderedDict()
        self._srtt: float | None = None
        self._rttvar = 0.0
        self.departed: OrderedDict[bytes, tuple[Contact, float]] = OrderedDict()
        """Contacts evicted for missing requests, with the eviction time (at most
        MAX_DEPARTED, oldest first): maintenance pings them now and then, so that the two
        sides of a healed partition find each other again."""
        self._head_checks: set[bytes] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._limiter = SourceRateLimiter(
            config.datagrams_per_source_per_second,
            config.datagram_burst_per_source,
            limits.MAX_TRACKED_SOURCES,
        )
        self._ip_limiter = SourceRateLimiter(
            config.datagrams_per_ip_per_second,
            config.datagram_burst_per_ip,
            limits.MAX_TRACKED_SOURCES,
        )
        self._loopback_exempt = config.ip_limit_exempts_loopback
        self._log = LogLimiter(LOG, config.log_interval)
        self._handlers: dict[str, Callable[..., object]] = {
            RpcName.PING: self.rpc_ping,
            RpcName.FIND_NODE: self.rpc_find_node,
            RpcName.STORE: self.rpc_store,
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self._family = socket.AF_INET
        self._closed = False
        self.receive_buffer_bytes = 0
        """SO_RCVBUF granted by the kernel."""
        self.blocklist = SourceBlocklist(None)
        self._probe_bytes = len(encode_request(bytes(MSG_ID_BYTES), RpcName.PING, hello.encode()))
        self.amplification = AmplificationGuard(
            factor=config.amplification_factor, verified_seconds=config.verified_seconds
        )
        self._drop_window = 0.0
        self._drops_by_ip: dict[str, int] = {}

    def __getattr__(self, name: str) -> NoReturn:
        # rpcudp turns any unknown attribute into a remote call; here a typo stays a typo.
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    # ------------------------------------------------------------------ asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's UDPTransport is not an asyncio.DatagramTransport subclass, hence the cast.
        self.transport = cast(asyncio.DatagramTransport, transport)
        self._loop = asyncio.get_running_loop()
        sock = transport.get_extra_info("socket")
        if sock is None:
            return
        self._family = sock.family
        if self.config.flood_block_seconds > 0:
            self.blocklist = SourceBlocklist(sock, max_blocked=self.config.flood_block_max)
        wanted = self.config.receive_buffer_bytes
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, wanted)
            granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            if granted < wanted and hasattr(socket, "SO_RCVBUFFORCE"):
                # beyond net.core.rmem_max: allowed with CAP_NET_ADMIN (e.g. root)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUFFORCE, wanted)
                    granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
            self.receive_buffer_bytes = granted
            if granted < wanted:
                LOG.warning(
                    "UDP receive buffer is %d bytes, not the %d asked for: raise the"
                    " net.core.rmem_max sysctl so that a flood cannot crowd out peers",
                    granted,
                    wanted,
                )
        except OSError as exc:
            LOG.warning("cannot set SO_RCVBUF to %d: %s", wanted, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def error_received(self, exc: Exception) -> None:
        self.counters.send_errors += 1
        self._log.log(self._now(), "send_error", logging.WARNING, "UDP socket error: %s", exc)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.counters.datagrams_received += 1
        now = self._now()
        try:
            self._receive(data, addr, now)
        except Exception as exc:  # a bug: count it, log it (rate-limited), keep serving
            self.counters.handler_errors += 1
            self._log.log(
                now,
                "handler",
                logging.ERROR,
                "error handling a datagram from %s",
                addr,
                exc_info=exc,
            )

    # ------------------------------------------------------------------ receiving
    def _receive(self, data: bytes, addr: tuple[Any, ...], now: float) -> None:
        if len(data) > limits.MAX_DATAGRAM_BYTES:
            self.counters.oversize_datagrams += 1
            self._log.log(
                now, "oversize", logging.INFO, "%d-byte datagram from %s dropped", len(data), addr
            )
            return
        source = self._source_address(addr)
        if not self._limiter.allow(source, now):
            self.counters.rate_limited_drops += 1
            self._log.log(now, "rate_limited", logging.INFO, "rate limiting %s", source)
            self._count_drop(source[0], now)
            return
        group = ip_group(source[0])
        if not (
            (self._loopback_exempt and _is_loopback(source[0]))
            or self._ip_limiter.allow((group, 0), now)
        ):
            self.counters.rate_limited_drops += 1
            self.counters.ip_rate_limited_drops += 1
            self._log.log(now, "ip_rate_limited", logging.INFO, "rate limiting IP %s", group)
            self._count_drop(source[0], now)
            return
        try:
            kind, msg_id = decode_header(data)
        except InvalidMessage as exc:
            self._refuse(now, source, exc, reply=False)
            return
        if kind is FrameKind.REQUEST:
            self._answer(data, msg_id, source, now)
        else:
            self._match_reply(data, msg_id, source, now)

    def _count_drop(self, host: str, now: float) -> None:
        """Count a rate-limited datagram; block its source in the kernel once it floods."""
        if not self.blocklist.available or (self._loopback_exempt and _is_loopback(host)):
            return
        if now - self._drop_window >= 1.0:
            self._drop_window = now
            self._drops_by_ip.clear()
        group = ip_group(host)
        drops = self._drops_by_ip.get(group, 0) + 1
        self._drops_by_ip[group] = drops
        if drops < self.config.flood_block_after_drops:
            return
        seconds = self.config.flood_block_seconds
        if self.blocklist.block(group, now + seconds):
            self.counters.flood_blocks += 1
            self._drops_by_ip.pop(group, None)
            self._log.log(
                now,
                "flood_block",
                logging.WARNING,
                "blocking flooding source %s for %.0f s",
                group,
                seconds,
            )
            if self._loop is not None:
                self._loop.call_later(seconds, self._lift_blocks)

    def _lift_blocks(self) -> None:
        if not self._closed:
            self.blocklist.expire(self._now())

    def _answer(self, data: bytes, msg_id: bytes, source: Address, now: float) -> None:
        try:
            request = decode_request(decode_body(data))
        except InvalidMessage as exc:
            self._refuse(now, source, exc, reply=False)
            return
        handler = self._handlers.get(request.name)
        if handler is None:
            self.counters.unknown_rpcs += 1
            self._log.log(
                now, "unknown_rpc", logging.INFO, "unknown rpc %.40r from %s", request.name, source
            )
            return
        try:
            body = handler(source, *request.args)
        except InvalidMessage as exc:
            self._refuse(now, source, exc, reply=False)
            return
        self.counters.rpcs_received += 1
        datagram = encode_frame(FrameKind.REPLY, msg_id, body)
        if len(datagram) > limits.MAX_DATAGRAM_BYTES:  # cannot happen with the caps in limits
            self.counters.send_errors += 1
            self._log.log(
                now, "oversize_reply", logging.ERROR, "%d-byte reply not sent", len(datagram)
            )
            return
        guard = self.amplification
        if (self._loopback_exempt and _is_loopback(source[0])) or guard.is_verified(source, now):
            self._send(datagram, source)
            return
        # an address that never proved it receives: at most factor x what it sent us
        guard.received(source, len(data))
        allowance = guard.allowance(source)
        probe = self._probe_bytes
        probing = allowance >= probe and guard.probe_due(source, now)
        if probing:  # the ping that can verify the address comes before extra contacts
            allowance -= probe
        if len(datagram) > allowance:
            datagram = self._within(request.name, msg_id, body, allowance)
        if datagram:
            guard.sent(source, len(datagram))
            self._send(datagram, source)
        if probing:
            guard.sent(source, probe)
            guard.probed(source, now)
            self.counters.verification_pings += 1
            self.spawn(self.ping_address(source))

    def _within(self, name: str, msg_id: bytes, body: object, allowance: int) -> bytes:
        """The reply cut to ``allowance`` bytes (a find_node keeps its closest contacts that
        fit), or b"" when even the shortest form does not fit (the reply is not sent)."""
        if name == RpcName.FIND_NODE and isinstance(body, list) and isinstance(body[-1], list):
            contacts = body[-1]
            base = len(encode_frame(FrameKind.REPLY, msg_id, [*body[:-1], []]))
            size, keep = base + 2, 0  # + 2: the array header may grow from 1 to 3 bytes
            for contact in contacts:
                size += len(contact.data) if isinstance(contact, Packed) else 64
                if size > allowance:
                    break
                keep += 1
            if base <= allowance:
                self.counters.amplification_trimmed += 1
                return encode_frame(FrameKind.REPLY, msg_id, [*body[:-1], contacts[:keep]])
        self.counters.amplification_dropped += 1
        return b""

    def _match_reply(self, data: bytes, msg_id: bytes, source: Address, now: float) -> None:
        # The id and the source are checked before the body is even decoded.
        entry = self._outstanding.get(msg_id)
        if entry is None:
            self.counters.unexpected_replies += 1
            return
        if self._destinations.get(msg_id) != source:
            self.counters.wrong_source_replies += 1
            self._log.log(
                now,
                "wrong_source",
                logging.WARNING,
                "reply from %s to a request sent to %s ignored",
                source,
                self._destinations.get(msg_id),
            )
            return
        del self._outstanding[msg_id]
        del self._destinations[msg_id]
        self.amplification.verify(source, now)
        future, timer = entry
        timer.cancel()
        self.counters.replies_received += 1
        try:
            body = decode_body(data)
        except InvalidMessage as exc:
            body = exc  # the caller's reply decoder refuses it (and counts a miss): fail fast
        if not future.done():
            future.set_result((True, body))

    def _refuse(self, now: float, source: Address, exc: InvalidMessage, *, reply: bool) -> None:
        if exc.reason in IDENTITY_REASONS:
            self.counters.rejected_ids += 1
            category = "rejected_id"
        elif reply:
            self.counters.invalid_replies += 1
            category = "invalid_reply"
        else:
            self.counters.malformed_datagrams += 1
            category = "malformed"
        self._log.log(now, category, logging.INFO, "%s from %s: %s", category, source, exc)

    # ------------------------------------------------------------------ remote procedures
    def rpc_ping(self, sender: Address, *args: object) -> object:
        hello = self._not_us(decode_ping_args(args))
        self._welcome(hello.contact(*sender))
        return self.hello.encode()

    def rpc_find_node(self, sender: Address, *args: object) -> object:
        hello, target = decode_find_node_args(args)
        self._not_us(hello)
        self._welcome(hello.contact(*sender))
        closest = self.closest(
            target, self.config.contacts_per_reply, exclude=hello.node_id, trusted_only=True
        )
        if not is_loopback(sender[0]):
            closest = [contact for contact in closest if not is_loopback(contact.host)]
        return [*self.hello.encode(), [packed_contact(contact) for contact in closest]]

    def _not_us(self, hello: Hello) -> Hello:
        if hello.node_id == self.hello.node_id:
            raise IdentityMismatch("a request claiming this node's own id")
        if not self.solves_puzzle(hello.node_id):
            raise InvalidMessage("puzzle", "node id under the puzzle difficulty")
        return hello

    def solves_puzzle(self, node_id: bytes) -> bool:
        """Whether ``node_id`` meets config.node_id_difficulty (counted when it does not)."""
        if solves(node_id, self.config.node_id_difficulty):
            return True
        self.counters.weak_ids += 1
        return False

    def rpc_store(self, sender: Address, *args: object) -> object:
        """The open store is disabled (KADEMLIA.md 1): every store is refused."""
        self.counters.store_refused += 1
        return False

    # ------------------------------------------------------------------ requests
    async def ping_address(self, address: Address) -> Contact | None:
        """Ping an address whose node id is unknown (a seed); the verified contact or None."""
        ok, body = await self._request(address, RpcName.PING, self.hello.encode())
        if not ok:
            return None
        try:
            hello = decode_ping_reply(body)
        except InvalidMessage as exc:
            self._refuse(self._now(), address, exc, reply=True)
            return None
        if hello.node_id == self.hello.node_id or not self.solves_puzzle(hello.node_id):
            return None
        contact = hello.contact(*address)
        self._welcome(contact)
        return contact

    async def request_ping(self, contact: Contact) -> bool:
        """Ping a known contact; a miss (or another id answering) counts towards eviction."""
        ok, body = await self._request(contact.address, RpcName.PING, self.hello.encode())
        if ok:
            try:
                hello = decode_ping_reply(body)
            except InvalidMessage as exc:
                self._refuse(self._now(), contact.address, exc, reply=True)
            else:
                if hello.node_id == contact.node_id and self.solves_puzzle(hello.node_id):
                    self._welcome(hello.contact(*contact.address))
                    return True
                self.counters.rejected_ids += 1
        self.record_miss(contact.node_id)
        return False

    async def request_find_node(
        self, contact: Contact, target: bytes
    ) -> tuple[Contact, list[Contact]] | None:
        """Ask ``contact`` for its closest contacts to ``target``.

        Returns the responder (with the routing-only flag from its own hello) and the
        reachable contacts it listed, or None when it did not answer, answered garbage, or
        answered with another id than ``contact``'s. Never raises for a peer's misbehaviour.
        """
        args = [*self.hello.encode(), target]
        ok, body = await self._request(contact.address, RpcName.FIND_NODE, args)
        if ok:
            try:
                hello, found = decode_find_node_reply(
                    body, allow_loopback=is_loopback(contact.host)
                )
            except InvalidMessage as exc:
                self._refuse(self._now(), contact.address, exc, reply=True)
            else:
                if hello.node_id == contact.node_id and self.solves_puzzle(hello.node_id):
                    responder = hello.contact(*contact.address)
                    self._welcome(responder)
                    return responder, [
                        item
                        for item in found
                        if self.reachable(item) and self.solves_puzzle(item.node_id)
                    ]
                self.counters.rejected_ids += 1
        self.record_miss(contact.node_id)
        return None

    async def _request(self, address: Address, name: RpcName, args: list[object]) -> Reply:
        """Send one request and wait for rpcudp's reply or timeout (never ``wait_for``)."""
        loop = self._loop
        if loop is None or self.transport is None or self._closed:
            return (False, None)
        msg_id = os.urandom(MSG_ID_BYTES)
        datagram = encode_request(msg_id, name, args)
        if len(datagram) > limits.MAX_DATAGRAM_BYTES:
            raise DhtUsageError(f"{name} request of {len(datagram)} bytes")
        future: asyncio.Future[Reply] = loop.create_future()
        timer = loop.call_later(self._wait_timeout, self._timeout, msg_id)
        self._outstanding[msg_id] = (future, timer)
        self._destinations[msg_id] = address
        future.add_done_callback(partial(self._forget, msg_id))
        self.counters.rpcs_sent += 1
        sent = loop.time()
        self._send(datagram, address)
        reply = await future
        if reply[0]:
            self._observe_rtt(loop.time() - sent)
        return reply

    def _observe_rtt(self, sample: float) -> None:
        """Smoothed round-trip time and its variation, as TCP keeps them (RFC 6298)."""
        if self._srtt is None:
            self._srtt, self._rttvar = sample, sample / 2
            return
        self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self._srtt - sample)
        self._srtt = 0.875 * self._srtt + 0.125 * sample

    def stall_after(self) -> float:
        """Seconds after which an unanswered request counts as stalled: the smoothed round
        trip plus four times its variation (TCP's retransmission timeout, RFC 6298), at least
        MIN_STALL_SECONDS and at most config.stall_timeout (also the value before any
        answer). A request still unanswered then is most likely lost or its node gone."""
        if self._srtt is None:
            return self.config.stall_timeout
        adaptive = max(MIN_STALL_SECONDS, self._srtt + 4 * self._rttvar)
        return min(self.config.stall_timeout, adaptive)

    def _forget(self, msg_id: bytes, future: asyncio.Future[Reply]) -> None:
        # A cancelled caller must not leave its entry behind (KADEMLIA.md 5).
        if future.cancelled():
            entry = self._outstanding.pop(msg_id, None)
            self._destinations.pop(msg_id, None)
            if entry is not None:
                entry[1].cancel()

    def _timeout(self, msg_id: bytes) -> None:
        entry = self._outstanding.pop(msg_id, None)
        self._destinations.pop(msg_id, None)
        if entry is None:
            return
        self.counters.rpc_timeouts += 1
        if not entry[0].done():
            entry[0].set_result((False, None))

    def _send(self, datagram: bytes, address: Address) -> None:
        if self.transport is None or self._closed:
            return
        self.counters.datagrams_sent += 1
        self.transport.sendto(datagram, self._socket_address(address))

    # ------------------------------------------------------------------ routing table
    def _welcome(self, contact: Contact) -> None:
        """Add or refresh a contact that just talked to us directly (no value hand-off)."""
        if contact.node_id == self.hello.node_id or not self.solves_puzzle(contact.node_id):
            return
        node = RoutingNode(contact, self._now())
        bucket = self.router.buckets[self.router.get_bucket_for(node)]
        known = bucket.nodes.get(node.id) or bucket.replacement_nodes.get(node.id)
        if known is None and self._over_ip_cap(contact):
            self.counters.ip_cap_refusals += 1
            return
        if known is not None and (known.ip, known.port) != (node.ip, node.port):
            # The first address of an id is kept until it fails: a newcomer claiming a
            # known id (anyone can send someone else's public key) cannot take it over. The
            # known address is checked, so that a node that really moved (restarted on
            # another port) is let in once the old address has missed enough pings.
            self.counters.address_conflicts += 1
            self.check_head(known)
            return
        self._misses.pop(node.id, None)
        self._suspects.pop(node.id, None)
        self.departed.pop(node.id, None)
        was_member = node.id in bucket.nodes
        self.router.add_contact(node)
        if not was_member and not self.router.is_new_node(node):
            self._on_table_add(contact)

    def _over_ip_cap(self, contact: Contact) -> bool:
        """Whether the table already holds config.ids_per_ip ids from ``contact``'s IP."""
        if self.config.id_caps_exempt_loopback and _is_loopback(contact.host):
            return False
        group = ip_group(contact.host)
        held = 0
        for bucket in self.router.buckets:
            for entry in (*bucket.nodes.values(), *bucket.replacement_nodes.values()):
                if ip_group(entry.ip) == group:
                    held += 1
                    if held >= self.config.ids_per_ip:
                        return True
        return False

    def forget(self, node_id: bytes) -> None:
        """Drop a contact from the routing table (e.g. an impostor at a pinned seed address)."""
        bucket = self.router.buckets[self.router.get_bucket_for(Node(node_id))]
        node = bucket.nodes.get(node_id) or bucket.replacement_nodes.get(node_id)
        if node is not None:
            self.router.remove_contact(node)

    def welcome_if_new(self, node: RoutingNode) -> None:
        """kademlia's hook, without its store hand-off (KADEMLIA.md 9)."""
        self._welcome(node.contact)

    def bucket_has_room(self, key: bytes) -> bool:
        """Whether the k-bucket that ``key`` falls in is neither full nor holding
        replacements: every node this node has heard of in that range is in the table."""
        bucket = self.router.buckets[self.router.get_bucket_for(Node(key))]
        return len(bucket.nodes) < bucket.ksize and not bucket.replacement_nodes

    def is_suspect(self, node_id: bytes) -> bool:
        """Whether ``node_id`` missed a request within config.suspect_seconds."""
        until = self._suspects.get(node_id)
        if until is None:
            return False
        if until > self._now():
            return True
        del self._suspects[node_id]
        return False

    def mark_suspect(self, node_id: bytes) -> None:
        """Suspect ``node_id`` (a request to it stalled, or missed) for config.suspect_seconds,
        or until any datagram from it arrives."""
        if self.config.suspect_seconds > 0:
            self._suspects[node_id] = self._now() + self.config.suspect_seconds
            self._suspects.move_to_end(node_id)
            while len(self._suspects) > MAX_SUSPECTS:
                self._suspects.popitem(last=False)

    def record_miss(self, node_id: bytes) -> None:
        """Count an unanswered request; evict after config.misses_before_eviction in a row."""
        self.mark_suspect(node_id)
        bucket = self.router.buckets[self.router.get_bucket_for(Node(node_id))]
        node = bucket.nodes.get(node_id) or bucket.replacement_nodes.get(node_id)
        if node is None:
            return
        misses = self._misses.get(node_id, 0) + 1
        if misses < self.config.misses_before_eviction:
            self._misses[node_id] = misses
            # Settle it now rather than at the next maintenance round: a live node answers
            # the ping and is cleared, a dead one misses again and is evicted after
            # misses_before_eviction pings, a few rpc_timeouts after it first failed.
            self.check_head(node)
            return
        self._misses.pop(node_id, None)
        before = set(bucket.nodes)
        self.router.remove_contact(node)
        self.counters.evictions += 1
        self.departed[node_id] = (node.contact, self._now())
        self.departed.move_to_end(node_id)
        while len(self.departed) > MAX_DEPARTED:
            self.departed.popitem(last=False)
        for promoted in set(bucket.nodes) - before:
            self._on_table_add(bucket.nodes[promoted].contact)

    def check_head(self, node: RoutingNode) -> None:
        """Ping a table contact whose liveness matters now (once at a time): the least
        recently seen one of a full bucket that met a newcomer, or a known address that
        another address claims."""
        if self._closed or node.id in self._head_checks:
            return
        self._head_checks.add(node.id)
        self.spawn(self._check_head(node))

    async def _check_head(self, node: RoutingNode) -> None:
        """Ping until the contact answers or, after misses_before_eviction misses in a row,
        leaves the table."""
        try:
            while not self._closed and not await self.request_ping(node.contact):
                if not self._in_table(node.id):
                    break
        finally:
            self._head_checks.discard(node.id)

    def _in_table(self, node_id: bytes) -> bool:
        bucket = self.router.buckets[self.router.get_bucket_for(Node(node_id))]
        return node_id in bucket.nodes or node_id in bucket.replacement_nodes

    def closest(
        self,
        target: bytes,
        count: int,
        *,
        exclude: bytes | None = None,
        trusted_only: bool = False,
    ) -> list[Contact]:
        """The ``count`` table contacts closest to ``target``, sorted (KADEMLIA.md 10);
        ``trusted_only`` leaves suspects out (find_node replies: a node that just failed us is
        not recommended to others)."""
        key = int.from_bytes(target, "big")
        nodes = [
            node
            for bucket in self.router.buckets
            for node in bucket.nodes.values()
            if node.id != exclude and not (trusted_only and self.is_suspect(node.id))
        ]
        nearest = heapq.nsmallest(count, nodes, key=lambda node: node.long_id ^ key)
        return [node.contact for node in nearest]

    def touch_bucket(self, target: bytes) -> None:
        """Mark the bucket covering ``target`` as used (it needs no refresh)."""
        self.router.buckets[self.router.get_bucket_for(Node(target))].touch_last_updated()

    def stale_bucket_ids(self, now: float) -> list[NodeId]:
        """A random id in each bucket unused for config.refresh_interval seconds."""
        ids = []
        for bucket in self.router.buckets:
            if now - bucket.last_updated >= self.config.refresh_interval:
                low, high = bucket.range
                value = low + int.from_bytes(os.urandom(21), "big") % (high - low + 1)
                ids.append(NodeId(min(value, 2**160 - 1).to_bytes(20, "big")))
        return ids

    def suspect_contacts(self) -> list[Contact]:
        """Table contacts that missed a request lately (maintenance pings them)."""
        return [
            node.contact
            for bucket in self.router.buckets
            for node in bucket.nodes.values()
            if self.is_suspect(node.id)
        ]

    def silent_contacts(self, now: float, older_than: float) -> list[Contact]:
        """Table contacts not heard from for ``older_than`` seconds, longest silent first."""
        silent = [
            node
            for bucket in self.router.buckets
            for node in bucket.nodes.values()
            if now - node.seen >= older_than
        ]
        silent.sort(key=lambda node: node.seen)
        return [node.contact for node in silent]

    def contacts(self) -> list[Contact]:
        return [node.contact for bucket in self.router.buckets for node in bucket.nodes.values()]

    def level_counts(self) -> dict[int, int]:
        """Table contacts per distance level (leading bits shared with this node's id)."""
        own = int.from_bytes(self.hello.node_id, "big")
        counts: dict[int, int] = {}
        for bucket in self.router.buckets:
            for node in bucket.nodes.values():
                level = 160 - (node.long_id ^ own).bit_length()
                counts[level] = counts.get(level, 0) + 1
        return counts

    def table_size(self) -> int:
        return sum(len(bucket) for bucket in self.router.buckets)

    def outstanding(self) -> int:
        return len(self._outstanding)

    def tracked_sources(self) -> int:
        return len(self._limiter)

    @property
    def family(self) -> int:
        """The socket's address family (AF_INET or AF_INET6)."""
        return int(self._family)

    def reachable(self, contact: Contact) -> bool:
        """Whether this socket can send to ``contact`` (and it is not this node)."""
        if contact.node_id == self.hello.node_id:
            return False
        return self._family == socket.AF_INET6 or ":" not in contact.host

    # ------------------------------------------------------------------ kademlia's call_*
    async def call_ping(self, node_to_ask: RoutingNode) -> bool:
        return await self.request_ping(node_to_ask.contact)

    async def call_find_node(self, node_to_ask: object, node_to_find: object) -> NoReturn:
        raise DhtUsageError("use request_find_node (validated) instead")

    async def call_find_value(self, node_to_ask: object, node_to_find: object) -> NoReturn:
        raise DhtUsageError("the DHT stores no values")

    async def call_store(self, node_to_ask: object, key: object, value: object) -> NoReturn:
        raise DhtUsageError("the DHT stores no values")

    def handle_call_response(self, result: Reply, node: RoutingNode) -> Reply:
        if result[0]:
            self._welcome(node.contact)
        else:
            self.record_miss(node.id)
        return result

    # ------------------------------------------------------------------ lifetime
    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a coroutine owned by this protocol (cancelled by ``aclose``)."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self.adopt(task)
        return task

    def adopt(self, task: asyncio.Task[Any]) -> None:
        """Take ownership of a task (e.g. a lookup request still in flight at the deadline)."""
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.counters.handler_errors += 1
            self._log.log(self._now(), "task", logging.ERROR, "DHT task failed", exc_info=exc)

    def close(self) -> None:
        """Fail every outstanding request and stop accepting work (transport left open)."""
        self._closed = True
        for future, timer in self._outstanding.values():
            timer.cancel()
            if not future.done():
                future.set_result((False, None))
        self._outstanding.clear()
        self._destinations.clear()
        # The tables a flood of sources fills (up to MAX_TRACKED_SOURCES each) are freed
        # now: a cancelled task's traceback may keep this protocol alive for a while.
        self._limiter.clear()
        self._ip_limiter.clear()
        self.amplification.clear()
        self._suspects.clear()
        self._drops_by_ip.clear()

    async def aclose(self) -> None:
        self.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ helpers
    def _now(self) -> float:
        return self._loop.time() if self._loop is not None else 0.0

    def _source_address(self, addr: tuple[Any, ...]) -> Address:
        host = str(addr[0])
        if self._family == socket.AF_INET6:
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                return (host, int(addr[1]))
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                ip = ip.ipv4_mapped
            host = str(ip)
        return (host, int(addr[1]))

    def _socket_address(self, address: Address) -> Address:
        if self._family == socket.AF_INET6 and ":" not in address[0]:
            return (f"::ffff:{address[0]}", address[1])
        return address


@functools.lru_cache(maxsize=4096)
def ip_group(host: str) -> str:
    """The per-IP rate-limit key of a source host: the IPv4 address, or the IPv6 /64 (one
    subscriber usually holds a whole /64)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))
    return str(ip)


@functools.lru_cache(maxsize=4096)
def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
