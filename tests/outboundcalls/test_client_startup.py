"""The client's connection pool: built on the first request, kept, and verifying TLS over https."""

from __future__ import annotations

import subprocess
import sys

import anyio
import anyio.abc
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


class BarrierServer:
    """A loopback HTTP/1.1 server that answers once `size` requests wait at once, counting connections."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.connections = 0
        self.waiting = 0
        self.release = anyio.Event()

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        self.connections += 1
        buffer = b""
        async with stream:
            while True:
                while b"\r\n\r\n" not in buffer:
                    try:
                        buffer += await stream.receive()
                    except (anyio.EndOfStream, anyio.BrokenResourceError):
                        return
                _, buffer = buffer.split(b"\r\n\r\n", 1)
                self.waiting += 1
                if self.waiting % self.size == 0:
                    self.release.set()
                await self.release.wait()
                if self.waiting % self.size == 0:
                    self.release = anyio.Event()
                body = b'{"id": "agent_1", "credits": 3}'
                head = f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
                await stream.send(head.encode() + body)


async def test_concurrent_requests_keep_their_connections_for_the_next_burst() -> None:
    burst = 40
    server = BarrierServer(burst)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, server.handle)
        async with OutboundCallsClient(KEY, base_url=f"http://127.0.0.1:{port}/api/v1") as client:
            for _ in range(2):
                with anyio.fail_after(20):
                    async with anyio.create_task_group() as calls:
                        # Distinct reads: identical concurrent ones would share one request.
                        for n in range(burst):
                            calls.start_soon(client.get_agent, f"agent_{n}")
        group.cancel_scope.cancel()
    # 40 at once need 40 connections; the second burst reuses them instead of opening more.
    assert server.connections == burst


def _pool_tls_context(base_url: str) -> list[str]:
    """The TLS context the client's connection pool holds, read in a fresh process: 'None' or its checks."""
    code = (
        "from outboundcalls import OutboundCallsClient; "
        f"client = OutboundCallsClient({KEY!r}, base_url={base_url!r}); pool = client._http; "
        "ctx = pool._transport._pool._ssl_context; "
        "print(ctx if ctx is None else (int(ctx.verify_mode), int(ctx.check_hostname)))"
    )
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()


def test_https_is_verified() -> None:
    import ssl

    assert _pool_tls_context("https://outboundcalls.ai/api/v1") == [f"({int(ssl.CERT_REQUIRED)},", "1)"]
