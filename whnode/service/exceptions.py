"""Exceptions of the service layer.

::

    RemoteError
    └── ServiceError
        ├── MenuNotFound        no snapshot matches (e.g. nothing current at the time asked)
        └── NoOwnerReachable    no owner of the dispensary answered within the deadline
    NotEntitled (whnode.record.exceptions)
    ├── Refuted                 an owner's answer whose publisher the cross-check blocked
    └── ConflictingRecord       a PUT record in conflict with the records held
"""

from __future__ import annotations

from whnode.errors import RemoteError
from whnode.record.exceptions import NotEntitled

__all__ = ["ConflictingRecord", "MenuNotFound", "NoOwnerReachable", "Refuted", "ServiceError"]


class ServiceError(RemoteError):
    """The read-through policy could not produce an answer."""

    def __init__(self, message: str, *, dispensary_id: str) -> None:
        super().__init__(message)
        self.dispensary_id = dispensary_id


class MenuNotFound(ServiceError):
    """No snapshot of the dispensary matches the request."""


class NoOwnerReachable(ServiceError):
    """No owner of the dispensary answered within the request deadline."""


class Refuted(NotEntitled):
    """An owner's answer whose publisher the cross-check found blocked for the dispensary
    (whnode.service.crosscheck)."""

    reason = "refuted_by_evidence"


class ConflictingRecord(NotEntitled):
    """A record PUT by a peer that conflicts with the records held (resolution pending)."""

    reason = "conflicting_record"
