"""The strict YAML-subset reader used by the compose test: what it reads, what it refuses."""

from __future__ import annotations

import pytest

from tests.ops.yamlsubset import YamlSubsetError, parse_yaml_subset


def test_reads_block_mappings_sequences_and_scalars() -> None:
    text = """
# comment
name: demo
services:
  a:
    command:
      - "run"
      - 'it''s'
      - plain text  # trailing comment
    ports:
      - "127.0.0.1:80:80/tcp"
    numbers:
      - 12
      - -3
      - -c
      - 1.5
      - true
      - null
      - "#not a comment"
    items:
      - key: value
        other: "x: y"
      - nested:
          deep: 1
    empty:
"""
    assert parse_yaml_subset(text) == {
        "name": "demo",
        "services": {
            "a": {
                "command": ["run", "it's", "plain text"],
                "ports": ["127.0.0.1:80:80/tcp"],
                "numbers": [12, -3, "-c", 1.5, True, None, "#not a comment"],
                "items": [{"key": "value", "other": "x: y"}, {"nested": {"deep": 1}}],
                "empty": None,
            }
        },
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a: [1, 2]", "flow collections"),
        ("a: {b: 1}", "flow collections"),
        ("a: &anchor 1", "anchors"),
        ("a: *anchor", "anchors"),
        ("a: |\n  text", "block scalars"),
        ("a: yes", "YAML 1.1"),
        ("a: off", "YAML 1.1"),
        ("a: 80:80", "YAML 1.1"),
        ("a: 0755", "YAML 1.1"),
        ("a: 1\na: 2", "duplicate key"),
        ("a:\n\t- 1", "tab"),
        ("a: @c", "quote the scalar"),
        ("a: - c", "quote the scalar"),
        ("a: b: c", "quote the scalar"),
        ('a: "open', "unterminated"),
        ('a: "bad \\x41"', "bad double-quoted"),
        ("---\na: 1", "document markers"),
        ("a: 1\n   b: 2", "indentation"),
        ("a:\n  - 1\n  b: 2", "unexpected"),
        ("just a scalar line\nb: 1", "expected 'key: value'"),
    ],
)
def test_refuses_everything_outside_the_subset(text: str, reason: str) -> None:
    with pytest.raises(YamlSubsetError, match=reason):
        parse_yaml_subset(text)


def test_errors_name_the_line() -> None:
    with pytest.raises(YamlSubsetError, match=r"^line 3: "):
        parse_yaml_subset("a:\n  b: 1\n  c: on\n")
