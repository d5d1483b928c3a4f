"""A flooding source is dropped in the kernel: other peers keep being answered.

Real sockets on loopback addresses of their own (127.0.0.2 floods, 127.0.0.3 is polite);
the node treats loopback like any remote address here (``ip_limit_exempts_loopback`` off).
"""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from tests.dht.support import fast, fleet, start_node, wait_for_condition
from whnode.dht.blocklist import SourceBlocklist
from whnode.dht.contact import PublicKey, node_id_for
from whnode.dht.wire import Hello, RpcName, encode_request
from whnode.testing.clock import eventually


def _socket(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(2)
    return sock


def _ping(sock: socket.socket, port: int) -> bool:
    key = PublicKey(os.urandom(32))
    msg_id = os.urandom(20)
    sock.sendto(
        encode_request(msg_id, RpcName.PING, Hello(node_id_for(key), key).encode()),
        ("127.0.0.1", port),
    )
    try:
        while True:
            data = sock.recv(2048)
            if data[1:21] == msg_id:
                return True
    except TimeoutError:
        return False


async def test_a_flooding_ip_is_blocked_in_the_kernel_and_others_still_answered() -> None:
    config = fast(
        ip_limit_exempts_loopback=False,
        datagrams_per_ip_per_second=50.0,
        datagram_burst_per_ip=100,
        flood_block_after_drops=200,
        flood_block_seconds=5.0,  # outlasts the checks below on a loaded machine
    )
    async with fleet() as nodes:
        node = await start_node(config)
        nodes.append(node)
        flooder = _socket("127.0.0.2")
        polite = _socket("127.0.0.3")
        junk = b"\x00" + os.urandom(100)
        for _ in range(2000):
            flooder.sendto(junk, ("127.0.0.1", node.port))
        await wait_for_condition(lambda: node.statistics().flood_blocks == 1)
        # a socket's queue is first in, first out: once a ping sent now is answered, every
        # datagram queued before it has been read
        assert await asyncio.to_thread(_ping, polite, node.port)
        read = node.statistics().datagrams_received
        for _ in range(2000):  # dropped by the kernel: never read
            flooder.sendto(junk, ("127.0.0.1", node.port))
        assert await asyncio.to_thread(_ping, polite, node.port)
        assert node.statistics().datagrams_received == read + 1  # the polite ping
        # the block ends (after flood_block_seconds, on the node's timer): read again
        await eventually(lambda: asyncio.to_thread(_ping, flooder, node.port), timeout=30)
        flooder.close()
        polite.close()


def _delivered(receiver: socket.socket, sender: socket.socket, address: tuple[str, int]) -> bool:
    sender.sendto(b"x", address)
    receiver.settimeout(0.3)
    try:
        receiver.recv(16)
    except TimeoutError:
        return False
    return True


@pytest.mark.parametrize(
    ("blocked", "dropped"),
    [
        (["::/64"], True),
        (["2001:db8::/64"], False),
        (["2001:db8::/64", "::/64", "127.0.0.9"], True),
    ],
)
def test_the_filter_matches_ipv6_sources_by_their_64(blocked: list[str], dropped: bool) -> None:
    receiver = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    receiver.bind(("::1", 0))
    sender = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    blocklist = SourceBlocklist(receiver)
    for group in blocked:
        assert blocklist.block(group, until=1e9)
    try:
        assert _delivered(receiver, sender, receiver.getsockname()[:2]) is not dropped
        blocklist.expire(now=2e9)  # every block lifted: the filter is detached
        assert _delivered(receiver, sender, receiver.getsockname()[:2])
    finally:
        receiver.close()
        sender.close()


def test_ipv4_datagrams_on_a_dual_stack_socket_are_matched_as_ipv4() -> None:
    receiver = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    receiver.bind(("::", 0))
    port = receiver.getsockname()[1]
    blocked = _socket("127.0.0.2")
    other = _socket("127.0.0.3")
    blocklist = SourceBlocklist(receiver)
    assert blocklist.block("127.0.0.2", until=1e9)
    try:
        assert not _delivered(receiver, blocked, ("127.0.0.1", port))
        assert _delivered(receiver, other, ("127.0.0.1", port))
    finally:
        for sock in (receiver, blocked, other):
            sock.close()
