"""Kept records are opened in the parse pool (whnode.service.opening): same verdicts as
``admit_record`` on the loop, and the loop's verdict when the pool cannot run the job.

A real ParsePool (worker processes) runs the opens."""

from __future__ import annotations

import pytest

from whnode.record.acceptance import TrustPolicy
from whnode.record.codec import encode_menu_with_hash
from whnode.record.exceptions import PayloadMismatch
from whnode.record.keys import SigningKey
from whnode.record.signed import sign_record
from whnode.service.opening import POOL_OPEN_BYTES, RecordOpener
from whnode.testing.clock import eventually
from whnode.testing.factories import make_menu
from whnode.testing.forgery import wrong_content_hash
from whnode.upstream.pool import ParsePool

NOW_MS = 1_760_000_100_000


def _records() -> tuple[bytes, bytes]:
    """A good record and one whose content hash lies, both worth a trip to the pool."""
    key = SigningKey.generate()
    menu = make_menu("dutchie:store-7", n_products=40)
    payload, content_hash = encode_menu_with_hash(menu)
    good = sign_record(
        payload=payload,
        dispensary_id=menu.dispensary_id,
        fetched_at_ms=menu.fetched_at_ms,
        content_hash=content_hash,
        signing_key=key,
    ).encoded
    bad = wrong_content_hash(menu, key, menu.fetched_at_ms).encoded
    assert len(good) >= POOL_OPEN_BYTES
    assert len(bad) >= POOL_OPEN_BYTES
    return good, bad


async def test_records_open_in_the_pool_with_the_rules_verdicts() -> None:
    good, bad = _records()
    policy = TrustPolicy.open()
    async with ParsePool(workers=1) as pool:
        opener = RecordOpener(pool)
        assert not opener.wants(good)  # no worker started yet: opened here, workers started
        await eventually(pool.ready)
        assert opener.wants(good)
        await opener.open(good, now_ms=NOW_MS, policy=policy, expected="dutchie:store-7")
        with pytest.raises(PayloadMismatch):
            await opener.open(bad, now_ms=NOW_MS, policy=policy, expected="dutchie:store-7")
        assert opener.opened == 1  # the refused one raised; neither ran on the loop
        assert opener.inline == 0
        assert pool.statistics().completed == 1
        assert pool.statistics().failed == 1
    assert not opener.wants(good)  # a closed pool is not asked


async def test_a_pool_that_cannot_run_the_job_leaves_the_verdict_to_the_loop() -> None:
    good, bad = _records()
    policy = TrustPolicy.open()
    pool = ParsePool(workers=1)
    await pool.close()
    opener = RecordOpener(pool)
    await opener.open(good, now_ms=NOW_MS, policy=policy, expected=None)
    with pytest.raises(PayloadMismatch):
        await opener.open(bad, now_ms=NOW_MS, policy=policy, expected=None)
    assert opener.inline == 2
    assert opener.opened == 0
