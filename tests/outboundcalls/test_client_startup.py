"""The client builds its connection pool on the first request, so a server spawned to list tools never pays for it."""

from __future__ import annotations

import subprocess
import sys

import httpx2
import pytest

from outboundcalls import OutboundCallsClient

pytestmark = pytest.mark.anyio

KEY = "oc_live_startup_test_key"


class Counting(httpx2.AsyncBaseTransport):
    """Answers every request and counts requests and closes."""

    def __init__(self) -> None:
        self.requests = 0
        self.closes = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        self.requests += 1
        return httpx2.Response(200, json={"credits": 3})

    async def aclose(self) -> None:
        self.closes += 1


def test_building_a_client_loads_neither_the_connection_stack_nor_the_trust_store() -> None:
    code = (
        "import sys; from outboundcalls import OutboundCallsClient; "
        f"OutboundCallsClient({KEY!r}); "
        "loaded = sorted(m for m in ('httpcore2', 'h11', 'truststore') if m in sys.modules); "
        "assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


async def test_the_first_request_builds_the_pool_and_later_requests_reuse_it() -> None:
    transport = Counting()
    async with OutboundCallsClient(KEY, transport=transport) as client:
        assert (await client.get_account()).credits == 3
        assert (await client.get_account()).credits == 3
    assert (transport.requests, transport.closes) == (2, 1)


async def test_a_client_closed_before_any_request_closes_its_transport_once() -> None:
    transport = Counting()
    async with OutboundCallsClient(KEY, transport=transport):
        pass
    assert (transport.requests, transport.closes) == (0, 1)


async def test_a_closed_client_sends_nothing() -> None:
    transport = Counting()
    client = OutboundCallsClient(KEY, transport=transport)
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.get_account()
    assert transport.requests == 0
