"""What a network-reachable HTTP server refuses: oversized bodies, floods, foreign Hosts and Origins, guessed tokens.

tests/server/test_http.py covers the bearer token's 401s, the basic Host/Origin refusals and the
start-up refusal; this file covers the limits and what stays on beyond loopback.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest

from outboundcalls_mcp.server.http_transport import MAX_BODY_BYTES, BearerTokenMiddleware, build_http_app
from outboundcalls_mcp.server.rate_limit import MAX_TRACKED_CLIENTS, TokenBuckets
from outboundcalls_mcp.server.settings import SettingsError, load_settings
from tests.harness import Rig, make_rig

pytestmark = pytest.mark.anyio

TOKEN = "t0k3n-" + "y" * 40
PORT = 8765
BASE = f"http://127.0.0.1:{PORT}"
LIST_TOOLS = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


class FakeClock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def serving(rig: Rig, *, host: str = "127.0.0.1", clock: FakeClock | None = None) -> AsyncIterator[Any]:
    """The rig's server as the HTTP app bound (notionally) to host:PORT, its session manager running."""
    app = build_http_app(rig.settings, rig.server, host=host, port=PORT, clock=clock or FakeClock())
    async with rig.server.session_manager.run():
        yield app


def http(app: Any, client_ip: str = "127.0.0.1", base: str = BASE) -> httpx2.AsyncClient:
    """A raw HTTP client into the app, appearing to come from client_ip."""
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app, client=(client_ip, 50000)), base_url=base)


async def test_a_body_over_one_mebibyte_gets_413_before_any_tool_runs(tmp_path: Path) -> None:
    """The cap is the SDK's max_request_body_size, set to 1 MiB instead of its 4 MiB default."""
    rig = make_rig(tmp_path)
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "get_balance", "arguments": {}}}
    padding = "x" * (MAX_BODY_BYTES + 1)
    async with serving(rig) as app, http(app) as client:
        response = await client.post("/mcp", content=json.dumps({**call, "pad": padding}), headers=MCP_HEADERS)
    assert MAX_BODY_BYTES == 1024 * 1024
    assert response.status_code == 413
    assert rig.sandbox.requests == []


async def test_a_body_under_the_cap_is_not_refused_for_its_size(tmp_path: Path) -> None:
    """The cap refuses floods, not ordinary large arguments."""
    rig = make_rig(tmp_path)
    body = json.dumps({**LIST_TOOLS, "pad": "x" * (MAX_BODY_BYTES // 2)})
    async with serving(rig) as app, http(app) as client:
        response = await client.post("/mcp", content=body, headers=MCP_HEADERS)
    assert response.status_code != 413


async def test_a_client_over_its_rate_gets_429_with_retry_after_and_recovers_as_tokens_refill(tmp_path: Path) -> None:
    """3 per minute: a burst of 3 passes, the 4th waits 20 s for the next token, and gets it then."""
    rig = make_rig(tmp_path, http_rate_limit=3)
    clock = FakeClock()
    async with serving(rig, clock=clock) as app, http(app) as client:
        passed = [(await client.post("/mcp", json=LIST_TOOLS, headers=MCP_HEADERS)).status_code for _ in range(3)]
        limited = await client.post("/mcp", json=LIST_TOOLS, headers=MCP_HEADERS)
        clock.now += 19.0
        still = await client.post("/mcp", json=LIST_TOOLS, headers=MCP_HEADERS)
        clock.now += 1.0
        again = await client.post("/mcp", json=LIST_TOOLS, headers=MCP_HEADERS)
    assert 429 not in passed
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "20"
    assert limited.json()["error"] == "rate_limited"
    assert still.status_code == 429 and still.headers["retry-after"] == "1"
    assert again.status_code != 429


async def test_the_rate_limit_is_per_client_address(tmp_path: Path) -> None:
    """One client's flood does not lock out another."""
    rig = make_rig(tmp_path, http_rate_limit=2)
    async with serving(rig) as app, http(app, "10.0.0.1") as flood, http(app, "10.0.0.2") as other:
        statuses = [(await flood.post("/mcp", json=LIST_TOOLS, headers=MCP_HEADERS)).status_code for _ in range(5)]
        calm = await other.post("/mcp", json=LIST_TOOLS, headers=MCP_HEADERS)
    assert statuses[2:] == [429, 429, 429]
    assert calm.status_code != 429


async def test_guessing_the_bearer_token_spends_the_guessers_budget(tmp_path: Path) -> None:
    """The limit sits before the token check: wrong guesses are 401 until the budget is gone, then 429 for all."""
    rig = make_rig(tmp_path, http_token=TOKEN, http_rate_limit=3)
    async with serving(rig) as app, http(app) as client:
        guesses = [
            (await client.post("/mcp", json=LIST_TOOLS, headers=MCP_HEADERS | {"authorization": f"Bearer guess{i}"}))
            for i in range(4)
        ]
        right = await client.post("/mcp", json=LIST_TOOLS, headers=MCP_HEADERS | {"authorization": f"Bearer {TOKEN}"})
    assert [g.status_code for g in guesses] == [401, 401, 401, 429]
    assert right.status_code == 429


async def test_a_rate_limit_of_zero_turns_it_off(tmp_path: Path) -> None:
    """For a trusted single-tenant deployment (and the load benchmark)."""
    rig = make_rig(tmp_path, http_rate_limit=0)
    async with serving(rig) as app, http(app) as client:
        statuses = {(await client.post("/mcp", json=LIST_TOOLS, headers=MCP_HEADERS)).status_code for _ in range(30)}
    assert 429 not in statuses


async def test_routes_outside_mcp_are_not_rate_limited(tmp_path: Path) -> None:
    """Vendor webhooks arrive in bursts after a campaign and carry their own secret."""
    rig = make_rig(tmp_path, http_rate_limit=1)
    async with serving(rig) as app, http(app) as client:
        statuses = [(await client.post("/not-mcp", json={})).status_code for _ in range(5)]
    assert 429 not in statuses


def test_idle_clients_are_forgotten_so_a_flood_of_addresses_cannot_grow_memory_forever() -> None:
    """Full buckets carry no information; they are dropped once the table is at its bound."""
    clock = FakeClock()
    buckets = TokenBuckets(60, clock=clock)
    for index in range(MAX_TRACKED_CLIENTS):
        assert buckets.take(f"10.{index}") == 0.0
    assert len(buckets) == MAX_TRACKED_CLIENTS
    clock.now += 60.0
    buckets.take("one more")
    assert len(buckets) == 1


def test_a_negative_rate_limit_is_a_settings_error_naming_the_variable() -> None:
    """A typo must stop start-up, not silently disable the limit."""
    with pytest.raises(SettingsError, match="OUTBOUNDCALLS_HTTP_RATE_LIMIT"):
        load_settings({"OUTBOUNDCALLS_HTTP_RATE_LIMIT": "-1"})
    assert load_settings({}).http_rate_limit == 600


@pytest.mark.parametrize("origin", ["http://localhost:8765", "http://127.0.0.1:8765", "http://[::1]:8765"])
async def test_a_loopback_origin_is_accepted_without_a_token(tmp_path: Path, origin: str) -> None:
    """A local browser-based client works on a loopback bind, with no token set."""
    rig = make_rig(tmp_path)
    async with serving(rig) as app, http(app) as client:
        response = await client.post("/mcp", json=LIST_TOOLS, headers=MCP_HEADERS | {"origin": origin})
    assert response.status_code not in (401, 403, 421)


@pytest.mark.parametrize("origin", ["null", "http://127.0.0.1.evil.example:8765", "https://localhost.evil.example"])
async def test_look_alike_and_opaque_origins_get_403(tmp_path: Path, origin: str) -> None:
    """A sandboxed iframe (Origin: null) or a look-alike host cannot drive the server from a browser."""
    rig = make_rig(tmp_path)
    async with serving(rig) as app, http(app) as client:
        response = await client.post("/mcp", json=LIST_TOOLS, headers=MCP_HEADERS | {"origin": origin})
    assert response.status_code == 403


@pytest.mark.parametrize(("host_header", "status"), [("192.168.1.20:8765", None), ("evil.example:8765", 421)])
async def test_dns_rebinding_protection_stays_on_for_a_public_bind(
    tmp_path: Path, host_header: str, status: int | None
) -> None:
    """The SDK turns the Host check off for non-loopback binds; ours keeps it, admitting the bound address."""
    rig = make_rig(tmp_path, http_token=TOKEN)
    headers = MCP_HEADERS | {"authorization": f"Bearer {TOKEN}", "host": host_header}
    async with serving(rig, host="192.168.1.20") as app, http(app, "192.168.1.7") as client:
        response = await client.post("/mcp", json=LIST_TOOLS, headers=headers)
    if status is None:
        assert response.status_code not in (401, 403, 421)
    else:
        assert response.status_code == status


def test_the_bearer_token_is_compared_in_constant_time() -> None:
    """hmac.compare_digest over the whole header: no early exit that times out the matching prefix."""
    source = inspect.getsource(BearerTokenMiddleware.__call__)
    assert "hmac.compare_digest(" in source
    assert "== self.expected" not in source and "startswith(self.expected" not in source
