"""The data directory's two run-time files: the lock and the api file.

One process at a time uses a data directory (its identity, store and peer list), as Kubo's
``repo.lock`` ensures for an IPFS repository:

- ``whnode.lock`` is held with an exclusive ``flock`` for as long as a node or a seed runs
  on the directory, and holds the pid of the holder. A second ``whnode run``, ``whnode seed``
  or ``whnode get --embedded`` on the same directory fails at once with
  :class:`DataDirInUse`, which names the pid (exit code 1). The kernel drops the lock when the
  process dies, even by ``kill -9``: a stale file never blocks a restart.
- ``api`` holds the base URL of the running node's HTTP listener (one line,
  ``http://127.0.0.1:8468``), written once it listens and removed when it stops (Kubo's
  ``api`` file). ``whnode status``, ``peers`` and ``get`` read it to find the daemon of the
  data directory, whatever port it was given; :func:`running_api_url` trusts the file only
  while the lock is held, so a file left by a killed process is ignored.

Both functions touch the file system and belong in a thread (``asyncio.to_thread``) when
called from the event loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Final

from whnode.exceptions import DataDirInUse

__all__ = [
    "API_FILE_NAME",
    "LOCK_FILE_NAME",
    "DataDirInUse",
    "DataDirLock",
    "prepare_data_dir",
    "remove_api_file",
    "running_api_url",
    "write_api_file",
]

LOCK_FILE_NAME: Final = "whnode.lock"
API_FILE_NAME: Final = "api"
DATA_DIR_MODE: Final = 0o700
LOCK_ATTEMPTS: Final = 5
LOCK_RETRY_SECONDS: Final = 0.02


def prepare_data_dir(data_dir: Path) -> None:
    """Create ``data_dir`` (mode 0700) when it is missing; an existing one is left as it is."""
    Path(data_dir).mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)


def _read_pid(descriptor: int) -> int | None:
    try:
        text = os.pread(descriptor, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class DataDirLock:
    """The exclusive lock of one data directory, held from :meth:`acquire` to :meth:`release`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_FILE_NAME
        self._descriptor: int | None = None

    @property
    def held(self) -> bool:
        return self._descriptor is not None

    def acquire(self) -> None:
        """Take the lock and write this process's pid, or raise DataDirInUse at once."""
        if self._descriptor is not None:
            return
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            for attempt in range(LOCK_ATTEMPTS):
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    # a reader probing the lock (running_api_url) holds it for microseconds
                    if attempt + 1 == LOCK_ATTEMPTS:
                        raise DataDirInUse(self.data_dir, _read_pid(descriptor)) from None
                    time.sleep(LOCK_RETRY_SECONDS)
        except BaseException:
            os.close(descriptor)
            raise
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode("ascii"), 0)
        self._descriptor = descriptor

    def release(self) -> None:
        """Empty the file and drop the lock (the file stays: removing it would race)."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(descriptor, 0)
        os.close(descriptor)  # closing the last descriptor drops the flock


def _locked_by_someone(data_dir: Path) -> bool:
    """True while a process holds ``data_dir``'s lock (probed without keeping it)."""
    try:
        descriptor = os.open(Path(data_dir) / LOCK_FILE_NAME, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(descriptor)
    return False


def write_api_file(data_dir: Path, url: str) -> None:
    """Write ``url`` to the api file atomically (the holder of the lock calls this)."""
    target = Path(data_dir) / API_FILE_NAME
    staging = target.with_name(f".{API_FILE_NAME}.{os.getpid()}.tmp")
    staging.write_text(url + "\n", encoding="utf-8")
    os.replace(staging, target)


def remove_api_file(data_dir: Path, url: str) -> None:
    """Remove the api file if it still names ``url``."""
    target = Path(data_dir) / API_FILE_NAME
    with contextlib.suppress(OSError):
        if target.read_text(encoding="utf-8").strip() == url:
            target.unlink()


def running_api_url(data_dir: Path) -> str | None:
    """The URL of the node running on ``data_dir``, or None when none runs there."""
    try:
        url = (Path(data_dir) / API_FILE_NAME).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not url.startswith(("http://", "https://")) or not _locked_by_someone(data_dir):
        return None
    return url
