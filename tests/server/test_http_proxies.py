"""Who the client is over HTTP: X-Forwarded-For is believed only from the proxies the owner names."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
import uvicorn

from outboundcalls_mcp.server.http_transport import build_http_app, routes_served, uvicorn_options
from outboundcalls_mcp.server.settings import SettingsError, load_settings
from tests.harness import make_rig

pytestmark = pytest.mark.anyio

LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
HEADERS = {
    "accept": "application/json, text/event-stream",
    "content-type": "application/json",
    "mcp-protocol-version": "2025-11-25",
}


@asynccontextmanager
async def served(tmp_path: Path, **overrides: Any) -> AsyncIterator[str]:
    """A rig's HTTP app behind uvicorn on loopback, configured as serve_http configures it."""
    rig = make_rig(tmp_path, **overrides)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        app = build_http_app(rig.settings, rig.server, host="127.0.0.1", port=port)
        config = uvicorn.Config(app, log_level="warning", lifespan="on", **uvicorn_options(rig.settings))
        server = uvicorn.Server(config)
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [listener])
            try:
                yield f"http://127.0.0.1:{port}/mcp"
            finally:
                server.should_exit = True


async def limited(url: str, forwarded_for: list[str]) -> list[bool]:
    """Whether the rate limit refused each request (429), sent once per X-Forwarded-For value from loopback."""
    async with httpx2.AsyncClient(trust_env=False, timeout=10) as http:
        return [
            (await http.post(url, json=LIST_TOOLS, headers=HEADERS | {"x-forwarded-for": value})).status_code == 429
            for value in forwarded_for
        ]


async def test_a_fresh_forwarded_for_from_an_untrusted_peer_buys_no_fresh_rate_limit_budget(tmp_path: Path) -> None:
    async with served(tmp_path, http_rate_limit=2) as url:
        seen = await limited(url, ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"])
    assert seen == [False, False, True, True]


async def test_a_trusted_proxys_forwarded_for_names_the_client(tmp_path: Path) -> None:
    async with served(tmp_path, http_rate_limit=2, http_trusted_proxies="127.0.0.1") as url:
        seen = await limited(url, ["203.0.113.1", "203.0.113.1", "203.0.113.1", "203.0.113.2"])
    assert seen == [False, False, True, False]


def test_proxy_headers_are_off_unless_the_owner_names_proxies(tmp_path: Path) -> None:
    assert uvicorn_options(load_settings({})) == {"proxy_headers": False, "forwarded_allow_ips": ""}
    named = load_settings({"OUTBOUNDCALLS_HTTP_TRUSTED_PROXIES": "10.0.0.5, 10.1.0.0/16"})
    assert uvicorn_options(named) == {"proxy_headers": True, "forwarded_allow_ips": "10.0.0.5,10.1.0.0/16"}
    with pytest.raises(SettingsError, match="OUTBOUNDCALLS_HTTP_TRUSTED_PROXIES"):
        load_settings({"OUTBOUNDCALLS_HTTP_TRUSTED_PROXIES": "proxy.example.com"})


def test_the_start_up_lines_name_every_route_and_never_the_webhook_secret() -> None:
    secret = "s" * 32
    settings = load_settings({"OUTBOUNDCALLS_WEBHOOK_SECRET": secret, "OUTBOUNDCALLS_HTTP_TOKEN": "t" * 32})
    lines = routes_served(settings, "127.0.0.1", 8765)
    assert lines == [
        "MCP at http://127.0.0.1:8765/mcp (bearer token required)",
        "post-call webhooks at http://127.0.0.1:8765/webhooks/outboundcalls/<OUTBOUNDCALLS_WEBHOOK_SECRET>",
        "health at http://127.0.0.1:8765/healthz, readiness at http://127.0.0.1:8765/readyz (no token)",
    ]
    assert secret not in " ".join(lines)
    assert routes_served(load_settings({}), "::1", 9000) == [
        "MCP at http://[::1]:9000/mcp",
        "health at http://[::1]:9000/healthz, readiness at http://[::1]:9000/readyz (no token)",
    ]
