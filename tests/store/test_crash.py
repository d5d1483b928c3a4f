"""Crash safety: a real writer process killed with SIGKILL in the middle of a burst."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from tests.store.test_durable import assert_totals_match
from whnode.store import DurableStore, Synchronous

REPOSITORY = Path(__file__).resolve().parents[2]

WRITER = """
import asyncio, hashlib, random, sys
from whnode.store import DurableStore, StoredRecord, Synchronous
import whnode.store.durable

# checkpoint often, so that kills also land during background checkpoints
whnode.store.durable.CHECKPOINT_AFTER_BYTES = 512 * 1024

async def main(path, synchronous, seed, start):
    rng = random.Random(seed)
    store = await DurableStore.open(
        path, history_per_dispensary=100_000, max_bytes=1 << 40,
        synchronous=Synchronous(synchronous),
    )
    t = start
    while True:
        t += 1
        dispensary = f"shop-{rng.randrange(20)}"
        data = rng.randbytes(rng.randrange(20_000, 60_000))
        record = StoredRecord(dispensary, t, hashlib.sha256(data[:64]).digest(), data)
        assert await store.put(record)
        checkpoints = store.statistics().checkpoints
        digest = hashlib.sha256(data).hexdigest()
        sys.stdout.write(f"ack {dispensary} {t} {digest} {checkpoints}\\n")
        sys.stdout.flush()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
"""


async def write_until_killed(
    path: Path, synchronous: Synchronous, seed: int, start: int
) -> tuple[dict[tuple[str, int], str], int]:
    """Run the writer, SIGKILL it after a random number of acks.

    Return every ack it printed and the background checkpoints it had made by then.
    """
    kill_after = random.Random(seed).randrange(50, 250)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WRITER,
        str(path),
        synchronous.value,
        str(seed),
        str(start),
        stdout=asyncio.subprocess.PIPE,
        cwd=REPOSITORY,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    assert process.stdout is not None
    acked: dict[tuple[str, int], str] = {}
    checkpoints = 0

    def take(line: bytes) -> None:
        nonlocal checkpoints
        if not line.endswith(b"\n"):
            return  # cut by the kill: not a complete acknowledgement
        word, dispensary, t, digest, made = line.decode().split()
        assert word == "ack"
        acked[(dispensary, int(t))] = digest
        checkpoints = int(made)

    try:
        while len(acked) < kill_after:
            line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
            assert line, f"writer exited early with {await process.wait()}"
            take(line)
    finally:
        process.send_signal(signal.SIGKILL)
    for line in (await process.stdout.read()).splitlines(keepends=True):
        take(line)
    assert await process.wait() == -signal.SIGKILL
    return acked, checkpoints


@pytest.mark.slow
@pytest.mark.parametrize("synchronous", [Synchronous.NORMAL, Synchronous.FULL])
async def test_every_acknowledged_write_survives_sigkill(
    tmp_path: Path, synchronous: Synchronous
) -> None:
    path = tmp_path / "store.sqlite3"
    acked: dict[tuple[str, int], str] = {}
    checkpoints = 0
    for round_number in range(3):
        written, made = await write_until_killed(
            path, synchronous, seed=round_number, start=1_000_000 * (round_number + 1)
        )
        acked |= written
        checkpoints += made
        # killed, not closed: the WAL is still there and opening must recover from it
        assert path.with_name(path.name + "-wal").stat().st_size > 0
        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        async with await DurableStore.open(
            path, history_per_dispensary=100_000, max_bytes=1 << 40
        ) as store:
            assert await store.check_integrity() == []
            assert store.statistics().records >= len(acked)
            for (dispensary, t), digest in acked.items():
                record = await store.at(dispensary, t)
                assert record is not None, f"acknowledged write {dispensary}@{t} lost"
                assert record.fetched_at_ms == t
                assert hashlib.sha256(record.data).hexdigest() == digest
            assert_totals_match(store)
    assert len(acked) >= 150
    assert checkpoints > 0, "the kills should also have met background checkpoints"
