"""docs/record-format.md stays true: its example bytes and its limits table are generated."""

from __future__ import annotations

from pathlib import Path

from whnode.record.acceptance import TrustPolicy, accept_record, open_record
from whnode.record.docs import example_record, limits_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "record-format.md"


def test_limits_table_matches_the_code() -> None:
    assert limits_table() in DOC.read_text()


def test_example_record_bytes_match_the_code_and_verify() -> None:
    record = example_record()
    text = DOC.read_text()
    block = text.split("deterministic, so these are its exact bytes")[1].split("```")[1]
    assert bytes.fromhex("".join(block.split())) == record.encoded
    accepted = accept_record(record.encoded, now_ms=record.fetched_at_ms, policy=TrustPolicy.open())
    assert open_record(accepted).products[0].name == "OG"
