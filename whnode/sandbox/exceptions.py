"""Errors of the sandbox's controls (misuse by a test, a benchmark or a control request).

::

    UsageError                      (whnode.errors)
    └── SandboxError
        ├── UnknownSandboxDispensary   a control named a dispensary the sandbox does not serve
        │                              (also a KeyError)
        └── InvalidSandboxControl      a control value is out of range (also a ValueError)

What the simulated APIs answer to their own clients is HTTP, never these.
"""

from __future__ import annotations

from whnode.errors import UsageError

__all__ = ["InvalidSandboxControl", "SandboxError", "UnknownSandboxDispensary"]


class SandboxError(UsageError):
    """A sandbox control was misused."""


class UnknownSandboxDispensary(SandboxError, KeyError):
    """The sandbox does not serve this dispensary."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidSandboxControl(SandboxError, ValueError):
    """A latency, rate, version step or fault value is out of range."""
