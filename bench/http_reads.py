"""Streamable HTTP under load: N concurrent handshake-era sessions doing one read each, back to back."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2

from bench.stdio_rpc import CLIENT_INFO, LEGACY, stop

__all__ = ["HttpFigures", "HttpServer", "free_port", "run_clients"]

ACCEPT = "application/json, text/event-stream"


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class HttpServer:
    """A server process serving streamable HTTP on a loopback port."""

    argv: list[str]
    port: int
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] = field(init=False)

    def __enter__(self) -> HttpServer:
        self.process = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{' '.join(self.argv)} exited with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.process.kill()
        raise RuntimeError(f"{' '.join(self.argv)} did not listen on {self.port}")

    def __exit__(self, *exc: object) -> None:
        stop(self.process)

    @property
    def url(self) -> str:
        """The MCP endpoint."""
        return f"http://127.0.0.1:{self.port}/mcp"


@dataclass
class HttpFigures:
    """What the clients saw: completed calls, their latencies, and every failure."""

    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None

    @property
    def throughput(self) -> float:
        """Completed calls per second."""
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def fail(self, why: str) -> None:
        """Count a failure, keeping the first one's description."""
        self.errors += 1
        self.first_error = self.first_error or why


def _answer(response: httpx2.Response, request_id: int) -> dict[str, Any]:
    """The JSON-RPC answer with `request_id`, from a JSON or an SSE body."""
    if response.headers.get("content-type", "").startswith("application/json"):
        body: dict[str, Any] = response.json()
        return body
    for line in response.text.splitlines():
        if line.startswith("data:") and line[5:].strip():
            message: dict[str, Any] = json.loads(line[5:])
            if message.get("id") == request_id:
                return message
    raise ValueError(f"no answer to request {request_id} in the stream")


async def _session(http: httpx2.AsyncClient, url: str) -> dict[str, str]:
    """Open a handshake-era session; the headers every later request carries."""
    init = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": CLIENT_INFO},
    }
    response = await http.post(url, json=init, headers={"Accept": ACCEPT})
    response.raise_for_status()
    _answer(response, 0)
    headers = {"Accept": ACCEPT, "Mcp-Session-Id": response.headers["mcp-session-id"], "Mcp-Protocol-Version": LEGACY}
    await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return headers


async def _client(
    http: httpx2.AsyncClient,
    url: str,
    headers: dict[str, str],
    call_args: tuple[str, dict[str, Any], bool],
    deadline: float,
    figures: HttpFigures,
) -> None:
    tool, arguments, expect_error = call_args
    request_id = 0
    while time.perf_counter() < deadline:
        request_id += 1
        call = {
            "jsonrpc": "2.0",
            "id": request_id,
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        }
        started = time.perf_counter()
        try:
            response = await http.post(url, json=call, headers=headers)
            message = _answer(response, request_id)
        except (httpx2.HTTPError, ValueError) as exc:
            figures.fail(f"{type(exc).__name__}: {exc}")
            continue
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200 or "error" in message or bool(message["result"].get("isError")) != expect_error:
            figures.fail(f"{response.status_code}: {json.dumps(message)[:200]}")
            continue
        figures.latencies_ms.append(elapsed)


async def run_clients(
    url: str, tool: str, arguments: dict[str, Any], *, clients: int, seconds: float, expect_error: bool = False
) -> HttpFigures:
    """`clients` sessions calling `tool` for `seconds`, opened before the clock starts.

    With `expect_error`, a tool error is the expected answer.
    """
    figures = HttpFigures()
    limits = httpx2.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx2.AsyncClient(limits=limits, timeout=30, trust_env=False) as http:
        # Warm both sides (connections, lazy imports) so the window measures steady state.
        warm = await _session(http, url)
        for request_id in range(1, 4):
            call = {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "tools/call",
                "params": {"name": tool, "arguments": arguments},
            }
            _answer(await http.post(url, json=call, headers=warm), request_id)  # raises if there is none
        sessions: list[dict[str, str]] = []

        async def open_one() -> None:
            sessions.append(await _session(http, url))

        async with anyio.create_task_group() as group:
            for _ in range(clients):
                group.start_soon(open_one)
        started = time.perf_counter()
        deadline = started + seconds
        async with anyio.create_task_group() as group:
            for headers in sessions:
                group.start_soon(_client, http, url, headers, (tool, arguments, expect_error), deadline, figures)
        figures.seconds = time.perf_counter() - started
    return figures
