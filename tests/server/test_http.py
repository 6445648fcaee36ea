"""Streamable HTTP over ASGI, in both eras: tools/list works, the bearer token is enforced, bad Hosts are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from outboundcalls_mcp.server.http_transport import build_http_app, check_exposure, serve_http
from outboundcalls_mcp.server.settings import Settings, SettingsError
from outboundcalls_mcp.tools import READ_TOOLS, WRITE_TOOLS
from tests.harness import Rig, make_rig, make_settings

pytestmark = pytest.mark.anyio

TOKEN = "t0k3n-" + "x" * 40
# The port is part of the base URL: the loopback Host check wants "127.0.0.1:<port>".
BASE = "http://127.0.0.1:8765"
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@asynccontextmanager
async def serving(rig: Rig) -> AsyncIterator[Any]:
    """The rig's server as the HTTP app, with the session manager running (ASGITransport sends no lifespan)."""
    app = build_http_app(rig.settings, rig.server, host="127.0.0.1", port=8765)
    async with rig.server.session_manager.run():
        yield app


def _mcp_client(app: Any, mode: str, headers: dict[str, str] | None = None) -> Client:
    http = httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), headers=headers or {})
    return Client(streamable_http_client(f"{BASE}/mcp", http_client=http), mode=mode)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_tools_list_and_a_tool_call_work_over_streamable_http(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path)
    async with serving(rig) as app, _mcp_client(app, mode) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        balance = await client.call_tool("get_balance", {})
    assert names >= {*READ_TOOLS, *WRITE_TOOLS}
    assert balance.structured_content is not None and balance.structured_content["sandbox"] is True


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_with_a_token_configured_a_client_that_sends_it_works(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path, http_token=TOKEN)
    async with serving(rig) as app, _mcp_client(app, mode, {"authorization": f"Bearer {TOKEN}"}) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert "get_balance" in names


@pytest.mark.parametrize(
    "authorization",
    [None, "", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}", f"bearer  {TOKEN}"],
    ids=["none", "empty", "short", "long", "no-scheme", "basic", "odd-spacing"],
)
async def test_with_a_token_configured_every_request_without_it_gets_401(
    tmp_path: Path, authorization: str | None
) -> None:
    rig = make_rig(tmp_path, http_token=TOKEN)
    headers = MCP_HEADERS | ({"authorization": authorization} if authorization is not None else {})
    async with serving(rig) as app, httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE) as http:
        posted = await http.post("/mcp", json=LIST_TOOLS, headers=headers)
        fetched = await http.get("/mcp", headers=headers)
        deleted = await http.delete("/mcp/", headers=headers)
    assert [posted.status_code, fetched.status_code, deleted.status_code] == [401, 401, 401]
    assert posted.headers["www-authenticate"].startswith("Bearer")
    assert TOKEN not in posted.text


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_client_without_the_token_cannot_connect(tmp_path: Path, mode: str) -> None:
    rig = make_rig(tmp_path, http_token=TOKEN)
    refused: list[BaseException] = []
    async with serving(rig) as app:
        try:
            async with _mcp_client(app, mode) as client:
                await client.list_tools()
        except* MCPError as group:  # connect-time HTTP failures arrive as nested exception groups
            refused.append(group)
    assert refused, "the client connected without the token"
    assert "Server returned an error response" in repr(refused[0])
    assert rig.sandbox.requests == []


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1", "127.0.0.1.evil.example:8765"])
async def test_a_bad_host_header_gets_421(tmp_path: Path, host: str) -> None:
    rig = make_rig(tmp_path, http_token=TOKEN)
    headers = MCP_HEADERS | {"authorization": f"Bearer {TOKEN}", "host": host}
    async with serving(rig) as app, httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE) as http:
        response = await http.post("/mcp", json=LIST_TOOLS, headers=headers)
    assert response.status_code == 421


async def test_a_foreign_origin_gets_403(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    headers = MCP_HEADERS | {"origin": "https://evil.example"}
    async with serving(rig) as app, httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE) as http:
        response = await http.post("/mcp", json=LIST_TOOLS, headers=headers)
    assert response.status_code == 403


async def test_an_allowed_extra_host_is_accepted(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, http_allowed_hosts="mcp.example.com")
    headers = MCP_HEADERS | {"host": "mcp.example.com"}
    async with serving(rig) as app, httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url=BASE) as http:
        response = await http.post("/mcp", json=LIST_TOOLS, headers=headers)
    assert response.status_code != 421


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "example.com"])
def test_a_non_loopback_bind_without_a_token_refuses_to_start(host: str) -> None:
    with pytest.raises(SettingsError) as raised:
        check_exposure(Settings.model_validate({}), host)
    assert "OUTBOUNDCALLS_HTTP_TOKEN" in str(raised.value) and host in str(raised.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_a_loopback_bind_needs_no_token(host: str) -> None:
    check_exposure(Settings.model_validate({}), host)


@pytest.mark.parametrize(
    ("host", "allowed"), [("192.168.1.20", ""), ("0.0.0.0", "192.168.1.20"), ("::", "mcp.example.com")]
)
def test_a_non_loopback_bind_with_a_token_may_start(host: str, allowed: str) -> None:
    check_exposure(Settings.model_validate({"http_token": TOKEN, "http_allowed_hosts": allowed}), host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]"])
def test_a_wildcard_bind_without_allowed_hosts_refuses_to_start_since_every_request_would_get_421(host: str) -> None:
    with pytest.raises(SettingsError) as raised:
        check_exposure(Settings.model_validate({"http_token": TOKEN}), host)
    assert "OUTBOUNDCALLS_HTTP_ALLOWED_HOSTS" in str(raised.value)


async def test_a_wildcard_bind_serves_clients_that_use_an_allowed_host(tmp_path: Path) -> None:
    rig = make_rig(tmp_path, http_token=TOKEN, http_allowed_hosts="192.168.1.20")
    app = build_http_app(rig.settings, rig.server, host="0.0.0.0", port=8765)
    headers = MCP_HEADERS | {"authorization": f"Bearer {TOKEN}"}
    async with rig.server.session_manager.run():
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app)) as http:
            known = await http.post("http://192.168.1.20:8765/mcp", json=LIST_TOOLS, headers=headers)
            unknown = await http.post("http://192.168.1.21:8765/mcp", json=LIST_TOOLS, headers=headers)
    # The known Host gets past the guard (to the MCP layer's own answer); the other does not.
    assert known.status_code != 421 and unknown.status_code == 421


def test_serve_http_on_a_public_address_without_a_token_exits_2_before_listening(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve_http(make_settings(tmp_path), host="0.0.0.0", port=8765) == 2
    captured = capsys.readouterr()
    assert "OUTBOUNDCALLS_HTTP_TOKEN" in captured.err and "serving" not in captured.err and captured.out == ""
