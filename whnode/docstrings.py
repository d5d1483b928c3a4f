"""Docstrings written under assignments, the way this project documents constants, enum
members and dataclass fields::

    MAX_RECORD_BYTES: Final = 256 * 1024
    \"\"\"Largest signed record accepted.\"\"\"

Python keeps no such docstring at run time; this module reads them back from the source, for
the generated documents (docs/configuration.md, docs/cli.md, the limits and record tables).
"""

from __future__ import annotations

import ast
import inspect
from types import ModuleType
from typing import Any

__all__ = ["attribute_docs"]


def attribute_docs(
    owner: ModuleType | type[Any], *, annotated_only: bool = False
) -> dict[str, str]:
    """``{name: docstring}`` for every name assigned in the body of a module or a class, in
    source order ("" for a name with no docstring under it).

    ``annotated_only`` keeps the annotated assignments (``NAME: type = value``) alone.
    """
    tree = ast.parse(inspect.getsource(owner))
    body: list[ast.stmt] = tree.body
    if isinstance(owner, type):
        class_def = body[0]
        if not isinstance(class_def, ast.ClassDef):
            raise TypeError(f"no class definition in the source of {owner!r}")
        body = class_def.body
    docs: dict[str, str] = {}
    for index, node in enumerate(body):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            name = node.target.id
        elif (
            not annotated_only
            and isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
        ):
            name = node.targets[0].id
        else:
            continue
        following = body[index + 1] if index + 1 < len(body) else None
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            docs[name] = following.value.value
        else:
            docs.setdefault(name, "")
    return docs
