"""Logging set-up: text or JSON lines on the given stream, configured only at the edge."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from whnode.config import LogConfig, LogFormat
from whnode.logs import configure_logging


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_carry_extra_fields_and_exceptions() -> None:
    stream = io.StringIO()
    configure_logging(LogConfig(format=LogFormat.JSON, level="debug"), stream=stream)
    log = logging.getLogger("whnode.test")
    log.info("fill done for %s", "jane:1", extra={"dispensary": "jane:1", "ms": 12.5})
    try:
        raise ValueError("bad")
    except ValueError:
        log.exception("failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines() if line[0] == "{")
    assert first["level"] == "info"
    assert first["logger"] == "whnode.test"
    assert first["message"] == "fill done for jane:1"
    assert (first["dispensary"], first["ms"]) == ("jane:1", 12.5)
    assert first["ts"].endswith("Z")
    assert second["level"] == "error"
    assert "ValueError: bad" in second["exc"]


def test_text_lines_and_level_filtering_and_reconfiguration() -> None:
    first = io.StringIO()
    configure_logging(LogConfig(format=LogFormat.TEXT, level="INFO"), stream=first)
    second = io.StringIO()
    configure_logging(LogConfig(format=LogFormat.TEXT, level="WARNING"), stream=second)
    log = logging.getLogger("whnode.test")
    log.info("hidden")
    log.warning("shown", extra={"peer": "a"})
    assert first.getvalue() == ""  # the first handler was replaced, not duplicated
    line = second.getvalue().rstrip("\n")
    assert line.endswith(" WARNING whnode.test: shown peer=a")
    assert "hidden" not in second.getvalue()


def test_noisy_libraries_are_quiet_unless_debugging() -> None:
    configure_logging(LogConfig(level="INFO"), stream=io.StringIO())
    assert logging.getLogger("aiohttp.access").getEffectiveLevel() == logging.WARNING
    configure_logging(LogConfig(level="DEBUG"), stream=io.StringIO())
    assert logging.getLogger("kademlia").getEffectiveLevel() == logging.DEBUG
