"""Serving the sandbox over real HTTP on a loopback address, with uvicorn."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Final

import anyio
import uvicorn

from .gateway import API_PREFIX
from .simulation import Sandbox

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "base_url", "create_server", "ensure_loopback", "serve"]

DEFAULT_HOST: Final = "127.0.0.1"
DEFAULT_PORT: Final = 8787


def ensure_loopback(host: str) -> str:
    """The host, if it only listens on this machine; ValueError otherwise."""
    if host == "localhost":
        return host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"host must be a loopback address such as 127.0.0.1, not {host!r}") from None
    if not address.is_loopback:
        # A fake account with a well-known key must never be reachable from the network.
        raise ValueError(f"host must be a loopback address such as 127.0.0.1, not {host!r}")
    return host


def create_server(
    sandbox: Sandbox,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    log_level: str = "info",
    shutdown_grace_seconds: int = 1,
) -> uvicorn.Server:
    """A uvicorn server for the sandbox app (port 0 picks a free port)."""
    # A short grace period: a "hang" fault would otherwise hold shutdown for HANG_SECONDS.
    config = uvicorn.Config(
        sandbox.app,
        host=ensure_loopback(host),
        port=port,
        lifespan="off",
        ws="none",
        http="h11",
        log_level=log_level,
        timeout_graceful_shutdown=shutdown_grace_seconds,
    )
    return uvicorn.Server(config)


def base_url(server: uvicorn.Server) -> str:
    """The API base URL of a started server, with the port it really bound."""
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}{API_PREFIX}"


async def serve(sandbox: Sandbox, server: uvicorn.Server, *, on_ready: Callable[[str], None] | None = None) -> None:
    """Run the server with the sandbox ticking until the server exits; `on_ready` gets the base URL."""
    async with sandbox.running(), anyio.create_task_group() as group:
        group.start_soon(server.serve)
        while not server.started:
            if server.should_exit:
                break
            await anyio.sleep(0.05)
        if server.started and on_ready is not None:
            on_ready(base_url(server))
    # the task group ends when server.serve() returns, after a signal or should_exit
