"""Streamable HTTP served by uvicorn on a loopback socket: what ASGITransport cannot show, long-lived SSE streams.

ASGITransport hands back a response only once the app has finished it, so a stream that stays
open (the handshake era's standalone GET stream, the 2026-07-28 era's subscriptions/listen)
can only be exercised against a real server. Here that is uvicorn on 127.0.0.1, on a port the
test binds first, so the Host check knows it.
"""

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
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.subscriptions import ResourceUpdated

from outboundcalls_mcp.server.http_transport import build_http_app
from tests.harness import Rig, make_rig
from tests.tools.subscription_kit import Heard, place_call, subscribe

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def live(rig: Rig) -> AsyncIterator[str]:
    """The rig's server behind uvicorn on a loopback port; yields the MCP endpoint's URL."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        # Listening before uvicorn starts: a client that connects early waits in the backlog, and
        # uvicorn accepts only once the app's lifespan (the MCP session manager) is up.
        listener.listen()
        port = listener.getsockname()[1]
        app = build_http_app(rig.settings, rig.server, host="127.0.0.1", port=port)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [listener])
            try:
                yield f"http://127.0.0.1:{port}/mcp"
            finally:
                server.should_exit = True


@asynccontextmanager
async def connect(url: str, mode: str, **kwargs: Any) -> AsyncIterator[Client]:
    """An MCP client over its own HTTP connection pool, closed with it (the transport does not close a given pool)."""
    async with (
        httpx2.AsyncClient(trust_env=False, timeout=10) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode, **kwargs) as client,
    ):
        yield client


async def test_a_handshake_era_subscriber_hears_a_calls_end_on_the_standalone_stream(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    call_id = await place_call(rig)
    heard = Heard()
    async with live(rig) as url, connect(url, "legacy", message_handler=heard) as client:
        await subscribe(client, f"outboundcalls://calls/{call_id}")
        result = await client.call_tool("wait_for_call", {"call_id": call_id, "timeout_seconds": 120})
        with anyio.fail_after(10):
            await heard.arrived.wait()
        # Seen ended again: the server publishes only the first end (pinned in test_subscriptions,
        # where one round trip proves nothing is still in flight; over HTTP the notice travels on
        # its own stream, so here it is only what has arrived by then).
        await client.call_tool("get_call", {"call_id": call_id})
        await client.list_prompts()
    assert result.structured_content is not None and result.structured_content["call"]["status"] == "completed"
    assert heard.uris == [f"outboundcalls://calls/{call_id}"]


async def test_a_modern_listener_hears_a_calls_end_over_a_live_listen_stream(tmp_path: Path) -> None:
    rig = make_rig(tmp_path)
    call_id = await place_call(rig)
    uri = f"outboundcalls://calls/{call_id}/transcript"
    async with live(rig) as url, connect(url, "auto") as client, client.listen(resource_subscriptions=[uri]) as events:
        await client.call_tool("get_call", {"call_id": call_id})  # still live: nothing to hear
        await rig.sandbox.advance(120)
        await client.call_tool("get_call", {"call_id": call_id})
        with anyio.fail_after(10):
            assert await anext(aiter(events)) == ResourceUpdated(uri=uri)
