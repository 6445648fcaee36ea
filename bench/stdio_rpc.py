"""Raw JSON-RPC over a spawned server's pipes: exact timings from spawn, exact bytes on the wire."""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LEGACY", "MODERN", "Reply", "StdioServer", "child_env", "cpu_ms", "peak_rss_mib"]

LEGACY = "2025-11-25"
MODERN = "2026-07-28"
CLIENT_INFO = {"name": "bench", "version": "0"}


def _modern_meta() -> dict[str, Any]:
    return {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
        "io.modelcontextprotocol/clientCapabilities": {},
    }


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident set (VmHWM) in MiB, or None when /proc does not say."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def stop(process: subprocess.Popen[Any]) -> None:
    """Ask a server process to end, and kill it if it has not within ten seconds."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_ms(pid: int) -> float:
    """CPU time (user + system) the process has used so far, in ms; coarse (clock ticks), so sum many calls."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


@dataclass
class Reply:
    """One JSON-RPC answer: the parsed message, its size on the wire, and when it arrived."""

    message: dict[str, Any]
    raw_bytes: int
    seconds: float  # from sending the request (or from spawn, for `since_spawn`)
    since_spawn: float

    @property
    def result(self) -> dict[str, Any]:
        """The result, or an error naming the JSON-RPC failure."""
        if "result" not in self.message:
            raise RuntimeError(f"JSON-RPC error: {self.message.get('error')}")
        result: dict[str, Any] = self.message["result"]
        return result


@dataclass
class StdioServer:
    """A server process spoken to over stdin/stdout in one protocol era (blocking I/O: no loop in the way)."""

    argv: list[str]
    era: str = LEGACY
    env: dict[str, str] | None = None
    cwd: str | None = None
    process: subprocess.Popen[bytes] = field(init=False)
    spawned_at: float = field(init=False)
    _next_id: int = field(default=0, init=False)

    def __enter__(self) -> StdioServer:
        self.spawned_at = time.perf_counter()
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=self.env,
            cwd=self.cwd,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """End the server the way a host does: close its stdin, then make sure it is gone."""
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()

    @property
    def pid(self) -> int:
        """The server's process id."""
        return self.process.pid

    def _send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
        self.process.stdin.flush()

    def request(self, method: str, params: dict[str, Any] | None = None) -> Reply:
        """Send one request and block until its answer (notifications in between are skipped)."""
        self._next_id += 1
        params = dict(params or {})
        if self.era == MODERN:
            params["_meta"] = {**params.get("_meta", {}), **_modern_meta()}
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._next_id, "method": method}
        if params:
            message["params"] = params
        sent = time.perf_counter()
        self._send(message)
        assert self.process.stdout is not None
        while True:
            line = self.process.stdout.readline()
            now = time.perf_counter()
            if not line:
                raise RuntimeError(f"{self.argv[-1]} exited (code {self.process.poll()}) before answering {method}")
            try:
                answer = json.loads(line)
            except ValueError:
                continue  # some servers print banners on stdout; a host skips them too
            if isinstance(answer, dict) and answer.get("id") == self._next_id:
                return Reply(answer, len(line.rstrip(b"\n")), now - sent, now - self.spawned_at)

    def notify(self, method: str) -> None:
        """Send a notification (no answer)."""
        self._send({"jsonrpc": "2.0", "method": method})

    def handshake(self) -> Reply:
        """initialize (handshake era) or server/discover (2026-07-28): the first exchange a host makes."""
        if self.era == MODERN:
            return self.request("server/discover")
        reply = self.request("initialize", {"protocolVersion": LEGACY, "capabilities": {}, "clientInfo": CLIENT_INFO})
        self.notify("notifications/initialized")
        return reply

    def call_tool(self, name: str, arguments: dict[str, Any]) -> Reply:
        """tools/call."""
        return self.request("tools/call", {"name": name, "arguments": arguments})

    def peak_rss_mib(self) -> float | None:
        """Peak resident set of the server so far."""
        return peak_rss_mib(self.pid)


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The bench's environment for a child server, without OUTBOUNDCALLS_* leaking in from the shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OUTBOUNDCALLS_")}
    env.update(extra or {})
    return env
