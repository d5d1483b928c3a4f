"""The checks of ``promtool check metrics`` (Prometheus's promlint), in Python.

promtool is a Go binary that the test machines may not have; these are its rules, with its
messages, over the Prometheus text exposition format:

- every family has HELP text;
- a counter's name ends in ``_total``; no other typed family's does;
- only histograms and summaries have names ending in ``_count``, ``_sum`` or ``_bucket``;
  only histograms have an ``le`` label and only summaries a ``quantile`` label;
- no type name in the metric name (``_counter_``, ``_gauge``, ...);
- no ``:`` in names; names and label names in snake_case;
- base units only (seconds, bytes, meters, grams, celsius), no abbreviated units
  (``_ms``, ``_s_``, ``_kb``, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Family", "lint", "parse"]

TYPES = ("counter", "gauge", "histogram", "summary", "untyped")
UNIT_ABBREVIATIONS = ("s", "ms", "us", "ns", "sec", "h", "m", "d", "kb", "mb", "gb", "b")
PREFIXES = (
    "pico",
    "nano",
    "micro",
    "milli",
    "centi",
    "deci",
    "deca",
    "hecto",
    "kilo",
    "kibi",
    "mega",
    "mebi",
    "giga",
    "gibi",
    "tera",
    "tebi",
    "peta",
    "pebi",
)
BASE_UNITS = {
    "seconds": "seconds",
    "bytes": "bytes",
    "meters": "meters",
    "metres": "meters",
    "grams": "grams",
    "amperes": "amperes",
    "volts": "volts",
}
OTHER_UNITS = {
    "minutes": "seconds",
    "hours": "seconds",
    "days": "seconds",
    "weeks": "seconds",
    "fahrenheit": "celsius",
    "kelvin": "celsius",
}
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+\S+")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"')
_CAMEL = re.compile(r"[a-z][A-Z]")


@dataclass
class Family:
    name: str
    type: str = "untyped"
    help: str | None = None
    labels: set[str] = field(default_factory=set)
    samples: int = 0


def parse(text: str) -> dict[str, Family]:
    """Families of a text exposition by name, with the label names their samples use."""
    families: dict[str, Family] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            families.setdefault(name, Family(name)).help = help_text.strip()
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            families.setdefault(name, Family(name)).type = kind.strip()
        elif line and not line.startswith("#"):
            match = _SAMPLE.match(line)
            if match is None:
                raise ValueError(f"not a sample line: {line!r}")
            sample = match.group(1)
            family = families.get(sample)
            if family is None:
                for suffix in ("_bucket", "_sum", "_count", "_created"):
                    owner = families.get(sample.removesuffix(suffix))
                    if sample.endswith(suffix) and owner is not None:
                        family = owner
                        break
            if family is None:
                family = families.setdefault(sample, Family(sample))
            family.samples += 1
            family.labels.update(_LABEL.findall(match.group(3) or ""))
    return families


def _unit_problems(name: str) -> list[str]:
    problems = []
    for part in name.split("_"):
        if part in OTHER_UNITS:
            problems.append(f'use base unit "{OTHER_UNITS[part]}" instead of "{part}"')
            continue
        for prefix in PREFIXES:
            base = part.removeprefix(prefix)
            if base != part and base in BASE_UNITS:
                problems.append(f'use base unit "{BASE_UNITS[base]}" instead of "{part}"')
    return problems


def lint(text: str) -> list[str]:
    """``name message`` for every problem promtool would report; empty when clean."""
    problems: list[str] = []
    for family in parse(text).values():
        name, kind = family.name, family.type

        def report(message: str, name: str = name) -> None:
            problems.append(f"{name} {message}")

        if not family.help:
            report("no help text")
        if kind == "counter" and not name.endswith("_total"):
            report('counter metrics should have "_total" suffix')
        if kind not in ("counter", "untyped") and name.endswith("_total"):
            report('non-counter metrics should not have "_total" suffix')
        if kind not in ("histogram", "summary"):
            for suffix in ("_count", "_sum", "_bucket"):
                if name.endswith(suffix):
                    report(
                        f'non-histogram and non-summary metrics should not have "{suffix}" suffix'
                    )
        if kind != "histogram" and "le" in family.labels:
            report('non-histogram metrics should not have "le" label')
        if kind != "summary" and "quantile" in family.labels:
            report('non-summary metrics should not have "quantile" label')
        for type_name in TYPES[:4]:
            if f"_{type_name}_" in name or name.endswith(f"_{type_name}"):
                report(f"metric name should not include type '{type_name}'")
        if ":" in name:
            report("metric names should not contain ':'")
        if _CAMEL.search(name):
            report("metric names should be written in 'snake_case' not 'camelCase'")
        if any(_CAMEL.search(label) for label in family.labels):
            report("label names should be written in 'snake_case' not 'camelCase'")
        for message in _unit_problems(name):
            report(message)
        if any(f"_{a}_" in name or name.endswith(f"_{a}") for a in UNIT_ABBREVIATIONS):
            report("metric names should not contain abbreviated units")
    return sorted(problems)
