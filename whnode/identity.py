"""The node's identity: an Ed25519 key pair kept in the data directory.

The key lives in ``<data dir>/identity.key``: the 32-byte raw private key (the RFC 8032 seed)
as 64 lowercase hex digits and a newline, file mode 0600. The node id is SHA-1 of the public
key (``whnode.record.keys.node_id_for``).

The file is created when missing, atomically and exclusively: the key is written to a
temporary file in the same directory (``O_EXCL``, mode 0600, fsync), then hard-linked to
``identity.key`` with ``os.link``, which fails when the name already exists, and the directory
is fsynced. ``os.replace`` would also be atomic, but two processes starting at once would each
install their own key, the second silently replacing the first, and each would believe in a
different identity; with ``link`` the first one wins and the others read its key. A crash
leaves at most a stray ``.identity.key.*.tmp`` file, never a partial key. On a file system
without hard links the key is moved into place with ``os.replace`` if the name is still free.

A key file that group or others may access, that is not a regular file, or that does not
hold a valid key, is refused with a message saying what to do: a node never silently replaces
its identity.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from typing import Final

from whnode import limits
from whnode.exceptions import IdentityError
from whnode.record.exceptions import ModelError
from whnode.record.keys import SigningKey, node_id_for
from whnode.record.puzzle import DEFAULT_DIFFICULTY, solves

__all__ = [
    "IDENTITY_FILE",
    "IdentityError",
    "generate_identity",
    "identity_path",
    "load_identity",
    "load_or_create_identity",
]

IDENTITY_FILE: Final = "identity.key"
MAX_IDENTITY_FILE_BYTES: Final = limits.MAX_IDENTITY_FILE_BYTES
"""See whnode.limits."""
_NO_HARD_LINKS: Final = frozenset({errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV})


def identity_path(data_dir: Path) -> Path:
    """Where the key of the node with data directory ``data_dir`` lives."""
    return Path(data_dir) / IDENTITY_FILE


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
            f"{path}: the identity key is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
        )
    try:
        with path.open("rb") as handle:
            content = handle.read(MAX_IDENTITY_FILE_BYTES + 1)
    except OSError as exc:
        raise IdentityError(f"{path}: cannot read the identity key: {exc.strerror}") from exc
    try:
        if len(content) > MAX_IDENTITY_FILE_BYTES:
            raise ValueError("too long")
        return SigningKey.from_private_bytes(bytes.fromhex(content.decode("ascii").strip()))
    except (UnicodeDecodeError, ValueError, ModelError) as exc:
        raise IdentityError(
            f"{path}: the identity key is corrupt (expected 64 hex digits); "
            "restore it from a backup, or move it away to create a new identity"
        ) from exc


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _install(temporary: Path, path: Path) -> bool:
    """Give ``temporary`` the name ``path`` unless it exists; False when it already did."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS or path.exists():
            raise
        os.replace(temporary, path)
    return True


def generate_identity(difficulty: int = DEFAULT_DIFFICULTY) -> tuple[SigningKey, int]:
    """A new key whose node id solves the id puzzle at ``difficulty`` (``whnode.record.puzzle``),
    and how many keys were generated to find it (2^difficulty on average)."""
    attempts = 0
    while True:
        attempts += 1
        key = SigningKey.generate()
        if solves(node_id_for(key.public_key), difficulty):
            return key, attempts


def load_or_create_identity(data_dir: Path, difficulty: int = DEFAULT_DIFFICULTY) -> SigningKey:
    """The node's key from ``data_dir``, created (atomically, mode 0600) when missing; a new
    key solves the node-id puzzle at ``difficulty`` (``generate_identity``).

    Raises IdentityError when the key file is unsafe or corrupt, or cannot be written. An
    existing key is returned as it is, whatever its id: the caller checks the difficulty.
    """
    data_dir = Path(data_dir)
    path = identity_path(data_dir)
    if path.exists() or path.is_symlink():
        return load_identity(path)
    key, _ = generate_identity(difficulty)
    temporary = data_dir / f".{IDENTITY_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(key.private_bytes().hex().encode("ascii") + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            created = _install(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        if created:
            _fsync_directory(data_dir)
    except OSError as exc:
        raise IdentityError(
            f"{path}: cannot create the identity key: {exc.strerror or exc}"
        ) from exc
    if not created:  # another process created it first: use theirs
        return load_identity(path)
    return key
