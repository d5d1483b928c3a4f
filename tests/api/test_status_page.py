"""The status page, rendered by headless Chromium against a real server and context.

Two checks: the DOM after the page's script ran (``--dump-dom``) shows the node id and the
numbers of the context; the screenshot is a PNG of the window size that is not blank (decoded
here with zlib: enough colours, enough non-background pixels, chart lines drawn).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import struct
import time
import zlib
from pathlib import Path

import pytest

from tests.api.support import DISPENSARY, ApiServer, ContextDouble
from whnode.api.status_page import CONTENT_SECURITY_POLICY, initial_data_block

WIDTH, HEIGHT = 1200, 900
ACCENT = (0x2F, 0x7D, 0x4F)
"""The chart line colour (--accent in status.css)."""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "Chromium is needed (Debian: apt-get install chromium; .ci/run installs it)"
    return found


async def run_chromium(*arguments: str, profile: Path) -> bytes:
    process = await asyncio.create_subprocess_exec(
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=90)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode == 0, stderr.decode(errors="replace")[-2000:]
    return stdout


def decode_png(data: bytes) -> tuple[int, int, int, bytes]:
    """(width, height, channels, raw pixels) of an 8-bit RGB/RGBA non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, idat, header = 8, b"", b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        chunk = data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
        position += 12 + length
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8
    assert interlace == 0
    assert color_type in (2, 6)
    channels = 3 if color_type == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * channels
    pixels = bytearray(height * stride)
    previous = bytearray(stride)
    for row in range(height):
        start = row * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:
            for i in range(channels, stride):
                line[i] = (line[i] + line[i - channels]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        elif kind == 3:
            for i in range(stride):
                left = line[i - channels] if i >= channels else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a = line[i - channels] if i >= channels else 0
                b = previous[i]
                c = previous[i - channels] if i >= channels else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                predictor = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + predictor) & 0xFF
        pixels[row * stride : (row + 1) * stride] = line
        previous = line
    return width, height, channels, bytes(pixels)


def busy_context() -> ContextDouble:
    context = ContextDouble(node_id="5e" * 20)
    now = time.time()
    context.samples.extend(
        {
            "time": now - 3590 + 10 * index,
            "requests": 40 * index + (index * index) % 17,
            "upstream_calls": index // 6,
            "upstream_calls_saved": 38 * index,
            "hot_hits": 30 * index,
            "hot_misses": 10 * index - (index % 4),
            "peers": 3 + index // 120,
            "answers_by_path": {"hot": 30 * index},
        }
        for index in range(360)
    )
    return context


async def test_status_page_renders_in_headless_chromium(tmp_path: Path, record: object) -> None:
    context = busy_context()
    context.service.add(record)  # type: ignore[arg-type]
    context.remember(record)  # type: ignore[arg-type]
    async with ApiServer(context) as server:
        for _ in range(4):
            async with server.http.get(f"/v1/menus/{DISPENSARY}") as response:
                assert response.status == 200
        async with server.http.get("/") as response:
            assert response.status == 200
            assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
            html = await response.text()
        assert "http" not in re.sub(r'href="/[^"]*"|src="/[^"]*"', "", html.split("<body>")[0])
        dom = (
            await run_chromium(
                "--virtual-time-budget=3000",
                "--dump-dom",
                server.url + "/",
                profile=tmp_path / "dom",
            )
        ).decode()
        screenshot = tmp_path / "status.png"
        await run_chromium(
            f"--screenshot={screenshot}",
            f"--window-size={WIDTH},{HEIGHT}",
            "--hide-scrollbars",
            "--virtual-time-budget=3000",
            server.url + "/",
            profile=tmp_path / "shot",
        )
    # The script ran and filled the page from the context's real numbers.
    assert f'<code id="node-id">{"5e" * 20}</code>' in dom
    assert 'id="peers" data-value="3"' in dom
    assert 'id="requests" data-value="4"' in dom
    assert "4 answered, 0 errors" in dom  # the totals add up: answers + errors (+ in flight)
    assert 'id="calls-saved" data-value="3"' in dom
    assert 'id="store-size" data-value="5242880"' in dom
    assert "5.0 MiB" in dom
    assert "42 snapshots of 7 dispensaries" in dom
    assert 'data-path="hot" data-value="4"' in dom
    assert DISPENSARY in dom  # the recent fill
    assert "127.0.0.1:9000" in dom  # a peer
    polylines = re.findall(r'<polyline points="[^"]+" class="line[^"]*" data-points="(\d+)"', dom)
    assert len(polylines) == 5  # requests, hit rate, saved + made, peers
    assert all(int(points) >= 300 for points in polylines)
    assert 'id="connection" class="badge ok"' in dom
    # The screenshot has the window's size and shows a drawn page.
    data = screenshot.read_bytes()
    width, height, channels, pixels = decode_png(data)
    assert (width, height) == (WIDTH, HEIGHT)
    colours = {pixels[i : i + 3] for i in range(0, len(pixels), channels * 7)}
    assert len(colours) > 50
    background = pixels[:3]
    sampled = range(0, len(pixels), channels * 3)
    non_background = sum(1 for i in sampled if pixels[i : i + 3] != background)
    assert non_background > 0.05 * len(sampled)
    accent = sum(
        1
        for i in range(0, len(pixels), channels)
        if all(abs(pixels[i + k] - ACCENT[k]) < 24 for k in range(3))
    )
    assert accent > 300  # chart lines and the hot-path bar


def test_initial_data_cannot_close_the_script_element() -> None:
    block = initial_data_block({"x": "</script><script>alert(1)</script>&"})
    assert "</" not in block
    assert "<" not in block
    assert "&" not in block


async def test_status_page_can_be_turned_off() -> None:
    from whnode.config import ApiConfig, Config

    context = ContextDouble(config=Config(api=ApiConfig(status_page=False)))
    async with ApiServer(context) as server:
        async with server.http.get("/") as response:
            assert response.status == 404
        async with server.http.get("/static/status.js") as response:
            assert response.status == 404


@pytest.mark.parametrize("name", ["status.js", "status.css"])
async def test_assets_are_served_with_validators(server: ApiServer, name: str) -> None:
    async with server.http.get(f"/static/{name}") as response:
        assert response.status == 200
        etag = response.headers["ETag"]
        assert len(await response.read()) > 500
    async with server.http.get(f"/static/{name}", headers={"If-None-Match": etag}) as response:
        assert response.status == 304
