"""The durable store on its own: restart, quota, expiry, change times, errors."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from pathlib import Path

import pytest

from tests.store.conftest import is_intact, make_record
from whnode.limits import MAX_RECORD_BYTES
from whnode.store import (
    DurableStore,
    StoreClosed,
    StoreCorrupt,
    StoreFull,
    StoreUnavailable,
    StoreUsageError,
)
from whnode.store.durable import CHECKPOINT_AFTER_BYTES, NEWEST_PAGE
from whnode.store.policy import EXPIRE_BATCH
from whnode.testing.clock import eventually


def sql_totals(path: Path) -> tuple[int, int, int]:
    """(records, bytes, dispensaries) as the file says, read with a separate connection."""
    with sqlite3.connect(path) as connection:
        records, total = connection.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(b.data)), 0)"
            " FROM snapshots AS s JOIN blobs AS b ON b.id = s.id"
        ).fetchone()
        (dispensaries,) = connection.execute(
            "SELECT COUNT(DISTINCT dispensary_id) FROM snapshots"
        ).fetchone()
        (newest,) = connection.execute(
            "SELECT COUNT(*) FROM snapshots WHERE is_newest = 1"
        ).fetchone()
        (blobs,) = connection.execute("SELECT COUNT(*) FROM blobs").fetchone()
    assert newest == dispensaries, "exactly one newest row per dispensary"
    assert blobs == records, "no orphan blobs"
    return records, total, dispensaries


def assert_totals_match(store: DurableStore) -> None:
    statistics = store.statistics()
    assert sql_totals(store.path) == (
        statistics.records,
        statistics.bytes,
        statistics.dispensaries,
    )


async def test_data_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    written = [make_record(f"shop-{n % 5}", 1_000 + n, size=2_000 + n) for n in range(40)]
    async with await DurableStore.open(path, history_per_dispensary=10, max_bytes=1 << 30) as s:
        for record in written:
            assert await s.put(record)
        before = s.statistics()
    async with await DurableStore.open(path, history_per_dispensary=10, max_bytes=1 << 30) as s:
        after = s.statistics()
        assert (after.bytes, after.records, after.dispensaries) == (
            before.bytes,
            before.records,
            before.dispensaries,
        )
        assert await s.dispensaries() == [f"shop-{n}" for n in range(5)]
        for n in range(5):
            expected = [r for r in written if r.dispensary_id == f"shop-{n}"][::-1]
            assert await s.history(f"shop-{n}", 100) == expected
        assert not await s.put(written[0])
        assert_totals_match(s)


async def test_smaller_caps_take_effect_at_open(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    async with await DurableStore.open(path, history_per_dispensary=10, max_bytes=1 << 30) as s:
        for n in range(10):
            await s.put(make_record("shop-a", n, size=1_000))
            await s.put(make_record("shop-b", n, size=1_000))
    async with await DurableStore.open(path, history_per_dispensary=3, max_bytes=5_000) as s:
        statistics = s.statistics()
        assert statistics.trimmed == 14
        assert statistics.bytes <= 5_000
        assert [r.fetched_at_ms for r in await s.history("shop-a", 10)] == [9, 8]
        assert [r.fetched_at_ms for r in await s.history("shop-b", 10)] == [9, 8, 7]
        assert_totals_match(s)


async def test_quota_evicts_oldest_history_first_and_keeps_each_newest(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite3"
    async with await DurableStore.open(path, history_per_dispensary=10, max_bytes=10_000) as s:
        # shop-old: one snapshot, older than everything: it is a newest, so it stays.
        await s.put(make_record("shop-old", 1, size=1_000))
        for t in range(10, 17):
            await s.put(make_record("shop-a" if t % 2 else "shop-b", t, size=1_000))
        assert s.statistics().evictions == 0
        assert s.statistics().bytes == 8_000
        for t in range(17, 21):
            assert await s.put(make_record("shop-a" if t % 2 else "shop-b", t, size=1_000))
        statistics = s.statistics()
        assert statistics.bytes == 10_000
        assert statistics.evictions == 2
        remaining = {
            (r.dispensary_id, r.fetched_at_ms)
            for d in ("shop-old", "shop-a", "shop-b")
            for r in await s.history(d, 100)
        }
        # the two oldest history rows (t=10 of b, t=11 of a) went; shop-old's only one stayed.
        assert remaining == {("shop-old", 1)} | {
            ("shop-a" if t % 2 else "shop-b", t) for t in range(12, 21)
        }
        assert_totals_match(s)


async def test_quota_evicts_oldest_newest_only_when_nothing_else_is_left(tmp_path: Path) -> None:
    async with await DurableStore.open(
        tmp_path / "store.sqlite3", history_per_dispensary=10, max_bytes=3_000
    ) as s:
        for n in range(5):
            assert await s.put(make_record(f"shop-{n}", 100 + n, size=1_000))
        assert await s.dispensaries() == ["shop-2", "shop-3", "shop-4"]
        assert s.statistics().dispensaries == 3
        assert s.statistics().evictions == 2
        assert_totals_match(s)


async def test_a_put_the_quota_would_evict_at_once_is_refused(tmp_path: Path) -> None:
    async with await DurableStore.open(
        tmp_path / "store.sqlite3", history_per_dispensary=10, max_bytes=3_000
    ) as s:
        for t in (10, 11, 12):
            await s.put(make_record("shop-a", t, size=1_000))
        # older than all held history: it would be the first evicted.
        assert not await s.put(make_record("shop-a", 5, size=1_000))
        # larger than the whole quota.
        assert not await s.put(make_record("shop-b", 50, size=3_001))
        assert [r.fetched_at_ms for r in await s.history("shop-a", 10)] == [12, 11, 10]
        statistics = s.statistics()
        assert (statistics.refused, statistics.evictions, statistics.bytes) == (2, 0, 3_000)
        assert_totals_match(s)


async def test_expire_deletes_older_snapshots_in_batches(tmp_path: Path) -> None:
    async with await DurableStore.open(
        tmp_path / "store.sqlite3", history_per_dispensary=1_000, max_bytes=1 << 30
    ) as s:
        for t in range(EXPIRE_BATCH + 100):
            await s.put(make_record("shop-a", t, size=50))
        await s.put(make_record("shop-b", 10, size=50))
        await s.put(make_record("shop-c", 700, size=50))
        removed = await s.expire(EXPIRE_BATCH + 50)
        assert removed == EXPIRE_BATCH + 50 + 1
        assert await s.dispensaries() == ["shop-a", "shop-c"]
        history = await s.history("shop-a", 1_000)
        assert [r.fetched_at_ms for r in history] == list(
            range(EXPIRE_BATCH + 99, EXPIRE_BATCH + 49, -1)
        )
        assert s.statistics().expired == removed
        assert await s.expire(0) == 0
        assert_totals_match(s)


async def test_change_times_lists_content_changes_oldest_first(store: DurableStore) -> None:
    contents = [(100, b"A"), (200, b"A"), (300, b"B"), (500, b"A")]  # the window is 4
    for t, content in contents:
        await store.put(make_record("shop-a", t, content=content))
    assert await store.change_times("shop-a") == [300, 500]
    assert await store.change_times("shop-a", include_first=True) == [100, 300, 500]
    assert await store.change_times("nowhere") == []


async def test_all_newest_pages_through_every_dispensary(tmp_path: Path) -> None:
    count = NEWEST_PAGE * 2 + 3
    async with await DurableStore.open(
        tmp_path / "store.sqlite3", history_per_dispensary=3, max_bytes=1 << 30
    ) as s:
        for n in range(count):
            for t in (1, 2):
                await s.put(make_record(f"shop-{n:04d}", n * 10 + t, size=64))
        newest = await s.all_newest()
        assert [r.dispensary_id for r in newest] == [f"shop-{n:04d}" for n in range(count)]
        assert all(r.fetched_at_ms % 10 == 2 and is_intact(r) for r in newest)
        assert [r async for r in s.iter_newest(page=7)] == newest
        assert s.statistics().dispensaries == count


async def test_a_closed_store_refuses_work_and_close_is_idempotent(tmp_path: Path) -> None:
    s = await DurableStore.open(tmp_path / "s.sqlite3", history_per_dispensary=2, max_bytes=10**6)
    await s.aclose()
    await s.aclose()
    with pytest.raises(StoreClosed):
        await s.put(make_record("shop-a", 1))
    with pytest.raises(StoreClosed):
        await s.newest("shop-a")


async def test_invalid_configuration_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(StoreUsageError):
        await DurableStore.open(tmp_path / "s.sqlite3", history_per_dispensary=0, max_bytes=1)
    with pytest.raises(StoreUsageError):
        await DurableStore.open(tmp_path / "s.sqlite3", history_per_dispensary=1, max_bytes=0)


async def test_a_missing_directory_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable):
        await DurableStore.open(
            tmp_path / "absent" / "s.sqlite3", history_per_dispensary=1, max_bytes=10**6
        )


async def test_a_file_that_is_not_a_database_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    path.write_bytes(b"definitely not sqlite" * 300)
    with pytest.raises(StoreCorrupt):
        await DurableStore.open(path, history_per_dispensary=1, max_bytes=10**6)


async def test_a_foreign_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE other (x)")
    with pytest.raises(StoreCorrupt, match="not a whnode store"):
        await DurableStore.open(path, history_per_dispensary=1, max_bytes=10**6)


async def test_an_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    async with await DurableStore.open(path, history_per_dispensary=1, max_bytes=10**6):
        pass
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreCorrupt, match="schema version 99"):
        await DurableStore.open(path, history_per_dispensary=1, max_bytes=10**6)


async def test_damaged_pages_surface_as_store_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    async with await DurableStore.open(path, history_per_dispensary=10, max_bytes=1 << 30) as s:
        for t in range(30):
            await s.put(make_record("shop-a", t, size=20_000))
    raw = bytearray(path.read_bytes())
    page = 4096
    for offset in range(page * 5, len(raw), page):
        raw[offset : offset + page] = b"\xa5" * page
    path.write_bytes(bytes(raw))
    with pytest.raises(StoreCorrupt):
        s = await DurableStore.open(path, history_per_dispensary=10, max_bytes=1 << 30)
        try:
            for t in range(30):
                await s.at("shop-a", t)
            await s.history("shop-a", 100)
        finally:
            await s.aclose()


async def test_background_checkpoints_run_as_records_are_written(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    size = 50_000
    count = CHECKPOINT_AFTER_BYTES * 2 // size + 2
    async with await DurableStore.open(path, history_per_dispensary=1_000, max_bytes=1 << 40) as s:
        for t in range(count):
            await s.put(make_record(f"shop-{t % 50}", t, size=size))
        # the checkpoint thread reports asynchronously
        await eventually(lambda: s.statistics().checkpoints >= 1)
        assert s.statistics().checkpoints >= 1
        assert s.statistics().errors == 0
    # closed cleanly: the last connection folded the WAL into the database and removed it
    assert not path.with_name(path.name + "-wal").exists()
    async with await DurableStore.open(path, history_per_dispensary=1_000, max_bytes=1 << 40) as s:
        assert s.statistics().records == count


async def test_a_full_disk_is_store_full_and_changes_nothing(tmp_path: Path) -> None:
    async with await DurableStore.open(
        tmp_path / "s.sqlite3", history_per_dispensary=10, max_bytes=1 << 30
    ) as s:
        await s.put(make_record("shop-a", 1, size=1_000))
        before = s.statistics()
        # SQLite reports SQLITE_FULL once the file may not grow: the same path as a full disk
        s._connection().execute("PRAGMA max_page_count = 1")
        with pytest.raises(StoreFull):
            await s.put(make_record("shop-a", 2, size=200_000))
        after = s.statistics()
        assert (after.bytes, after.records, after.puts) == (before.bytes, before.records, 1)
        assert after.errors == 1
        newest = await s.newest("shop-a")
        assert newest is not None
        assert newest.fetched_at_ms == 1
        s._connection().execute("PRAGMA max_page_count = 1073741823")
        assert await s.put(make_record("shop-a", 2, size=200_000))
        assert_totals_match(s)


async def test_a_row_breaking_the_record_rules_is_quarantined_not_fatal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.sqlite3"
    async with await DurableStore.open(path, history_per_dispensary=10, max_bytes=1 << 30) as s:
        await s.put(make_record("shop-a", 1))
        await s.put(make_record("shop-a", 2))
        await s.put(make_record("shop-b", 1))
    with sqlite3.connect(path) as connection:
        # an oversize blob on the newest snapshot of shop-a, an empty one on shop-b
        connection.execute(
            "UPDATE blobs SET data = zeroblob(?) WHERE id = (SELECT id FROM snapshots"
            " WHERE dispensary_id = 'shop-a' AND fetched_at_ms = 2)",
            (MAX_RECORD_BYTES + 1,),
        )
        connection.execute(
            "UPDATE blobs SET data = x'' WHERE id = (SELECT id FROM snapshots"
            " WHERE dispensary_id = 'shop-b')"
        )
    async with await DurableStore.open(path, history_per_dispensary=10, max_bytes=1 << 30) as s:
        for _ in range(3):  # every read works; the bad rows are moved aside once
            newest = await s.newest("shop-a")
            assert newest is not None
            assert newest.fetched_at_ms == 1
            assert await s.newest("shop-b") is None
        assert [r.fetched_at_ms for r in await s.history("shop-a", 10)] == [1]
        assert [r.dispensary_id for r in await s.all_newest()] == ["shop-a"]
        assert s.statistics().quarantined == 2
        assert_totals_match(s)
        files = sorted(s.quarantine_dir.glob("*.bin"))
        assert sorted(len(f.read_bytes()) for f in files) == [0, MAX_RECORD_BYTES + 1]
        # the service's way: a record refused on the way out
        assert await s.quarantine("shop-a", 1, "signature does not verify")
        assert await s.newest("shop-a") is None
        assert s.statistics().quarantined == 3
    warnings = [r for r in caplog.records if "quarantined" in r.getMessage()]
    assert len(warnings) == 3  # one line per row, not one per read
    assert all(r.levelname == "WARNING" and not r.exc_info for r in warnings)


async def test_no_thread_outlives_close_or_a_failed_open(tmp_path: Path) -> None:
    existing = set(threading.enumerate())  # other tests' leftovers are not this test's business

    def store_threads() -> list[threading.Thread]:
        return [
            t
            for t in threading.enumerate()
            if t.name.startswith("whnode-store-") and t not in existing
        ]

    async def settled() -> list[threading.Thread]:
        with contextlib.suppress(TimeoutError):  # the assertion below names the threads
            await eventually(lambda: not store_threads())
        return store_threads()

    s = await DurableStore.open(tmp_path / "s.sqlite3", history_per_dispensary=2, max_bytes=10**6)
    await s.put(make_record("shop-a", 1))
    await s.newest("shop-a")
    assert len(store_threads()) == 4  # writer, two readers, checkpointer
    await s.aclose()
    assert await settled() == []
    (tmp_path / "bad.sqlite3").write_bytes(b"not a database" * 500)
    with pytest.raises(StoreCorrupt):
        await DurableStore.open(tmp_path / "bad.sqlite3", history_per_dispensary=2, max_bytes=1)
    assert await settled() == []
