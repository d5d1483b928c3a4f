"""The static crypto puzzle on node ids (S/Kademlia, Baumgart and Mies 2007, section 4.2).

A node id is SHA-1 of the node's public key, so nobody picks a position in the key space;
but an attacker may generate keys until one lands near a dispensary's routing key: b shared
leading bits cost about 2^b key generations. The puzzle multiplies that cost by 2^d: an id
is valid only when

    SHA-256(PUZZLE_PREFIX || node_id) has at least d leading zero bits

(d, the difficulty, is a network-wide setting). An honest node pays 2^d key generations once,
when its identity is created; an attacker pays 2^d for every candidate position. The check
needs the 20-byte node id only, so it applies to every contact listed in a DHT reply (which
carries no public key) as well as to every hello and every record's publisher.

Pure: no I/O, no clock. Grinding lives in ``whnode.identity``.
"""

from __future__ import annotations

import hashlib
from typing import Final

__all__ = ["DEFAULT_DIFFICULTY", "MAX_DIFFICULTY", "PUZZLE_PREFIX", "puzzle_bits", "solves"]

PUZZLE_PREFIX: Final = b"whnode/node-id-puzzle/v1\x00"
"""Domain separation of the puzzle hash (a new puzzle changes the prefix)."""
DEFAULT_DIFFICULTY: Final = 14
"""The network's default difficulty: 2^14 = 16,384 key generations on average when an
identity is created (about a second of one core; docs/dht.md gives the measured cost), and
16,384 times the cost of every position an attacker tries."""
MAX_DIFFICULTY: Final = 32
"""Highest difficulty accepted in configuration (2^32 key generations is days of CPU)."""


def puzzle_bits(node_id: bytes) -> int:
    """Leading zero bits of SHA-256(PUZZLE_PREFIX || node_id) (0..256)."""
    digest = int.from_bytes(hashlib.sha256(PUZZLE_PREFIX + bytes(node_id)).digest(), "big")
    return 256 - digest.bit_length()


def solves(node_id: bytes, difficulty: int) -> bool:
    """Whether ``node_id`` meets ``difficulty`` (always true at difficulty 0)."""
    return difficulty <= 0 or puzzle_bits(node_id) >= difficulty
