"""Forged and poisoned records, for the tests and the poisoning bench.

Every function here builds a record that an attacker could send: well signed by the
attacker's own key, but lying about its content (a fake menu), about its payload (a content
hash that does not match, a menu for another dispensary inside, lz4 sizes that lie) or about
its time (dated ahead). whnode must refuse all of them where it matters (docs/dht.md,
"Who may publish").
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import lz4.frame

from whnode.record.codec import content_hash, encode_menu
from whnode.record.keys import ContentHash, SigningKey, node_id_for
from whnode.record.model import Menu
from whnode.record.puzzle import solves
from whnode.record.signed import SignedRecord, sign_record

__all__ = [
    "GrindResult",
    "Poisoner",
    "fake_menu",
    "forge",
    "grind_key_near",
    "inner_menu_for_another_dispensary",
    "lying_sizes",
    "wrong_content_hash",
    "xxh32_short",
]


@dataclasses.dataclass(frozen=True, slots=True)
class GrindResult:
    """The best key an attacker found near a target, and what it cost."""

    key: SigningKey
    """The key whose node id is closest to the target among those generated."""
    distance: int
    """XOR distance from its node id to the target."""
    generations: int
    """Keys generated (the attacker's cost)."""
    reached: bool
    """Whether a key closer than the goal was found within the budget."""


def grind_key_near(
    target: bytes, *, closer_than: int, budget: int, difficulty: int = 0
) -> GrindResult:
    """Generate keys until one's node id is closer (XOR) to ``target`` than ``closer_than``
    and solves the node-id puzzle at ``difficulty``, or ``budget`` keys were generated."""
    goal = int.from_bytes(target, "big")
    best: tuple[int, SigningKey] | None = None
    generations = 0
    while generations < budget:
        generations += 1
        key = SigningKey.generate()
        node_id = node_id_for(key.public_key)
        distance = int.from_bytes(node_id, "big") ^ goal
        if best is not None and distance >= best[0]:
            continue
        if not solves(node_id, difficulty):
            continue
        best = (distance, key)
        if distance < closer_than:
            return GrindResult(key, distance, generations, True)
    if best is None:
        return GrindResult(SigningKey.generate(), 2**160, generations, False)
    return GrindResult(best[1], best[0], generations, False)


def forge(menu: Menu, signing_key: SigningKey, *, fetched_at_ms: int | None = None) -> SignedRecord:
    """A correctly built record of ``menu`` signed by ``signing_key`` (any key, any menu)."""
    when = menu.fetched_at_ms if fetched_at_ms is None else fetched_at_ms
    menu = dataclasses.replace(menu, fetched_at_ms=when)
    return sign_record(
        payload=encode_menu(menu),
        dispensary_id=menu.dispensary_id,
        fetched_at_ms=when,
        content_hash=content_hash(menu),
        signing_key=signing_key,
    )


def fake_menu(menu: Menu, *, cents_off: int = 1) -> Menu:
    """``menu`` with every price lowered: what a poisoner publishes."""
    products = tuple(
        dataclasses.replace(
            product,
            price_options=tuple(
                dataclasses.replace(option, price_cents=max(1, option.price_cents - cents_off))
                for option in product.price_options
            ),
        )
        for product in menu.products
    )
    return dataclasses.replace(menu, products=products)


def wrong_content_hash(menu: Menu, signing_key: SigningKey, fetched_at_ms: int) -> SignedRecord:
    """A record whose header's content hash is not the hash of the menu inside."""
    menu = dataclasses.replace(menu, fetched_at_ms=fetched_at_ms)
    return sign_record(
        payload=encode_menu(menu),
        dispensary_id=menu.dispensary_id,
        fetched_at_ms=fetched_at_ms,
        content_hash=ContentHash(bytes(32)),
        signing_key=signing_key,
    )


def inner_menu_for_another_dispensary(
    menu: Menu, dispensary_id: str, signing_key: SigningKey, fetched_at_ms: int
) -> SignedRecord:
    """A record whose header names ``dispensary_id`` but whose payload is ``menu`` (another
    dispensary's), with the inner menu's own content hash."""
    menu = dataclasses.replace(menu, fetched_at_ms=fetched_at_ms)
    return sign_record(
        payload=encode_menu(menu),
        dispensary_id=dispensary_id,
        fetched_at_ms=fetched_at_ms,
        content_hash=content_hash(menu),
        signing_key=signing_key,
    )


def lying_sizes(
    menu: Menu, signing_key: SigningKey, fetched_at_ms: int, *, extra: int = 1000
) -> SignedRecord:
    """A record whose lz4 frame declares ``extra`` bytes more content than it holds (the
    header checksum recomputed, so that only the size lies)."""
    menu = dataclasses.replace(menu, fetched_at_ms=fetched_at_ms)
    frame = encode_menu(menu)
    declared = lz4.frame.get_frame_info(frame)["content_size"]
    header = frame[:6] + (declared + extra).to_bytes(8, "little")
    descriptor = header[4:14]
    payload = header + bytes([xxh32_short(descriptor) >> 8 & 0xFF]) + frame[15:]
    return sign_record(
        payload=payload,
        dispensary_id=menu.dispensary_id,
        fetched_at_ms=fetched_at_ms,
        content_hash=content_hash(menu),
        signing_key=signing_key,
    )


def xxh32_short(data: bytes, seed: int = 0) -> int:
    """xxHash32 (the lz4 frame header checksum), for inputs under 16 bytes."""
    prime1, prime2, prime3, prime4, prime5 = (
        2654435761, 2246822519, 3266489917, 668265263, 374761393,
    )  # fmt: skip
    mask = 0xFFFFFFFF

    def rotate(value: int, bits: int) -> int:
        return ((value << bits) | (value >> (32 - bits))) & mask

    accumulator = (seed + prime5 + len(data)) & mask
    position = 0
    while position + 4 <= len(data):
        word = int.from_bytes(data[position : position + 4], "little")
        accumulator = rotate((accumulator + word * prime3) & mask, 17) * prime4 & mask
        position += 4
    while position < len(data):
        accumulator = rotate((accumulator + data[position] * prime5) & mask, 11) * prime1 & mask
        position += 1
    accumulator ^= accumulator >> 15
    accumulator = accumulator * prime2 & mask
    accumulator ^= accumulator >> 13
    accumulator = accumulator * prime3 & mask
    accumulator ^= accumulator >> 16
    return accumulator


class Poisoner:
    """Makes a running node (``whnode.Node``) answer like a modified one: for every
    dispensary in ``fakes`` its peer endpoints (fill, get, history) answer a fake menu
    signed by ``signing_key`` with the fetch time of the moment (always fresh), whatever it
    holds; everything else it does as an honest node. ``served`` counts the fakes answered.
    """

    def __init__(self, node: Any, signing_key: SigningKey, fakes: dict[str, Menu]) -> None:
        from whnode.peer.routes import FillResult  # testing helper: keep record/ imports light

        self.fakes = fakes
        self.served = 0
        service = node.service
        honest_fill, honest_get, honest_history = (
            service.peer_fill,
            service.peer_get,
            service.peer_history,
        )

        def fake(dispensary_id: str) -> SignedRecord | None:
            menu = self.fakes.get(dispensary_id)
            if menu is None:
                return None
            self.served += 1
            return forge(menu, signing_key, fetched_at_ms=int(time.time() * 1000))

        async def peer_fill(dispensary_id: str, *args: Any, **kwargs: Any) -> Any:
            record = fake(dispensary_id)
            if record is None:
                return await honest_fill(dispensary_id, *args, **kwargs)
            return FillResult(record.encoded, record.fetched_at_ms + 600_000, False, "store")

        async def peer_get(dispensary_id: str, at_ms: int | None) -> bytes | None:
            record = fake(dispensary_id)
            return await honest_get(dispensary_id, at_ms) if record is None else record.encoded

        async def peer_history(dispensary_id: str, limit: int) -> list[bytes]:
            record = fake(dispensary_id)
            if record is None:
                return list(await honest_history(dispensary_id, limit))
            return [record.encoded]

        service.peer_fill = peer_fill
        service.peer_get = peer_get
        service.peer_history = peer_history
