"""The node's identity: an Ed25519 key pair kept in the data directory.

The key lives in ``identity.key``: the 32-byte raw private key (seed) as 64 hex digits and a
newline, file mode 0600. It is created when missing, atomically and exclusively: written to a
temporary file (O_EXCL, 0600, fsync), then linked into place with ``os.link``, which fails if
another process created the key first (then that key is used). A key file that is readable by
group or others, or that is not a valid key, is refused with a clear message: a node never
silently replaces its identity.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import Final

from whnode.errors import UsageError
from whnode.record.exceptions import ModelError
from whnode.record.keys import SigningKey

__all__ = ["IDENTITY_FILE", "IdentityError", "load_identity", "load_or_create_identity"]

IDENTITY_FILE: Final = "identity.key"


class IdentityError(UsageError):
    """The identity key file is unsafe or unreadable; the operator must fix it."""


def load_identity(path: Path) -> SigningKey:
    """Read a key file, refusing unsafe permissions and corrupt contents."""
    try:
        info = path.stat()
    except OSError as exc:
        raise IdentityError(f"{path}: cannot read the identity key: {exc.strerror}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise IdentityError(f"{path}: the identity key is not a regular file")
    if info.st_mode & 0o077:
        raise IdentityError(
            f"{path}: the identity key is readable by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
        )
    try:
        text = path.read_text(encoding="ascii").strip()
        key = SigningKey.from_private_bytes(bytes.fromhex(text))
    except (OSError, UnicodeDecodeError, ValueError, ModelError) as exc:
        raise IdentityError(
            f"{path}: the identity key is corrupt (expected 64 hex digits); "
            "restore it from a backup, or delete it to create a new identity"
        ) from exc
    return key


def load_or_create_identity(data_dir: Path) -> SigningKey:
    """The node's key from ``data_dir``, created (atomically, mode 0600) when missing."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / IDENTITY_FILE
    if path.exists() or path.is_symlink():
        return load_identity(path)
    key = SigningKey.generate()
    temporary = data_dir / f".{IDENTITY_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as handle:
            handle.write(key.private_bytes().hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return load_identity(path)  # another process created it first: use theirs
        directory = os.open(data_dir, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
    return key
