"""One suite, run against the hot cache, the durable store and its in-memory twin
(whnode.testing.memory_store) where their contracts overlap."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.store.conftest import CONFORMANCE_HISTORY, Holder, is_intact, make_record, open_holder


async def test_empty_holder_answers_nothing(holder: Holder) -> None:
    assert await holder.newest("nowhere") is None
    assert await holder.at("nowhere", 10**12) is None
    assert await holder.history("nowhere", 10) == []
    assert holder.held_bytes() == 0
    assert holder.held_records() == 0


async def test_put_then_newest_returns_the_same_record(holder: Holder) -> None:
    record = make_record("shop-a", 1_000, size=4_000)
    assert await holder.put(record) is True
    assert await holder.newest("shop-a") == record


async def test_duplicate_key_is_refused_and_the_first_is_kept(holder: Holder) -> None:
    first = make_record("shop-a", 1_000, size=300)
    second = make_record("shop-a", 1_000, size=500)
    assert await holder.put(first) is True
    assert await holder.put(second) is False
    assert await holder.put(first) is False
    assert await holder.newest("shop-a") == first
    assert holder.held_bytes() == 300
    assert holder.held_records() == 1


async def test_newest_does_not_depend_on_insertion_order(holder: Holder) -> None:
    times = [5_000, 1_000, 4_000, 2_000]
    for t in times:
        assert await holder.put(make_record("shop-a", t)) is True
    newest = await holder.newest("shop-a")
    assert newest is not None
    assert newest.fetched_at_ms == 5_000


async def test_at_returns_the_snapshot_current_at_t(holder: Holder) -> None:
    for t in (1_000, 2_000, 3_000):
        await holder.put(make_record("shop-a", t))

    async def at(t: int) -> int | None:
        found = await holder.at("shop-a", t)
        return None if found is None else found.fetched_at_ms

    assert await at(999) is None
    assert await at(1_000) == 1_000
    assert await at(1_999) == 1_000
    assert await at(2_000) == 2_000
    assert await at(2_500) == 2_000
    assert await at(10**13) == 3_000


async def test_history_is_newest_first_and_limited(holder: Holder) -> None:
    for t in (3_000, 1_000, 2_000):
        await holder.put(make_record("shop-a", t))
    assert [r.fetched_at_ms for r in await holder.history("shop-a", 10)] == [3_000, 2_000, 1_000]
    assert [r.fetched_at_ms for r in await holder.history("shop-a", 2)] == [3_000, 2_000]
    assert await holder.history("shop-a", 0) == []


async def test_history_window_keeps_the_newest_and_refuses_older(holder: Holder) -> None:
    times = list(range(1_000, 1_000 * (CONFORMANCE_HISTORY + 3), 1_000))
    for t in times:
        assert await holder.put(make_record("shop-a", t)) is True
    kept = times[-CONFORMANCE_HISTORY:]
    assert [r.fetched_at_ms for r in await holder.history("shop-a", 100)] == kept[::-1]
    assert await holder.at("shop-a", kept[0] - 1) is None
    assert await holder.put(make_record("shop-a", times[0] - 500)) is False
    assert holder.held_records() == CONFORMANCE_HISTORY


async def test_dispensaries_are_independent(holder: Holder) -> None:
    await holder.put(make_record("shop-a", 1_000))
    await holder.put(make_record("shop-b", 2_000))
    newest_a = await holder.newest("shop-a")
    assert newest_a is not None
    assert newest_a.fetched_at_ms == 1_000
    assert await holder.at("shop-b", 1_500) is None
    assert await holder.discard("shop-a") == 1
    assert await holder.newest("shop-a") is None
    assert await holder.newest("shop-b") is not None


async def test_delete_of_the_newest_makes_the_previous_one_newest(holder: Holder) -> None:
    for t in (1_000, 2_000, 3_000):
        await holder.put(make_record("shop-a", t))
    assert await holder.delete("shop-a", 3_000) is True
    assert await holder.delete("shop-a", 3_000) is False
    newest = await holder.newest("shop-a")
    assert newest is not None
    assert newest.fetched_at_ms == 2_000
    assert await holder.put(make_record("shop-a", 4_000)) is True
    newest = await holder.newest("shop-a")
    assert newest is not None
    assert newest.fetched_at_ms == 4_000


async def test_byte_accounting_follows_puts_trims_and_removals(holder: Holder) -> None:
    sizes = {t: 100 + t for t in range(1, CONFORMANCE_HISTORY + 3)}
    for t, size in sizes.items():
        await holder.put(make_record("shop-a", t, size=size))
    await holder.put(make_record("shop-b", 1, size=7_000))
    kept = sorted(sizes)[-CONFORMANCE_HISTORY:]
    assert holder.held_bytes() == sum(sizes[t] for t in kept) + 7_000
    assert holder.held_records() == CONFORMANCE_HISTORY + 1
    await holder.delete("shop-a", kept[-1])
    await holder.discard("shop-b")
    assert holder.held_bytes() == sum(sizes[t] for t in kept[:-1])
    assert holder.held_records() == CONFORMANCE_HISTORY - 1


# ------------------------------------------------------------------ model-based property test
class _Model:
    """The overlapping contract, written as plainly as possible."""

    def __init__(self) -> None:
        self.held: dict[str, dict[int, int]] = {}

    def put(self, dispensary: str, t: int, size: int) -> bool:
        held = self.held.setdefault(dispensary, {})
        if t in held or (len(held) >= CONFORMANCE_HISTORY and t < min(held)):
            return False
        held[t] = size
        while len(held) > CONFORMANCE_HISTORY:
            del held[min(held)]
        return True

    def at(self, dispensary: str, t: int) -> int | None:
        earlier = [k for k in self.held.get(dispensary, {}) if k <= t]
        return max(earlier) if earlier else None


_OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.integers(min_value=0, max_value=30),
        st.integers(min_value=1, max_value=2_000),
    ),
    max_size=40,
)


@pytest.mark.parametrize("kind", ["hot", "durable", "memory"])
@settings(max_examples=100)
@given(operations=_OPERATIONS, probes=st.lists(st.integers(min_value=-1, max_value=31)))
def test_random_puts_match_the_model(
    kind: str, operations: list[tuple[str, int, int]], probes: list[int]
) -> None:
    async def scenario(directory: Path) -> None:
        holder, store = await open_holder(kind, directory)
        model = _Model()
        try:
            for dispensary, t, size in operations:
                record = make_record(dispensary, t, size=size)
                assert await holder.put(record) is model.put(dispensary, t, size)
            for dispensary in ("a", "b", "c"):
                held = model.held.get(dispensary, {})
                history = await holder.history(dispensary, 100)
                assert [r.fetched_at_ms for r in history] == sorted(held, reverse=True)
                assert all(is_intact(r) and r.nbytes == held[r.fetched_at_ms] for r in history)
                for t in probes:
                    found = await holder.at(dispensary, t)
                    assert (None if found is None else found.fetched_at_ms) == model.at(
                        dispensary, t
                    )
            expected_bytes = sum(sum(held.values()) for held in model.held.values())
            assert holder.held_bytes() == expected_bytes
            assert holder.held_records() == sum(len(held) for held in model.held.values())
        finally:
            if store is not None:
                await store.aclose()

    with tempfile.TemporaryDirectory() as directory:
        asyncio.run(scenario(Path(directory)))


def test_model_sanity() -> None:
    """The model itself refuses what is older than a full window (guards the test above)."""
    model = _Model()
    for t in range(CONFORMANCE_HISTORY):
        assert model.put("a", 10 + t, 1)
    assert not model.put("a", 0, 1)
    assert model.put("a", 100, 1)
    assert min(model.held["a"]) == 11
