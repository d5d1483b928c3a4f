"""docs/record-format.md stays true: every generated block is what the code produces now.

Run ``python -m tests.record.test_docs`` to rewrite the generated blocks after a change.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from whnode import limits
from whnode.record.acceptance import TrustPolicy, accept_record, open_record
from whnode.record.docs import (
    annotate_record,
    example_menu,
    example_record,
    generated_blocks,
    limits_table,
    regenerate,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "record-format.md"


def _block(text: str, name: str) -> str:
    match = re.search(
        rf"<!-- BEGIN GENERATED {name} -->\n(.*?)\n<!-- END GENERATED -->", text, re.DOTALL
    )
    assert match is not None, f"no generated block {name!r} in {DOC.name}"
    return match.group(1)


def test_every_generated_block_is_current() -> None:
    text = DOC.read_text()
    assert set(re.findall(r"<!-- BEGIN GENERATED ([a-z-]+)", text)) == set(generated_blocks())
    assert regenerate(text) == text, "run: python -m tests.record.test_docs"


def test_limits_table_in_the_doc_is_the_generated_one() -> None:
    table = _block(DOC.read_text(), "limits")
    assert table == limits_table()
    names = [line.split("`")[1] for line in table.splitlines()[2:]]
    assert names == [name for name, _, _ in limits.describe()]


def test_example_hex_is_the_record_and_it_verifies() -> None:
    record = example_record()
    hex_text = _block(DOC.read_text(), "example-hex").strip("`\n")
    assert bytes.fromhex("".join(hex_text.split())) == record.encoded
    accepted = accept_record(record.encoded, now_ms=record.fetched_at_ms, policy=TrustPolicy.open())
    assert open_record(accepted) == example_menu()


def test_annotation_covers_every_byte_in_order() -> None:
    record = example_record()
    lines = annotate_record(record).split("\n\n")[0].splitlines()
    hex_digits = "".join(line.split("#")[0].strip() for line in lines)
    assert bytes.fromhex(hex_digits) == record.encoded


def main() -> int:
    """Rewrite the generated blocks of docs/record-format.md."""
    text = DOC.read_text()
    updated = regenerate(text)
    if updated != text:
        DOC.write_text(updated)
        print(f"updated {DOC}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
