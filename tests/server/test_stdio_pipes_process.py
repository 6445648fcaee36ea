"""The stdio transport in a real process: what a handler can do to fd 0/1, and every kind of wire a host may hand over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import IO, Any

from outboundcalls.version import __version__
from tests.harness import console_script

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}

# A server whose one tool misbehaves the ways a library or a child process might, then reports what it saw.
MISBEHAVING_SERVER = """
import os, subprocess, sys
from mcp.server.mcpserver import MCPServer
from outboundcalls_mcp.server.stdio_pipes import run_stdio

mcp = MCPServer("misbehaving", log_level="WARNING")

@mcp.tool()
def meddle() -> str:
    print("stray print")
    sys.stdout.flush()
    os.write(1, b"stray write\\n")
    subprocess.run([sys.executable, "-c", "print('child output')"], check=True)
    return repr(sys.stdin.read())

run_stdio(mcp)
# After serving: fd 0 and 1 are the wire again, in the blocking mode the host gave them.
print("after:", os.get_blocking(0), os.get_blocking(1), flush=True)
"""


def _call(name: str, request_id: int, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {"name": name, "arguments": arguments or {}}}


def _send(wire: IO[bytes], message: dict[str, Any]) -> None:
    wire.write(json.dumps(message).encode() + b"\n")
    wire.flush()


def _answer(wire: IO[bytes]) -> dict[str, Any]:
    line = wire.readline()
    assert line, "the server closed its stdout"
    answer: dict[str, Any] = json.loads(line)  # anything but JSON-RPC on the wire fails here
    return answer


def _env(tmp_path: Path) -> dict[str, str]:
    return {"OUTBOUNDCALLS_STATE_DIR": str(tmp_path), "HOME": str(tmp_path), "PATH": os.environ.get("PATH", "")}


def test_stray_output_and_stdin_reads_in_a_handler_or_its_children_never_touch_the_wire(tmp_path: Path) -> None:
    stderr = tmp_path / "stderr.txt"
    with stderr.open("wb") as err, subprocess.Popen(
        [sys.executable, "-c", MISBEHAVING_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
        cwd=Path(__file__).parents[2],
    ) as process:
        assert process.stdin is not None and process.stdout is not None
        _send(process.stdin, INIT)
        assert _answer(process.stdout)["id"] == 1
        _send(process.stdin, INITIALIZED)
        _send(process.stdin, _call("meddle", 2))
        result = _answer(process.stdout)["result"]
        process.stdin.close()
        after = process.stdout.read()
        assert process.wait(timeout=30) == 0
    assert result["content"][0]["text"] == "''"  # the handler's stdin read the null device, not the next request
    assert after == b"after: True True\n"
    assert stderr.read_bytes().count(b"stray") == 2 and b"child output" in stderr.read_bytes()


def test_a_node_style_host_on_socket_pairs_gets_every_answer(tmp_path: Path) -> None:
    host_in, server_in = socket.socketpair()
    host_out, server_out = socket.socketpair()
    with subprocess.Popen([console_script(), "--sandbox"], stdin=server_in, stdout=server_out,
                          stderr=subprocess.DEVNULL, env=_env(tmp_path), cwd=tmp_path) as process:
        server_in.close()
        server_out.close()
        with host_in, host_out, host_in.makefile("wb") as requests, host_out.makefile("rb") as answers:
            _send(requests, INIT)
            assert _answer(answers)["result"]["serverInfo"]["name"]
            _send(requests, INITIALIZED)
            _send(requests, _call("get_balance", 2))
            balance = _answer(answers)["result"]
            requests.close()
            host_in.shutdown(socket.SHUT_WR)
            assert process.wait(timeout=30) == 0
    assert balance["isError"] is False and balance["structuredContent"]["sandbox"] is True


def test_requests_read_from_a_file_are_served_by_the_sdk_transport_with_the_same_answers(tmp_path: Path) -> None:
    requests = tmp_path / "requests.jsonl"
    requests.write_text("".join(json.dumps(m) + "\n" for m in (INIT, INITIALIZED, {"jsonrpc": "2.0", "id": 2, "method": "ping"})))
    with requests.open("rb") as stdin, subprocess.Popen(
        [console_script(), "--sandbox"], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=_env(tmp_path), cwd=tmp_path,
    ) as process:
        assert process.stdout is not None
        answers = [json.loads(line) for line in process.stdout.read().splitlines()]
        assert process.wait(timeout=30) == 0
    # The file ends right after the ping, and the SDK cancels requests still in flight at the end of
    # input (a host that closes stdin has left); initialize is answered inline, so it always is.
    assert answers[0]["id"] == 1 and answers[0]["result"]["serverInfo"]["name"] == "outboundcalls"
    assert answers[0]["result"]["serverInfo"]["version"] == __version__
    assert answers[1:] in ([], [{"jsonrpc": "2.0", "id": 2, "result": {}}])
