"""systemd's readiness protocol (``sd_notify``), without a dependency.

Under a ``Type=notify`` unit, systemd passes the path of a datagram socket in
``$NOTIFY_SOCKET`` (an abstract socket when it starts with ``@``); the service sends
newline-separated ``KEY=VALUE`` assignments to it:

- ``READY=1`` once the node serves (systemd then starts units ordered after it, and
  ``systemctl start`` returns);
- ``RELOADING=1`` (with ``MONOTONIC_USEC``) when SIGHUP rereads the configuration, then
  ``READY=1`` again;
- ``STOPPING=1`` when the drain begins;
- ``STATUS=...``: one line shown by ``systemctl status``.

Outside systemd (no ``$NOTIFY_SOCKET``) every call does nothing. A failed send is logged at
DEBUG and never stops the node. The CLI reads the variable; nothing else here reads the
environment.
"""

from __future__ import annotations

import logging
import os
import socket
import time

__all__ = ["Notifier"]

LOG = logging.getLogger(__name__)


class Notifier:
    """Sends state changes to systemd's notification socket (``address`` None: no-op)."""

    def __init__(self, address: str | None) -> None:
        self.address = address or None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: object) -> bool:
        """Send ``KEY=VALUE`` lines (``ready=1`` → ``READY=1``); True when sent."""
        if self.address is None:
            return False
        message = "\n".join(f"{key.upper()}={value}" for key, value in fields.items())
        target = self.address
        if target.startswith("@"):
            target = "\0" + target[1:]  # Linux abstract namespace
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode("utf-8"), target)
        except OSError as exc:
            LOG.debug("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send(ready=1, status=status, mainpid=os.getpid())

    def reloading(self) -> bool:
        return self.send(
            reloading=1, monotonic_usec=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        )

    def stopping(self, status: str) -> bool:
        return self.send(stopping=1, status=status)

    def status(self, status: str) -> bool:
        return self.send(status=status)
