"""A loopback TCP proxy a test can cut and restore: the database going away and coming back, seen from the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.abc import SocketStream, TaskGroup


@dataclass
class TcpProxy:
    """Forwards 127.0.0.1:<port> to the target; `cut` drops every connection and refuses new ones until `restore`."""

    target_host: str
    target_port: int
    group: TaskGroup
    port: int = 0
    _scopes: set[anyio.CancelScope] = field(default_factory=set)
    _listening: anyio.CancelScope | None = None

    async def restore(self) -> None:
        """Listen again (on the same port after the first time) and forward new connections."""
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=self.port)
        self.port = listener.extra(anyio.abc.SocketAttribute.local_port)
        scope = anyio.CancelScope()
        self._listening = scope

        async def serve() -> None:
            with scope:
                async with listener:
                    await listener.serve(self._forward)

        self.group.start_soon(serve)

    def cut(self) -> None:
        """Close the listening socket and every forwarded connection: clients see the peer vanish, then refusals."""
        if self._listening is not None:
            self._listening.cancel()
        for scope in list(self._scopes):
            scope.cancel()

    async def _forward(self, client: SocketStream) -> None:
        scope = anyio.CancelScope()
        self._scopes.add(scope)
        try:
            with scope:
                async with client, await anyio.connect_tcp(self.target_host, self.target_port) as upstream:
                    async with anyio.create_task_group() as pumps:
                        pumps.start_soon(_pump, client, upstream, pumps)
                        pumps.start_soon(_pump, upstream, client, pumps)
        finally:
            self._scopes.discard(scope)


async def _pump(source: SocketStream, sink: SocketStream, pumps: TaskGroup) -> None:
    try:
        async for chunk in source:
            await sink.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    pumps.cancel_scope.cancel()


@asynccontextmanager
async def tcp_proxy(host: str, port: int) -> AsyncIterator[TcpProxy]:
    """A proxy to host:port for as long as the block runs."""
    async with anyio.create_task_group() as group:
        proxy = TcpProxy(host, port, group)
        await proxy.restore()
        try:
            yield proxy
        finally:
            proxy.cut()
