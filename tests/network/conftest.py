"""Fixtures of the network tests: the sandbox upstream on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from whnode.sandbox import SandboxConfig, run_sandbox
from whnode.testing.sandbox_fixture import SandboxHandle


@pytest.fixture
async def sandbox() -> AsyncIterator[SandboxHandle]:
    async with run_sandbox(SandboxConfig()) as server:
        yield SandboxHandle(server)
