"""``whnode get --format cbor|cose`` writes what the HTTP API serves as application/cbor and
application/cose (a real ``python -m whnode`` process against a real API server)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from tests.api.support import (
    DISPENSARY,
    ApiServer,
    ContextDouble,
    ServiceDouble,
    make_menu,
    make_record,
    now_ms,
)
from whnode.record.keys import SigningKey


def _get_bytes(url: str, output_format: str) -> bytes:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("WHNODE_")}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "whnode",
            "get",
            DISPENSARY,
            "--node",
            url,
            "--format",
            output_format,
        ],
        capture_output=True,
        env=environ,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


async def test_cbor_and_cose_are_the_http_representations() -> None:
    record = make_record(make_menu(fetched_at_ms=now_ms() - 60_000), SigningKey.generate())
    service = ServiceDouble()
    service.add(record)
    async with ApiServer(ContextDouble(service)) as server:
        served = {}
        for media_type in ("application/cbor", "application/cose"):
            async with server.http.get(
                f"/v1/menus/{DISPENSARY}", headers={"Accept": media_type}
            ) as response:
                assert response.status == 200
                assert response.content_type == media_type
                served[media_type] = await response.read()
        cbor, cose = await asyncio.gather(
            asyncio.to_thread(_get_bytes, server.url, "cbor"),
            asyncio.to_thread(_get_bytes, server.url, "cose"),
        )
    assert cbor == served["application/cbor"]
    assert cose == served["application/cose"] == record.encoded
    assert cbor != cose
