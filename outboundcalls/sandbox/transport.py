"""An in-process httpx2 transport into the sandbox that turns lost answers into httpx2 errors."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import httpx2

from .faults import Faults
from .gateway import EXCHANGE_EXTENSION, ASGIApp, InProcessExchange, Receive, Send, api_path

__all__ = ["SandboxTransport"]


class SandboxTransport(httpx2.AsyncBaseTransport):
    """httpx2.ASGITransport into the sandbox app, with lost answers raised as httpx2 errors."""

    # "timeout_before_send" raises ConnectTimeout without reaching the app; "hang" (or a delay at
    # least the read timeout) raises ReadTimeout at once; "drop" raises RemoteProtocolError. A
    # plain ASGITransport cannot express these, and tests must never wait on the wall clock.

    def __init__(self, app: ASGIApp, faults: Faults) -> None:
        self._app = app
        self._faults = faults

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send one request into the sandbox app."""
        fault = self._faults.take(request.method, api_path(request.url.path))
        if fault is not None and fault.kind == "timeout_before_send":
            raise httpx2.ConnectTimeout("sandbox: the request timed out before it was sent", request=request)
        timeouts = request.extensions.get("timeout") or {}
        exchange = InProcessExchange(fault=fault, read_timeout=timeouts.get("read"))

        async def app(scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
            extensions = {**scope.get("extensions", {}), EXCHANGE_EXTENSION: exchange}
            await self._app({**scope, "extensions": extensions}, receive, send)

        response = await httpx2.ASGITransport(app=app).handle_async_request(request)
        if exchange.outcome == "read_timeout":
            await response.aclose()
            raise httpx2.ReadTimeout("sandbox: no answer before the read timeout", request=request)
        if exchange.outcome == "drop":
            await response.aclose()
            raise httpx2.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return response
