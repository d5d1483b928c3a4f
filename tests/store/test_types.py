"""StoredRecord validates itself; the public names of whnode.store are pinned."""

from __future__ import annotations

import hashlib

import pytest

import whnode.store
from whnode.errors import RemoteError, UsageError
from whnode.limits import MAX_DISPENSARY_ID_CHARS, MAX_RECORD_BYTES
from whnode.store import InvalidStoredRecord, StoredRecord, StoreError

HASH = hashlib.sha256(b"menu").digest()


def test_a_valid_record_reports_its_size_and_hides_its_bytes_in_repr() -> None:
    record = StoredRecord("shop-a", 1_700_000_000_000, HASH, b"x" * 1234)
    assert record.nbytes == 1234
    assert "xxxx" not in repr(record)


@pytest.mark.parametrize(
    ("dispensary_id", "fetched_at_ms", "content_hash", "data"),
    [
        ("", 1, HASH, b"x"),
        ("d" * (MAX_DISPENSARY_ID_CHARS + 1), 1, HASH, b"x"),
        ("shop", -1, HASH, b"x"),
        ("shop", True, HASH, b"x"),
        ("shop", 2**63, HASH, b"x"),
        ("shop", 1, HASH[:31], b"x"),
        ("shop", 1, HASH, b""),
        ("shop", 1, HASH, bytearray(b"x")),
        ("shop", 1, HASH, b"x" * (MAX_RECORD_BYTES + 1)),
    ],
)
def test_invalid_fields_cannot_be_constructed(
    dispensary_id: str, fetched_at_ms: int, content_hash: bytes, data: bytes
) -> None:
    with pytest.raises(InvalidStoredRecord):
        StoredRecord(dispensary_id, fetched_at_ms, content_hash, data)


def test_exception_tree() -> None:
    assert issubclass(InvalidStoredRecord, UsageError)
    assert issubclass(whnode.store.StoreClosed, UsageError)
    for name in ("StoreCorrupt", "StoreFull", "StoreUnavailable"):
        assert issubclass(getattr(whnode.store, name), StoreError)
    assert issubclass(StoreError, RemoteError)


def test_public_names_are_pinned() -> None:
    assert sorted(whnode.store.__all__) == [
        "DurableStore",
        "HotCache",
        "HotCacheStatistics",
        "InvalidStoredRecord",
        "StoreClosed",
        "StoreCorrupt",
        "StoreError",
        "StoreFull",
        "StoreStatistics",
        "StoreUnavailable",
        "StoreUsageError",
        "StoredRecord",
        "Synchronous",
    ]
    for name in whnode.store.__all__:
        assert getattr(whnode.store, name) is not None
