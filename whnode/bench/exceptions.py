"""Exceptions of the benchmark commands."""

from __future__ import annotations

from whnode.exceptions import WhnodeError

__all__ = ["NamespaceUnavailable"]


class NamespaceUnavailable(WhnodeError):
    """Network namespaces, veth pairs or TUN devices cannot be created here."""
