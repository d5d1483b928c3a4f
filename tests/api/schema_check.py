"""A small JSON Schema checker for the subset the OpenAPI document uses.

Strict on purpose: an object may only carry the properties its schema lists (unless the
schema says ``additionalProperties: true``), so that an answer and its documentation cannot
drift apart unnoticed.
"""

from __future__ import annotations

import re
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


def check(
    instance: Any, schema: dict[str, Any], document: dict[str, Any], where: str = "$"
) -> None:
    """Raise AssertionError naming the first place where ``instance`` breaks ``schema``."""
    ref = schema.get("$ref")
    if ref is not None:
        name = ref.rsplit("/", 1)[1]
        check(instance, document["components"]["schemas"][name], document, where)
        return
    if "oneOf" in schema:
        matches = 0
        for option in schema["oneOf"]:
            try:
                check(instance, option, document, where)
            except AssertionError:
                continue
            matches += 1
        assert matches >= 1, f"{where}: {instance!r} matches no alternative"
        return
    if "enum" in schema:
        assert instance in schema["enum"], f"{where}: {instance!r} not in {schema['enum']}"
        return
    kind = schema.get("type")
    if kind is not None:
        allowed = _TYPES[kind]
        assert isinstance(instance, allowed), f"{where}: {instance!r} is not {kind}"
        if kind != "boolean":
            assert not isinstance(instance, bool), f"{where}: {instance!r} is not {kind}"
    if "minimum" in schema:
        assert instance >= schema["minimum"], f"{where}: {instance} < minimum"
    if "maximum" in schema:
        assert instance <= schema["maximum"], f"{where}: {instance} > maximum"
    if "exclusiveMinimum" in schema:
        assert instance > schema["exclusiveMinimum"], f"{where}: {instance} <= exclusiveMinimum"
    if "pattern" in schema:
        assert re.search(schema["pattern"], instance), f"{where}: {instance!r} !~ pattern"
    if kind == "array":
        if "minItems" in schema:
            assert len(instance) >= schema["minItems"], f"{where}: too few items"
        if "maxItems" in schema:
            assert len(instance) <= schema["maxItems"], f"{where}: too many items"
        for index, item in enumerate(instance):
            check(item, schema.get("items", {}), document, f"{where}[{index}]")
    if kind == "object":
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            assert name in instance, f"{where}: missing {name!r}"
        if not schema.get("additionalProperties", False):
            extra = set(instance) - set(properties)
            assert not extra, f"{where}: undocumented properties {sorted(extra)}"
        for name, value in instance.items():
            if name in properties:
                check(value, properties[name], document, f"{where}.{name}")
