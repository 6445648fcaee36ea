"""The ASGI layer in front of the routes: it records every request and plays armed faults."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol
from urllib.parse import parse_qsl

import anyio

from .clock import Clock
from .faults import Fault, FaultKind, Faults
from .state import SandboxState

__all__ = [
    "API_PREFIX",
    "DEBUG_PREFIX",
    "EXCHANGE_EXTENSION",
    "HANG_SECONDS",
    "Gateway",
    "InProcessExchange",
    "RecordedRequest",
    "Served",
    "api_path",
]

API_PREFIX: Final = "/api/v1"
# The sandbox's own routes (not the vendor API): never recorded, never faulted.
DEBUG_PREFIX: Final = "/_sandbox"
# Long enough that any sane client times out first, short enough that a stuck test still ends.
HANG_SECONDS: Final = 60.0
_PROXY_PAGE: Final = (
    "<html>\r\n<head><title>{status} Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>{status} Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)
_STRIPPED_FIELDS: Final = frozenset({"id", "credits", "status"})

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """A request that reached the sandbox, and what became of it."""

    method: str
    path: str  # under /api/v1, e.g. "/calls"
    query: dict[str, str]
    body: Any  # parsed JSON, else the raw text, else None
    status: int | None  # what the client was sent; None when nothing was
    handled_status: int | None  # what the API logic answered; None when it never ran
    fault: FaultKind | None
    delivered: bool  # whether a complete answer reached the client
    request_id: str

    @property
    def processed(self) -> bool:
        """Whether the API logic handled the request (and so may have changed state)."""
        return self.handled_status is not None


@dataclass(slots=True)
class InProcessExchange:
    """What the in-process transport and the gateway tell each other about one request."""

    fault: Fault | None
    read_timeout: float | None
    outcome: Literal["answered", "read_timeout", "drop"] = "answered"


# The ASGI scope extension SandboxTransport puts its InProcessExchange under, so the gateway reports
# a lost answer to it instead of really hanging or half-closing (which ASGI over httpx2 cannot express).
EXCHANGE_EXTENSION: Final = "outboundcalls.sandbox.exchange"


class Served(Protocol):
    """What the app and its gateway serve: one account, its clock and faults, and the request log (a Sandbox)."""

    api_key: str
    clock: Clock
    faults: Faults
    requests: list[RecordedRequest]

    @property
    def state(self) -> SandboxState: ...

    def next_request_id(self) -> str: ...

    def serving(self, *, read_only: bool) -> AbstractAsyncContextManager[None]: ...


@dataclass(slots=True)
class _Reply:
    """A complete HTTP answer."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


def api_path(path: str) -> str:
    """The path under /api/v1 ("/calls"), which is what faults and the request log use."""
    if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
        return path[len(API_PREFIX) :] or "/"
    return path


def _decode_body(raw: bytes) -> Any:
    """The request body as JSON when it is JSON, else as text, else None."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", errors="replace")


def _strip(value: Any) -> Any:
    """A body without the fields a client needs most, in the object and in listed items."""
    if isinstance(value, dict):
        return {k: _strip(v) if isinstance(v, list) else v for k, v in value.items() if k not in _STRIPPED_FIELDS}
    if isinstance(value, list):
        return [_strip(item) for item in value]
    return value


def _fault_reply(fault: Fault, handled: _Reply | None) -> _Reply:
    """The answer a fault puts in place of (or instead of producing) the real one."""
    json_type = [(b"content-type", b"application/json")]
    ok_status = handled.status if handled is not None and handled.status < 300 else 200
    if fault.kind == "status":
        headers = list(json_type)
        if fault.retry_after is not None:
            headers.append((b"retry-after", f"{fault.retry_after:g}".encode()))
        body = json.dumps({"error": fault.error_message}).encode()
        return _Reply(fault.status or 500, headers, body)
    if fault.kind == "html":
        status = fault.status or 502
        page = _PROXY_PAGE.format(status=status).encode()
        return _Reply(status, [(b"content-type", b"text/html"), (b"server", b"nginx")], page)
    if fault.kind == "malformed":
        return _Reply(fault.status or ok_status, json_type, b'{"id": "clx0malformed", "status": "que')
    if fault.kind == "empty":
        return _Reply(fault.status or ok_status, json_type, b"")
    assert fault.kind == "missing_fields"
    stripped = _strip(json.loads(handled.body)) if handled is not None and handled.body else {"ok": True}
    return _Reply(fault.status or ok_status, json_type, json.dumps(stripped).encode())


class Gateway:
    """Starlette middleware: advances the sandbox, logs the request, and applies any fault."""

    def __init__(self, app: ASGIApp, *, sandbox: Served) -> None:
        self.app = app
        self.sandbox = sandbox

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        """Handle one ASGI connection scope."""
        if scope["type"] != "http" or scope["path"].startswith(DEBUG_PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        raw = await self._read_body(receive)
        method, path = scope["method"], api_path(scope["path"])
        exchange: InProcessExchange | None = scope.get("extensions", {}).get(EXCHANGE_EXTENSION)
        fault = exchange.fault if exchange is not None else self.sandbox.faults.take(method, path)
        request_id = self.sandbox.next_request_id()
        # A read changes nothing, so a GET is handled for "missing_fields" to have a body to strip.
        processes = (
            fault is None
            or fault.after_processing
            or fault.kind == "latency"
            or (fault.kind == "missing_fields" and method == "GET")
        )
        async with self.sandbox.serving(read_only=method == "GET"):
            handled = await self._handle(scope, raw) if processes else None
        lost = fault is not None and fault.kind in ("hang", "timeout_before_send", "drop")
        reply: _Reply | None
        if fault is None or fault.kind == "latency":
            reply = handled
        elif lost:
            reply = None
        else:
            reply = _fault_reply(fault, handled)
        if reply is not None:
            reply.headers.append((b"x-request-id", request_id.encode()))
        delivered = reply is not None
        if fault is not None and fault.delay:
            if exchange is not None and exchange.read_timeout is not None and fault.delay >= exchange.read_timeout:
                exchange.outcome, delivered = "read_timeout", False
            else:
                await anyio.sleep(fault.delay)
        self.sandbox.requests.append(
            RecordedRequest(
                method=method,
                path=path,
                query=dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)),
                body=_decode_body(raw),
                status=None if reply is None else reply.status,
                handled_status=None if handled is None else handled.status,
                fault=None if fault is None else fault.kind,
                delivered=delivered,
                request_id=request_id,
            )
        )
        if reply is not None and exchange is not None and exchange.outcome == "read_timeout":
            reply = None  # the client gave up before the (slow) answer came
        if reply is not None:
            await self._send(send, reply)
        elif exchange is not None:
            if exchange.outcome == "answered":
                exchange.outcome = "drop" if fault is not None and fault.kind == "drop" else "read_timeout"
            await self._send(send, _Reply(599, [], b""))  # placeholder the transport discards
        else:
            await self._lose(send, fault, handled)

    @staticmethod
    async def _read_body(receive: Receive) -> bytes:
        """The whole request body."""
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _handle(self, scope: MutableMapping[str, Any], raw: bytes) -> _Reply:
        """Run the API routes on the request and capture their answer."""
        replayed = False
        captured = _Reply(500, [], b"")
        parts: list[bytes] = []

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": raw, "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured.status = message["status"]
                captured.headers = list(message.get("headers", []))
            elif message["type"] == "http.response.body":
                parts.append(message.get("body", b""))

        await self.app(scope, replay, capture)
        captured.body = b"".join(parts)
        return captured

    @staticmethod
    async def _send(send: Send, reply: _Reply) -> None:
        """Send a complete answer."""
        headers = [(k, v) for k, v in reply.headers if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(reply.body)).encode()))
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        await send({"type": "http.response.body", "body": reply.body, "more_body": False})

    @staticmethod
    async def _lose(send: Send, fault: Fault | None, handled: _Reply | None) -> None:
        """Over a real socket: hang, then (or at once, for a drop) end without a complete answer."""
        if fault is None or fault.kind != "drop":
            await anyio.sleep(HANG_SECONDS)
        status = handled.status if handled is not None else 200
        # Headers and half a body, then the server closes the connection: the client sees
        # "peer closed connection without sending complete message body".
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"64")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"id": "clx', "more_body": True})
