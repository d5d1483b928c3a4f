"""Drop a flooding source in the kernel, before its datagrams reach the socket buffer.

One host sending 150,000 datagrams a second fills a UDP socket's receive buffer faster than
Python can read it, whatever the per-source limits do after reading: the kernel then drops
datagrams from everyone, legitimate peers included. A source whose datagrams the per-IP
token bucket keeps refusing (``block_after_drops`` refusals within one second) is therefore
added to a classic BPF filter attached to the socket (``SO_ATTACH_FILTER``, Linux; no
privilege needed): the kernel discards its datagrams before they are queued, so they cost
the node neither buffer space nor CPU. A block lasts ``block_seconds``; a source still
flooding when it ends is blocked again within a second. Blocked: an IPv4 address, or an
IPv6 /64 (the same groups as the per-IP rate limit). At most ``max_blocked`` at once (the
oldest block is lifted first). Elsewhere than Linux the filter is unavailable and the
per-IP bucket alone applies.

The filter reads the source address from the network header (``SKF_NET_OFF``): IPv4 source
at offset 12, IPv6 source at offset 8 (the first 8 bytes are the /64); an IPv4 datagram
reaching a dual-stack IPv6 socket has an IPv4 header, hence the version check.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import socket
import struct
import sys
from collections import OrderedDict
from typing import Final

__all__ = ["SourceBlocklist", "filter_program"]

LOG = logging.getLogger(__name__)

SO_ATTACH_FILTER: Final = 26
SO_DETACH_FILTER: Final = 27
SKF_NET_OFF: Final = -0x100000

_LD_W_ABS: Final = 0x00 | 0x00 | 0x20  # BPF_LD | BPF_W | BPF_ABS
_LD_B_ABS: Final = 0x00 | 0x10 | 0x20  # BPF_LD | BPF_B | BPF_ABS
_AND_K: Final = 0x04 | 0x50 | 0x00  # BPF_ALU | BPF_AND | BPF_K
_JEQ_K: Final = 0x05 | 0x10 | 0x00  # BPF_JMP | BPF_JEQ | BPF_K
_JA: Final = 0x05 | 0x00  # BPF_JMP | BPF_JA
_RET_K: Final = 0x06
ACCEPT: Final = 0xFFFFFFFF
DROP: Final = 0


def _insn(code: int, jt: int, jf: int, k: int) -> tuple[int, int, int, int]:
    return (code, jt, jf, k & 0xFFFFFFFF)


def filter_program(groups: list[str]) -> list[tuple[int, int, int, int]]:
    """A BPF program (code, jt, jf, k) dropping datagrams from ``groups``: IPv4 addresses
    ("192.0.2.1") and IPv6 /64 networks ("2001:db8::/64"); everything else is accepted."""
    v4 = [int(ipaddress.IPv4Address(g)) for g in groups if "/" not in g]
    v6 = [int(ipaddress.IPv6Network(g).network_address) >> 64 for g in groups if "/" in g]
    program: list[tuple[int, int, int, int]] = []
    # A = version nibble of the network header
    program.append(_insn(_LD_B_ABS, 0, 0, SKF_NET_OFF))
    program.append(_insn(_AND_K, 0, 0, 0xF0))
    v4_block: list[tuple[int, int, int, int]] = [_insn(_LD_W_ABS, 0, 0, SKF_NET_OFF + 12)]
    for index, address in enumerate(v4):
        remaining = len(v4) - index - 1
        # match: jump to the DROP just after the remaining tests; else next test
        v4_block.append(_insn(_JEQ_K, remaining + 1, 0, address))
    v4_block.append(_insn(_RET_K, 0, 0, ACCEPT))
    v4_block.append(_insn(_RET_K, 0, 0, DROP))
    v6_block: list[tuple[int, int, int, int]] = []
    for high in v6:
        upper, lower = high >> 32, high & 0xFFFFFFFF
        # load the first word of the source; if unequal skip this entry's 3 other insns
        v6_block.append(_insn(_LD_W_ABS, 0, 0, SKF_NET_OFF + 8))
        v6_block.append(_insn(_JEQ_K, 0, 3, upper))
        v6_block.append(_insn(_LD_W_ABS, 0, 0, SKF_NET_OFF + 12))
        v6_block.append(_insn(_JEQ_K, 0, 1, lower))
        v6_block.append(_insn(_RET_K, 0, 0, DROP))
    v6_block.append(_insn(_RET_K, 0, 0, ACCEPT))
    # if version == 4: v4 block, else v6 block
    program.append(_insn(_JEQ_K, 0, len(v4_block), 0x40))
    program.extend(v4_block)
    program.extend(v6_block)
    return program


class SourceBlocklist:
    """The blocked sources of one socket and the filter attached for them."""

    def __init__(self, sock: socket.socket | None, *, max_blocked: int = 64) -> None:
        self._sock = sock
        self._max_blocked = max_blocked
        self._blocked: OrderedDict[str, float] = OrderedDict()  # group -> until (monotonic)
        self._buffer: ctypes.Array[ctypes.c_char] | None = None
        self.available = sock is not None and sys.platform.startswith("linux")
        self.blocks = 0
        """Blocks applied since start."""

    def __len__(self) -> int:
        return len(self._blocked)

    def __contains__(self, group: str) -> bool:
        return group in self._blocked

    def block(self, group: str, until: float) -> bool:
        """Drop ``group``'s datagrams in the kernel until ``until``; False if unavailable."""
        if not self.available or group in self._blocked:
            return False
        self._blocked[group] = until
        while len(self._blocked) > self._max_blocked:
            self._blocked.popitem(last=False)
        if not self._attach():
            del self._blocked[group]
            return False
        self.blocks += 1
        return True

    def expire(self, now: float) -> list[str]:
        """Lift the blocks that ended by ``now``; returns their groups."""
        ended = [group for group, until in self._blocked.items() if until <= now]
        if ended:
            for group in ended:
                del self._blocked[group]
            self._attach()
        return ended

    def _attach(self) -> bool:
        sock = self._sock
        if sock is None:
            return False
        try:
            if not self._blocked:
                if self._buffer is not None:
                    sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
                    self._buffer = None
                return True
            program = filter_program(list(self._blocked))
            raw = b"".join(struct.pack("HBBI", *insn) for insn in program)
            buffer = ctypes.create_string_buffer(raw, len(raw))
            fprog = struct.pack("HL", len(program), ctypes.addressof(buffer))
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)
            self._buffer = buffer  # the kernel copied it; kept only while attached anyway
        except (OSError, ValueError) as exc:
            LOG.warning("cannot attach the flood filter to the UDP socket: %s", exc)
            self.available = False
            return False
        return True
