"""Streamable HTTP: DNS-rebinding protection, a bearer token compared in constant time, exposure rules."""

from __future__ import annotations

import hmac
import ipaddress
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Receive, Scope, Send

from outboundcalls_mcp.server.settings import Settings, SettingsError

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

__all__ = [
    "MAX_BODY_BYTES",
    "BearerTokenMiddleware",
    "build_http_app",
    "check_exposure",
    "is_loopback",
    "routes_served",
    "serve_http",
    "uvicorn_options",
]

MAX_BODY_BYTES = 1024 * 1024
MCP_PATH = "/mcp"


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_exposure(settings: Settings, host: str) -> None:
    """Refuse to listen beyond this machine without a bearer token: the tools spend money."""
    if not is_loopback(host) and settings.http_token is None:
        raise SettingsError(
            f"refusing to listen on {host}: a non-loopback address needs OUTBOUNDCALLS_HTTP_TOKEN, "
            "because anyone who reaches this port could place calls; set a long random token or bind 127.0.0.1"
        )
    if _is_wildcard(host) and not settings.http_allowed_hosts:
        # Clients send the name or address they dialed, never 0.0.0.0: every request would get 421.
        raise SettingsError(
            f"refusing to listen on {host}: the DNS-rebinding guard admits only Host headers it knows, and no "
            "client addresses this server as a wildcard; set OUTBOUNDCALLS_HTTP_ALLOWED_HOSTS to the names or "
            "addresses clients use (e.g. mcp.example.com,192.168.1.20), or bind that one address"
        )


def _is_wildcard(host: str) -> bool:
    """Whether a bind address means every interface (0.0.0.0, ::)."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


class BearerTokenMiddleware:
    """401 for any MCP request without `Authorization: Bearer <token>`; webhooks carry their own secret."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(MCP_PATH):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "unauthorized", "error_description": "Bearer token required"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b'Bearer realm="outboundcalls-mcp"'),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _security(settings: Settings, host: str, port: int) -> Any:
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if not is_loopback(host):
        hosts += [f"{host}:{port}"]
    for extra in sorted(settings.http_allowed_hosts):
        hosts += [extra, f"{extra}:*"]
        origins += [f"https://{extra}", f"http://{extra}:*", f"https://{extra}:*"]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def build_http_app(
    settings: Settings,
    mcp: MCPServer[Any],
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    clock: Callable[[], float] = time.monotonic,
) -> ASGIApp:
    """The ASGI app served over HTTP: MCP at /mcp, guarded; `clock` paces the rate limit."""
    check_exposure(settings, host)
    app: ASGIApp = mcp.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=_security(settings, host, port),
        max_request_body_size=MAX_BODY_BYTES,
        host=host,
    )
    if settings.http_token is not None:
        app = BearerTokenMiddleware(app, settings.http_token.get_secret_value())
    if settings.http_rate_limit:
        from outboundcalls_mcp.server.rate_limit import RateLimitMiddleware, TokenBuckets

        # Outermost, so that failed bearer guesses spend the guesser's budget too.
        app = RateLimitMiddleware(app, TokenBuckets(settings.http_rate_limit, clock=clock), path=MCP_PATH)
    return app


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn reads the client's address: X-Forwarded-For only from the proxies the owner names."""
    # uvicorn trusts the header from 127.0.0.1 by default: every request with a fresh value would
    # get a fresh rate-limit bucket, bearer-token guesses included.
    trusted = sorted(settings.http_trusted_proxies)
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": ",".join(trusted) if trusted else ""}


def routes_served(settings: Settings, host: str, port: int) -> list[str]:
    """What the HTTP server serves, for its start-up line on stderr; never the webhook's secret."""
    base = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    lines = [f"MCP at {base}{MCP_PATH}" + (" (bearer token required)" if settings.http_token else "")]
    if settings.webhook_secret is not None:
        from outboundcalls_mcp.server.webhooks import WEBHOOK_PATH

        lines.append(f"post-call webhooks at {base}{WEBHOOK_PATH}/<OUTBOUNDCALLS_WEBHOOK_SECRET>")
    lines.append(f"health at {base}/healthz, readiness at {base}/readyz (no token)")
    return lines


def serve_http(settings: Settings, *, host: str, port: int) -> int:
    """Serve until interrupted."""
    import sys

    import uvicorn

    from outboundcalls_mcp.server.app import build_server

    try:
        app = build_http_app(settings, build_server(settings), host=host, port=port)
    except SettingsError as exc:
        print(f"outboundcalls-mcp: {exc}", file=sys.stderr)
        return 2
    for line in routes_served(settings, host, port):
        print(f"outboundcalls-mcp: serving {line}", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning", **uvicorn_options(settings))
    return 0
