"""The sandbox: the upstream menu APIs (Dutchie, Jane, Weedmaps, Leafly) simulated on loopback.

Real paths, shapes, pagination and quirks, deterministic menus from a seed (a named catalog of
tiny, small, realistic, large and quirky menus per vendor, plus an optional generated
population) that change over time, per-client rate limits, latency and injected faults, and
counters of every request. Used by the tests, the benchmarks and ``whnode demo``; run it alone
with ``whnode sandbox --port 8600``. See docs/upstreams.md.

::

    async with run_sandbox(SandboxConfig(population=300, max_items=40)) as sandbox:
        sandbox.base_url, sandbox.dispensaries, sandbox.calls("jane:1547")
"""

from __future__ import annotations

from whnode.sandbox.app import SandboxServer, create_app, run_sandbox
from whnode.sandbox.catalog import (
    LARGE,
    NAMED_IDS,
    QUIRKY,
    REALISTIC,
    SMALL,
    TINY,
    DispensarySpec,
    Item,
    Option,
    SizeClass,
)
from whnode.sandbox.config import SandboxConfig
from whnode.sandbox.exceptions import (
    InvalidSandboxControl,
    SandboxError,
    UnknownSandboxDispensary,
)
from whnode.sandbox.faults import FaultKind, FaultRule, PageSelector
from whnode.sandbox.state import CounterSnapshot, SandboxStatistics

__all__ = [
    "LARGE",
    "NAMED_IDS",
    "QUIRKY",
    "REALISTIC",
    "SMALL",
    "TINY",
    "CounterSnapshot",
    "DispensarySpec",
    "FaultKind",
    "FaultRule",
    "InvalidSandboxControl",
    "Item",
    "Option",
    "PageSelector",
    "SandboxConfig",
    "SandboxError",
    "SandboxServer",
    "SandboxStatistics",
    "SizeClass",
    "UnknownSandboxDispensary",
    "create_app",
    "run_sandbox",
]
