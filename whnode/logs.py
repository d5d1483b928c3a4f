"""Log records to stderr as text or JSON lines.

Only the edge configures logging: ``whnode.cli`` (and ``whnode.daemon`` through it) calls
:func:`configure_logging` once. Library modules only ever call ``logging.getLogger(__name__)``
and pass structured fields with ``extra={...}``; an application embedding ``whnode.Node``
keeps its own logging set-up untouched.

Text lines read ``2025-01-31T12:00:00.123Z INFO whnode.node: message key=value``; JSON lines
hold ``ts``, ``level``, ``logger``, ``message``, the ``extra`` fields and, for exceptions,
``exc``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

from whnode.config import LogConfig, LogFormat

__all__ = ["JsonFormatter", "TextFormatter", "configure_logging"]

NOISY_LOGGERS = ("aiohttp.access", "kademlia", "rpcudp")
"""Third-party loggers that chatter at INFO; shown only when the level is DEBUG."""

_STANDARD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None))
) | {"message", "asctime", "taskName"}

_HANDLER_NAME = "whnode-stderr"


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


def _extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
    }


class TextFormatter(logging.Formatter):
    """One human-readable line per record, ``extra`` fields appended as key=value."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        fields = _extra_fields(record)
        if fields:
            line += " " + " ".join(f"{key}={value}" for key, value in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line (for journald, Loki, jq)."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _extra_fields(record).items():
            document.setdefault(key, value)
        if record.exc_info:
            document["exc"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str, ensure_ascii=False)


def configure_logging(config: LogConfig, *, stream: TextIO | None = None) -> None:
    """Send every log record to ``stream`` (stderr) in the configured format.

    Idempotent: a second call replaces the handler the first one installed.
    """
    level = config.level.upper()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    formatter = JsonFormatter() if config.format is LogFormat.JSON else TextFormatter()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        if existing.get_name() == _HANDLER_NAME:
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    quiet = logging.DEBUG if level == "DEBUG" else logging.WARNING
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(quiet)
    logging.captureWarnings(True)
