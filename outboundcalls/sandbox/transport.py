"""An in-process httpx2 transport into the sandbox that turns lost answers into httpx2 errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx2

from .gateway import InProcessExchange, api_path, in_process

if TYPE_CHECKING:
    from .simulation import Sandbox

__all__ = ["SandboxTransport"]


class SandboxTransport(httpx2.AsyncBaseTransport):
    """httpx2.ASGITransport into the sandbox app, with lost answers raised as httpx2 errors."""

    # "timeout_before_send" raises ConnectTimeout without reaching the app; "hang" (or a delay at
    # least the read timeout) raises ReadTimeout at once; "drop" raises RemoteProtocolError. A
    # plain ASGITransport cannot express these, and tests must never wait on the wall clock.

    def __init__(self, sandbox: Sandbox) -> None:
        self._sandbox = sandbox
        self._asgi = httpx2.ASGITransport(app=sandbox.app)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send one request into the sandbox app."""
        fault = self._sandbox.faults.take(request.method, api_path(request.url.path))
        if fault is not None and fault.kind == "timeout_before_send":
            raise httpx2.ConnectTimeout("sandbox: the request timed out before it was sent", request=request)
        timeouts = request.extensions.get("timeout") or {}
        exchange = InProcessExchange(fault=fault, read_timeout=timeouts.get("read"))
        token = in_process.set(exchange)
        try:
            response = await self._asgi.handle_async_request(request)
        finally:
            in_process.reset(token)
        if exchange.outcome == "read_timeout":
            await response.aclose()
            raise httpx2.ReadTimeout("sandbox: no answer before the read timeout", request=request)
        if exchange.outcome == "drop":
            await response.aclose()
            raise httpx2.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return response
