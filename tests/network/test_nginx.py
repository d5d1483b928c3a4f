"""docker/nginx/whnode.conf in front of three real nodes (Debian's nginx, a sandbox
upstream): a menu, a compressed menu, a 304 and a change stream through it, and a stopped
node left out."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
from pathlib import Path

import aiohttp
import brotli

from whnode.testing.clock import eventually
from whnode.testing.cluster import LocalCluster
from whnode.testing.sandbox_fixture import SandboxHandle

ROOT = Path(__file__).resolve().parents[2]  # the repository
SITE = ROOT / "docker" / "nginx" / "whnode.conf"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def nginx_conf(prefix: Path, listen: int, nodes: list[int]) -> Path:
    """The shipped site file with this test's port and nodes, in a minimal main config."""
    site = SITE.read_text(encoding="utf-8")
    servers = "".join(
        f"    server 127.0.0.1:{port} max_fails=2 fail_timeout=10s;\n" for port in nodes
    )
    site, count = re.subn(r"(    server 127\.0\.0\.1:\d+ [^\n]*\n)+", servers, site)
    assert count == 1
    site = site.replace("listen 8080;", f"listen 127.0.0.1:{listen};")
    user = "user root;\n" if os.geteuid() == 0 else ""
    for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (prefix / name).mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"{user}worker_processes 1;\npid {prefix}/nginx.pid;\nerror_log stderr warn;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"  access_log off;\n  client_body_temp_path {prefix}/client_body;\n"
        f"  proxy_temp_path {prefix}/proxy;\n  fastcgi_temp_path {prefix}/fastcgi;\n"
        f"  uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n"
        f"{site}\n}}\n",
        encoding="utf-8",
    )
    return conf


async def test_three_nodes_behind_nginx(tmp_path: Path, sandbox: SandboxHandle) -> None:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    assert Path(nginx).exists(), "nginx is needed (Debian: apt-get install nginx; .ci/run does)"
    dispensary = sandbox.tiny_dispensary
    async with LocalCluster(3, tmp_path / "nodes", sandbox_url=sandbox.base_url) as cluster:
        listen = free_port()
        conf = nginx_conf(tmp_path / "nginx", listen, [node.port for node in cluster.nodes])
        process = await asyncio.create_subprocess_exec(
            nginx, "-p", str(tmp_path / "nginx"), "-c", str(conf), "-g", "daemon off;",
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        base = f"http://127.0.0.1:{listen}"
        try:
            async with aiohttp.ClientSession(auto_decompress=False) as session:

                async def ready() -> bool:
                    try:
                        async with session.get(f"{base}/readyz") as response:
                            return response.status == 200
                    except aiohttp.ClientError:
                        return False

                await eventually(ready, timeout=30)
                menu = f"{base}/v1/menus/{dispensary}"
                plain_headers = {"Accept-Encoding": "identity"}
                async with session.get(menu, headers=plain_headers) as response:
                    assert response.status == 200
                    plain = await response.read()
                    plain_tag = response.headers["ETag"]
                async with session.get(menu, headers={"Accept-Encoding": "br"}) as response:
                    assert response.status == 200
                    assert response.headers["Content-Encoding"] == "br"
                    assert "Accept-Encoding" in response.headers["Vary"]
                    assert brotli.decompress(await response.read()) == plain
                    br_tag = response.headers["ETag"]
                assert br_tag != plain_tag
                headers = {"Accept-Encoding": "br", "If-None-Match": br_tag}
                async with session.get(menu, headers=headers) as response:
                    assert response.status == 304
                # a change stream passes through unbuffered: the first event arrives at once
                async with session.get(f"{menu}/events") as stream:
                    assert stream.status == 200
                    assert stream.headers["Content-Type"].startswith("text/event-stream")
                    event = b""
                    while b"event: snapshot" not in event:
                        event = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 10)
                # a stopped node is left out: every request still succeeds
                await cluster.nodes[0].stop()
                for _ in range(12):
                    async with session.get(menu, headers=plain_headers) as response:
                        assert response.status == 200
        finally:
            process.terminate()
            _, errors = await asyncio.wait_for(process.communicate(), 10)
        assert b"[emerg]" not in errors, errors.decode()
