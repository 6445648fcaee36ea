"""HTTP replicas: the installed console script served on loopback ports, several on one PostgreSQL schema.

Each replica is `outboundcalls-mcp --transport http --port N`, as an operator runs it behind a
balancer; clients are spread over them by the test. The sandbox is the test's own, on a loopback
socket (process_kit), so its request log counts every POST /calls any replica sent.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio
import httpx2
from anyio.abc import Process
from mcp import Client

from tests.harness import console_script
from tests.server.process_kit import PROCESS_SECONDS

# A shared key, so that any replica opens the requestState another sealed.
REQUEST_STATE_KEY: Final = "replica-test-key-" + "r" * 40


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Replica:
    """One running replica: its process and where it serves."""

    process: Process
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, mode: str = "legacy", **kwargs: Any) -> Client:
        """An MCP client of this replica (mode "legacy": the handshake era; "auto": 2026-07-28)."""
        return Client(f"{self.url}/mcp", mode=mode, **kwargs)

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to record anything."""
        self.process.kill()


async def start_replica(env: dict[str, str], cwd: Path) -> Replica:
    """Start one replica and wait (bounded) until /healthz answers."""
    port = free_port()
    process = await anyio.open_process(
        [console_script(), "--transport", "http", "--port", str(port)], env=env, cwd=cwd,
        stdin=None, stdout=None, stderr=None,
    )  # fmt: skip
    replica = Replica(process, port)
    async with httpx2.AsyncClient(base_url=replica.url) as http:
        with anyio.fail_after(PROCESS_SECONDS):
            while True:
                if process.returncode is not None:
                    raise AssertionError(f"replica on port {port} exited with {process.returncode}")
                try:
                    if (await http.get("/readyz")).status_code == 200:
                        return replica
                except httpx2.TransportError:
                    pass
                await anyio.sleep(0.05)  # polling another process's start-up, bounded above


@asynccontextmanager
async def replicas(env: dict[str, str], cwd: Path, count: int) -> AsyncIterator[list[Replica]]:
    """`count` replicas started together; each killed (if still running) when the block ends."""
    started: list[Replica] = []
    async with AsyncExitStack() as stack:

        def stop_all() -> None:
            for replica in started:
                if replica.process.returncode is None:
                    replica.process.kill()

        stack.callback(stop_all)
        async with anyio.create_task_group() as group:
            for _ in range(count):

                async def start() -> None:
                    started.append(await start_replica(env, cwd))

                group.start_soon(start)
        try:
            yield started
        finally:
            stop_all()
            with anyio.move_on_after(PROCESS_SECONDS):
                for replica in started:
                    await replica.process.wait()


@asynccontextmanager
async def clients_of(replicas: Sequence[Replica], mode: str = "legacy", **kwargs: Any) -> AsyncIterator[list[Client]]:
    """An open MCP session on each replica."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(replica.client(mode, **kwargs)) for replica in replicas]
