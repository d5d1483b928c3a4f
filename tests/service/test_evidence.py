"""Evidence of misbehaviour: what a pair of records proves, checked from the two records
alone, and the blocks the evidence book derives from it (whnode.service.evidence)."""

from __future__ import annotations

import hashlib

import cbor2
import lz4.frame
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from whnode.record.exceptions import DecodeError, RecordError
from whnode.record.keys import SigningKey, node_id_for
from whnode.record.model import Menu
from whnode.service.evidence import (
    BLOCK_SECONDS,
    CONTRADICTION_WINDOW_MS,
    EvidenceBook,
    EvidenceKind,
    decode_document,
    verify_evidence,
)
from whnode.testing import forgery
from whnode.testing.factories import make_menu

DISPENSARY = "weedmaps:evidence-1"
T0 = 1_760_000_000_000


def _menu(seed: int = 1, at: int = T0) -> Menu:
    return make_menu(DISPENSARY, n_products=5, seed=seed, fetched_at_ms=at)


def _independent_check(first: bytes, second: bytes) -> tuple[bytes, bytes]:
    """Verify a pair with nothing of whnode: cbor2, lz4 and an Ed25519 library, following
    docs/record-format.md section 9. Returns the two publishers' keys."""
    keys = []
    headers = []
    for data in (first, second):
        tagged = cbor2.loads(data)
        assert tagged.tag == 18
        protected, unprotected, payload, signature = tagged.value
        assert unprotected == {}
        header = cbor2.loads(protected)
        sig_structure = cbor2.dumps(["Signature1", protected, b"", payload])
        Ed25519PublicKey.from_public_bytes(header[4]).verify(signature, sig_structure)
        menu = cbor2.loads(lz4.frame.decompress(payload))
        hashed = cbor2.dumps({key: menu[key] for key in ("d", "n", "p", "s")}, canonical=True)
        assert hashlib.sha256(hashed).digest() == header[-65540]
        keys.append(header[4])
        headers.append(header)
    assert headers[0][-65538] == headers[1][-65538]  # one dispensary
    assert headers[0][-65540] != headers[1][-65540]  # two menus
    return keys[0], keys[1]


def test_an_equivocation_is_verifiable_from_its_two_records_alone() -> None:
    """One key signs two menus for one snapshot (dispensary, fetch time): whnode's check and
    an independent one (cbor2 + lz4 + Ed25519, nothing else) both see it."""
    liar = SigningKey.generate()
    first = forgery.forge(_menu(1), liar, fetched_at_ms=T0)
    second = forgery.forge(forgery.fake_menu(_menu(1)), liar, fetched_at_ms=T0)
    evidence = verify_evidence(first.encoded, second.encoded)
    assert evidence.kind is EvidenceKind.EQUIVOCATION
    assert evidence.accused_id == bytes(node_id_for(liar.public_key))
    one, other = _independent_check(first.encoded, second.encoded)
    assert one == other == bytes(liar.public_key)
    assert cbor2.loads(first.encoded).value[0] != cbor2.loads(second.encoded).value[0]


def test_a_contradiction_needs_another_publisher_a_later_fetch_and_another_menu() -> None:
    liar, reporter = SigningKey.generate(), SigningKey.generate()
    fake = forgery.forge(forgery.fake_menu(_menu(1)), liar, fetched_at_ms=T0)
    upstream = forgery.forge(_menu(1), reporter, fetched_at_ms=T0 + 20_000)
    evidence = verify_evidence(fake.encoded, upstream.encoded)
    assert evidence.kind is EvidenceKind.CONTRADICTION
    assert evidence.reporter_id == bytes(node_id_for(reporter.public_key))
    _independent_check(fake.encoded, upstream.encoded)
    # the order matters: the second record is the reporter's later fetch
    late = forgery.forge(_menu(1), reporter, fetched_at_ms=T0 + CONTRADICTION_WINDOW_MS + 1)
    same_menu = forgery.forge(forgery.fake_menu(_menu(1)), reporter, fetched_at_ms=T0 + 1)
    same_key = forgery.forge(_menu(1), liar, fetched_at_ms=T0 + 1)
    other_place = forgery.forge(
        make_menu("weedmaps:elsewhere", n_products=5, fetched_at_ms=T0), reporter
    )
    for second in (late, same_menu, same_key, other_place):
        with pytest.raises(RecordError):
            verify_evidence(fake.encoded, second.encoded)


def test_a_pair_that_does_not_verify_is_refused() -> None:
    liar = SigningKey.generate()
    good = forgery.forge(_menu(1), liar, fetched_at_ms=T0).encoded
    bad_payload = forgery.wrong_content_hash(_menu(2), liar, T0).encoded
    tampered = bytearray(forgery.forge(_menu(2), liar, fetched_at_ms=T0).encoded)
    tampered[-1] ^= 1
    for second in (bad_payload, bytes(tampered), b"\x00garbage"):
        with pytest.raises(RecordError):
            verify_evidence(good, second)


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_book_blocks_an_equivocating_publisher_everywhere_and_for_a_while() -> None:
    clock = _Clock()
    book = EvidenceBook(node_id=b"\x01" * 20, is_owner=lambda *_: False, clock=clock)
    liar = SigningKey.generate()
    liar_id = bytes(node_id_for(liar.public_key))
    first = forgery.forge(_menu(1), liar, fetched_at_ms=T0)
    second = forgery.forge(forgery.fake_menu(_menu(1)), liar, fetched_at_ms=T0)
    assert not book.blocked(liar_id, DISPENSARY)
    learned = book.learn_document(cbor2.dumps([[first.encoded, second.encoded]]))
    assert [item.kind for item in learned] == [EvidenceKind.EQUIVOCATION]
    assert book.blocked(liar_id, DISPENSARY)
    assert book.blocked(liar_id, "jane:another")
    assert decode_document(book.document()) == [learned[0].pair()]
    clock.now += BLOCK_SECONDS + 1
    assert not book.blocked(liar_id, DISPENSARY)
    assert book.statistics().learned == {"equivocation": 1}


def test_a_contradiction_blocks_for_its_dispensary_only_when_an_owner_reports_it() -> None:
    owners: set[bytes] = set()
    book = EvidenceBook(node_id=b"\x01" * 20, is_owner=lambda node, _: node in owners)
    liar, reporter = SigningKey.generate(), SigningKey.generate()
    liar_id = bytes(node_id_for(liar.public_key))
    fake = forgery.forge(forgery.fake_menu(_menu(1)), liar, fetched_at_ms=T0)
    upstream = forgery.forge(_menu(1), reporter, fetched_at_ms=T0 + 1_000)
    document = cbor2.dumps([[fake.encoded, upstream.encoded]])
    # a reporter that is not an owner: held, counted, no block (it could frame anyone)
    book.learn_document(document)
    assert not book.blocked(liar_id, DISPENSARY)
    assert book.statistics().learned == {"contradiction": 1, "untrusted": 1}
    owners.add(bytes(node_id_for(reporter.public_key)))
    book.learn_document(document)
    assert book.blocked(liar_id, DISPENSARY)
    assert not book.blocked(liar_id, "jane:another")


def test_malformed_documents_and_pairs_are_counted_not_learned() -> None:
    book = EvidenceBook(node_id=b"\x01" * 20, is_owner=lambda *_: True)
    for garbage in (b"\xff", cbor2.dumps({"a": 1}), cbor2.dumps([[b"x"]])):
        with pytest.raises(DecodeError):
            book.learn_document(garbage)
    assert book.learn_document(cbor2.dumps([[b"x", b"y"]])) == []
    assert book.statistics().learned == {"invalid": 1}
    assert book.statistics().held == 0
