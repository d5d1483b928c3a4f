"""Anti-amplification: a node sends an unverified address at most 3x what it received from it.

A UDP source address can be forged. Without a bound, a valid 112-byte find_node with a
victim's address as its source draws a reply of ~740 bytes (20 contacts) to the victim: the
node becomes a traffic amplifier. QUIC's rule (RFC 9000, section 8) applies here: until an
address has proved that it receives what is sent to it, the bytes sent to it may not exceed
``factor`` (3) times the bytes received from it. An address is verified once it answers one of
this node's requests from that very address (rpcudp's 20-byte random message id must be
echoed, so a forger cannot answer for the victim); a verification lasts ``verified_seconds``.

The protocol (``whnode.dht.protocol``) asks ``allowance`` before replying: a find_node reply
is cut to the contacts that fit (the closest first), any other reply that does not fit is not
sent; and it pings an unverified requester (within the same allowance) so that its next
requests get full answers. Both tables are bounded (least recently used forgotten first).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from whnode import limits

__all__ = ["AmplificationGuard"]

Address = tuple[str, int]

PROBE_INTERVAL: Final = 30.0
"""Seconds between two verification pings to one unverified address."""


class AmplificationGuard:
    """Bytes received from and sent to unverified addresses, and the verified ones."""

    def __init__(
        self,
        *,
        factor: float = 3.0,
        verified_seconds: float = 600.0,
        max_addresses: int = limits.MAX_TRACKED_SOURCES,
    ) -> None:
        self.factor = factor
        self._verified_seconds = verified_seconds
        self._max = max_addresses
        self._verified: OrderedDict[Address, float] = OrderedDict()  # address -> until
        # address -> [bytes received, bytes sent, last probe time]
        self._unverified: OrderedDict[Address, list[float]] = OrderedDict()

    def is_verified(self, address: Address, now: float) -> bool:
        until = self._verified.get(address)
        if until is None:
            return False
        if until > now:
            return True
        del self._verified[address]
        return False

    def verify(self, address: Address, now: float) -> None:
        """``address`` answered one of our requests: it receives what is sent to it."""
        self._verified[address] = now + self._verified_seconds
        self._verified.move_to_end(address)
        if len(self._verified) > self._max:
            self._verified.popitem(last=False)
        self._unverified.pop(address, None)

    def _entry(self, address: Address) -> list[float]:
        entry = self._unverified.get(address)
        if entry is None:
            entry = self._unverified[address] = [0.0, 0.0, -PROBE_INTERVAL]
            if len(self._unverified) > self._max:
                self._unverified.popitem(last=False)
        else:
            self._unverified.move_to_end(address)
        return entry

    def received(self, address: Address, size: int) -> None:
        self._entry(address)[0] += size

    def allowance(self, address: Address) -> int:
        """Bytes that may still be sent to the unverified ``address``."""
        entry = self._entry(address)
        return max(0, int(self.factor * entry[0] - entry[1]))

    def sent(self, address: Address, size: int) -> None:
        self._entry(address)[1] += size

    def probe_due(self, address: Address, now: float) -> bool:
        """Whether a verification ping to ``address`` is due (none in PROBE_INTERVAL)."""
        return now - self._entry(address)[2] >= PROBE_INTERVAL

    def probed(self, address: Address, now: float) -> None:
        self._entry(address)[2] = now

    def clear(self) -> None:
        """Forget every address (a closed protocol frees its tables at once)."""
        self._verified.clear()
        self._unverified.clear()

    def tracked(self) -> tuple[int, int]:
        """(verified, unverified) addresses held."""
        return len(self._verified), len(self._unverified)
