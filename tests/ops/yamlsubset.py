"""A strict parser for the small subset of YAML that docker/compose.yaml is written in.

PyYAML is not a dependency of whnode, so the compose test reads the file with this parser.
It accepts only constructs whose meaning is the same in YAML 1.1 (PyYAML) and YAML 1.2
(Compose's Go parser) and refuses everything else with the line number, so that a file it
accepts means the same thing to Docker Compose as to the test:

- block mappings (``key: value``, ``key:`` followed by a deeper block) and block sequences
  (``- item``, ``- key: value`` starting a mapping), indented with spaces only;
- scalars: double-quoted (JSON escapes only), single-quoted (``''`` escapes a quote), and plain
  scalars resolved with the YAML 1.2 core schema (null, true/false, decimal integers, decimal
  floats, otherwise strings); a plain scalar may start with ``-``, ``?`` or ``:`` only when
  a non-space follows (``-c``, ``-3``);
- ``#`` comments on their own line or after a space.

Refused: flow collections (``[...]``, ``{...}``), anchors, aliases, tags, block scalars
(``|``, ``>``), multi-line plain or quoted scalars, several documents, duplicate keys, plain
scalars starting with an indicator character, and plain scalars that YAML 1.1 reads otherwise
(``yes``/``no``/``on``/``off``/``y``/``n``, sexagesimal ``1:30``, octal ``0755``): quote them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["YamlSubsetError", "parse_yaml_subset"]

_INDICATORS = set("-?:,[]{}#&*!|>'\"%@`")
_YAML11_BOOLEANS = {"y", "n", "yes", "no", "on", "off"}
_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(r"[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?")
_AMBIGUOUS = re.compile(r"[-+]?[0-9][0-9_]*(:[0-9_]+)+(\.[0-9_]*)?|[-+]?0[0-9_]+|0[xXoObB].*")
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]*")


class YamlSubsetError(ValueError):
    """The text is outside the accepted subset (the message names the line)."""


@dataclass(frozen=True, slots=True)
class _Line:
    number: int
    indent: int
    text: str


def _strip_comment(text: str, number: int) -> str:
    """Remove a trailing comment, respecting quotes."""
    quote = ""
    index = 0
    while index < len(text):
        char = text[index]
        if quote == '"':
            if char == "\\":
                index += 1
            elif char == '"':
                quote = ""
        elif quote == "'":
            if char == "'":
                quote = ""
        elif char in "\"'" and (index == 0 or text[index - 1] in " :-"):
            quote = char
        elif char == "#" and (index == 0 or text[index - 1] == " "):
            return text[:index].rstrip()
        index += 1
    if quote:
        raise YamlSubsetError(f"line {number}: unterminated quoted scalar")
    return text.rstrip()


def _lines(text: str) -> list[_Line]:
    lines: list[_Line] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        body = raw.lstrip(" ")
        if body.startswith("\t"):
            raise YamlSubsetError(f"line {number}: tab in indentation")
        content = _strip_comment(body, number)
        if not content:
            continue
        if content in ("---", "...") or content.startswith(("--- ", "%")):
            raise YamlSubsetError(f"line {number}: document markers and directives are refused")
        lines.append(_Line(number, len(raw) - len(body), content))
    return lines


def _scalar(text: str, number: int) -> Any:
    if text.startswith('"'):
        if len(text) < 2 or not text.endswith('"'):
            raise YamlSubsetError(f"line {number}: a double-quoted scalar must end on its line")
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise YamlSubsetError(f"line {number}: bad double-quoted scalar ({exc})") from None
        if not isinstance(value, str):
            raise YamlSubsetError(f"line {number}: bad double-quoted scalar")
        return value
    if text.startswith("'"):
        inner = text[1:-1]
        if len(text) < 2 or not text.endswith("'") or re.search(r"(?<!')'(?!')", inner):
            raise YamlSubsetError(f"line {number}: bad single-quoted scalar")
        return inner.replace("''", "'")
    if text[0] in _INDICATORS and not (text[0] in "-?:" and text[1:2] not in ("", " ")):
        raise YamlSubsetError(f"line {number}: quote the scalar {text!r}")
    if ": " in text or text.endswith(":") or " #" in text:
        raise YamlSubsetError(f"line {number}: quote the scalar {text!r}")
    lowered = text.lower()
    if lowered in _YAML11_BOOLEANS or _AMBIGUOUS.fullmatch(text):
        raise YamlSubsetError(f"line {number}: {text!r} differs between YAML 1.1 and 1.2: quote it")
    if text in ("null", "Null", "NULL", "~"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return text


def _split_key(text: str, number: int) -> tuple[str, str] | None:
    """``key: rest`` → (key, rest); None when the text is not a mapping entry."""
    if text.startswith('"'):
        end = text.find('"', 1)
        while end != -1 and text[end - 1] == "\\":
            end = text.find('"', end + 1)
        if end == -1 or not text[end + 1 :].startswith(":"):
            return None
        key = _scalar(text[: end + 1], number)
        rest = text[end + 2 :]
    else:
        match = _KEY.match(text)
        if match is None or not text[match.end() :].startswith(":"):
            return None
        key = match.group(0)
        rest = text[match.end() + 1 :]
    if rest and not rest.startswith(" "):
        return None
    return str(key), rest.strip()


class _Parser:
    def __init__(self, lines: list[_Line]) -> None:
        self.lines = lines
        self.index = 0

    def block(self, indent: int) -> Any:
        line = self.lines[self.index]
        if line.indent != indent:
            raise YamlSubsetError(f"line {line.number}: unexpected indentation")
        if line.text == "-" or line.text.startswith("- "):
            return self.sequence(indent)
        return self.mapping(indent, line.text)

    def nested(self, parent_indent: int, number: int) -> Any:
        """The block under a ``key:`` or ``-`` with nothing after it (null if none)."""
        if self.index >= len(self.lines) or self.lines[self.index].indent <= parent_indent:
            return None
        return self.block(self.lines[self.index].indent)

    def mapping(self, indent: int, first: str) -> dict[str, Any]:
        result: dict[str, Any] = {}
        text: str | None = first
        while text is not None:
            line = self.lines[self.index]
            entry = _split_key(text, line.number)
            if entry is None:
                raise YamlSubsetError(f"line {line.number}: expected 'key: value'")
            key, rest = entry
            if key in result:
                raise YamlSubsetError(f"line {line.number}: duplicate key {key!r}")
            self.index += 1
            result[key] = self.nested(indent, line.number) if not rest else self.value(rest, line)
            text = None
            if self.index < len(self.lines):
                following = self.lines[self.index]
                if following.indent > indent:
                    raise YamlSubsetError(f"line {following.number}: unexpected indentation")
                if following.indent == indent and not following.text.startswith("- "):
                    text = following.text
        return result

    def value(self, rest: str, line: _Line) -> Any:
        if rest[0] in "[{":
            raise YamlSubsetError(f"line {line.number}: flow collections are refused")
        if rest[0] in "&*!|>":
            raise YamlSubsetError(f"line {line.number}: anchors, tags and block scalars refused")
        return _scalar(rest, line.number)

    def sequence(self, indent: int) -> list[Any]:
        result: list[Any] = []
        while self.index < len(self.lines):
            line = self.lines[self.index]
            if line.indent < indent:
                break
            if line.indent > indent:
                raise YamlSubsetError(f"line {line.number}: unexpected indentation")
            if not (line.text == "-" or line.text.startswith("- ")):
                break
            rest = line.text[2:].strip()
            if not rest:
                self.index += 1
                result.append(self.nested(indent, line.number))
            elif _split_key(rest, line.number) is not None:
                inner = indent + 2 + (len(line.text) - 2 - len(line.text[2:].lstrip(" ")))
                self.lines[self.index] = _Line(line.number, inner, rest)
                result.append(self.mapping(inner, rest))
            else:
                self.index += 1
                result.append(self.value(rest, line))
        return result


def parse_yaml_subset(text: str) -> Any:
    """Parse ``text`` (see the module docstring for the subset); raise YamlSubsetError."""
    lines = _lines(text)
    if not lines:
        return None
    parser = _Parser(lines)
    result = parser.block(lines[0].indent)
    if parser.index != len(lines):
        line = lines[parser.index]
        raise YamlSubsetError(f"line {line.number}: unexpected content")
    return result
