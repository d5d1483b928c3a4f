"""Exceptions of the service layer.

::

    RemoteError
    └── ServiceError
        ├── MenuNotFound        no snapshot matches (e.g. nothing current at the time asked)
        └── NoOwnerReachable    no owner of the dispensary answered within the deadline
"""

from __future__ import annotations

from whnode.errors import RemoteError

__all__ = ["MenuNotFound", "NoOwnerReachable", "ServiceError"]


class ServiceError(RemoteError):
    """The read-through policy could not produce an answer."""

    def __init__(self, message: str, *, dispensary_id: str) -> None:
        super().__init__(message)
        self.dispensary_id = dispensary_id


class MenuNotFound(ServiceError):
    """No snapshot of the dispensary matches the request."""


class NoOwnerReachable(ServiceError):
    """No owner of the dispensary answered within the request deadline."""
