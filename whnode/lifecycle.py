"""One lifecycle: ``await x.aclose()`` (or leaving ``async with x``) ends what whnode starts.

:class:`AsyncClosing` gives a class ``async with`` that awaits its ``aclose()`` on the way
out; :class:`AsyncService` also awaits ``start()`` on the way in. :func:`deprecated_alias`
keeps an old method name for a release while callers move to the new one.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self, TypeVar, cast

__all__ = ["AsyncClosing", "AsyncService", "deprecated_alias"]

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


class AsyncClosing:
    """``async with resource:`` returns it and awaits ``aclose()`` when the block ends."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class AsyncService(AsyncClosing):
    """``async with service:`` awaits ``start()`` first (a service that fails to start
    cleans up after itself before raising)."""

    async def start(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self
