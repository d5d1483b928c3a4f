"""whnode's version: the one place that asks the installed package metadata for it."""

from __future__ import annotations

from importlib import metadata
from typing import Final

__all__ = ["UNKNOWN_VERSION", "VERSION"]

UNKNOWN_VERSION: Final = "0.0.0+unknown"
"""The version of a source tree that is not installed (a PEP 440 version, so that tools
parsing the User-Agent or ``whnode_node_info{version}`` still read it)."""


def _installed_version() -> str:
    try:
        return metadata.version("whnode")
    except metadata.PackageNotFoundError:
        return UNKNOWN_VERSION


VERSION: Final = _installed_version()
"""``whnode --version``, ``whnode.__version__``, the User-Agent and ``whnode_node_info``."""
