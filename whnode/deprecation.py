"""Old method names kept for a release while callers move to the new ones."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar, cast

__all__ = ["deprecated_alias"]

F = TypeVar("F", bound=Callable[..., Any])


def deprecated_alias(method: F, old_name: str) -> F:
    """``old_name`` for ``method``: calls it, with a DeprecationWarning naming the new name.

    ::

        class Node:
            async def aclose(self) -> None: ...

            stop = deprecated_alias(aclose, "stop")
    """

    @functools.wraps(method)
    def alias(self: Any, *args: Any, **kwargs: Any) -> Any:
        warnings.warn(
            f"{type(self).__name__}.{old_name}() is deprecated; use {method.__name__}()",
            DeprecationWarning,
            stacklevel=2,
        )
        return method(self, *args, **kwargs)

    return cast(F, alias)
