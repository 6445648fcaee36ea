"""The loop-driven stdio transport: framing, parse errors, backpressure, hang-ups, and which descriptors it serves."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from anyio import to_thread
from mcp.shared._context_streams import ContextSendStream
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from outboundcalls_mcp.server.stdio_pipes import StdioStreams, loop_can_serve, pipe_streams

pytestmark = pytest.mark.anyio

PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'


class Wires:
    """Two pipes between a host and the server; a test closes the host's ends to hang up."""

    def __init__(self) -> None:
        self.server_in, self.host_out = os.pipe()
        self.host_in, self.server_out = os.pipe()
        self._open = {self.server_in, self.host_out, self.host_in, self.server_out}

    def close(self, fd: int) -> None:
        """Close one end once (a descriptor number closed twice could be someone else's by then)."""
        if fd in self._open:
            self._open.remove(fd)
            os.close(fd)

    def close_all(self) -> None:
        for fd in list(self._open):
            self.close(fd)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[StdioStreams]:
        """The transport's streams; on leaving, the host closes stdin and the session closes both, as in the server."""
        async with pipe_streams(self.server_in, self.server_out) as (read_stream, write_stream):
            try:
                yield read_stream, write_stream
            finally:
                self.close(self.host_out)
                await write_stream.aclose()
                await read_stream.aclose()


@pytest.fixture
def wires() -> Iterator[Wires]:
    pipes = Wires()
    yield pipes
    pipes.close_all()


def _answer(request_id: int, text: str) -> SessionMessage:
    return SessionMessage(types.JSONRPCResponse(jsonrpc="2.0", id=request_id, result={"text": text}))


def _read_lines(fd: int, count: int) -> list[bytes]:
    """Block until `count` whole lines have arrived on fd."""
    data = b""
    while data.count(b"\n") < count:
        chunk = os.read(fd, 1 << 16)
        assert chunk, f"the wire closed before {count} lines arrived"
        data += chunk
    return data.split(b"\n")[:count]


async def test_requests_split_anywhere_or_sent_together_arrive_whole_and_in_order(wires: Wires) -> None:
    second = b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}'
    # One message cut mid-token, then the rest of it with a whole second message and a CRLF ending.
    os.write(wires.host_out, PING[:17])
    async with wires.session() as (read_stream, _):
        os.write(wires.host_out, PING[17:] + b"\n" + second + b"\r\n")
        first_seen = await read_stream.receive()
        second_seen = await read_stream.receive()
    assert isinstance(first_seen, SessionMessage) and isinstance(second_seen, SessionMessage)
    assert isinstance(first_seen.message, types.JSONRPCRequest) and first_seen.message.method == "ping"
    assert isinstance(second_seen.message, types.JSONRPCRequest) and second_seen.message.id == 2


async def test_a_line_that_is_not_a_message_is_handed_on_as_an_error_and_reading_goes_on(wires: Wires) -> None:
    os.write(wires.host_out, b"{not json\n" + b'{"id": 1}\n' + b"\xff\xfe\n" + PING + b"\n")
    wires.close(wires.host_out)
    async with wires.session() as (read_stream, _):
        seen = [item async for item in read_stream]
    assert [type(item) for item in seen] == [ValidationError, ValidationError, ValidationError, SessionMessage]


async def test_the_last_request_without_a_newline_is_read_and_end_of_input_ends_the_stream(wires: Wires) -> None:
    os.write(wires.host_out, PING)
    wires.close(wires.host_out)
    async with wires.session() as (read_stream, _):
        seen = [item async for item in read_stream]
    assert len(seen) == 1 and isinstance(seen[0], SessionMessage)


async def test_a_request_larger_than_the_pipe_and_the_read_chunk_arrives_whole(wires: Wires) -> None:
    big = json.dumps({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                      "params": {"name": "echo", "arguments": {"text": "x" * 1_000_000}}}).encode()
    async with wires.session() as (read_stream, _), anyio.create_task_group() as tg:
        tg.start_soon(to_thread.run_sync, os.write, wires.host_out, big + b"\n")
        seen = await read_stream.receive()
    assert isinstance(seen, SessionMessage) and isinstance(seen.message, types.JSONRPCRequest)
    assert seen.message.params is not None and len(seen.message.params["arguments"]["text"]) == 1_000_000


async def test_answers_are_one_line_each_in_order_and_a_large_one_holds_the_next_back_until_the_host_reads(
    wires: Wires,
) -> None:
    large = "y" * 500_000  # far beyond a pipe's 64 KiB
    third_taken = anyio.Event()

    async def session_answers(write_stream: ContextSendStream[SessionMessage]) -> None:
        await write_stream.send(_answer(1, "first"))
        await write_stream.send(_answer(2, large))
        await write_stream.send(_answer(3, "third"))  # taken only once the second is wholly in the pipe
        third_taken.set()

    async with wires.session() as (_, write_stream), anyio.create_task_group() as tg:
        tg.start_soon(session_answers, write_stream)
        await anyio.wait_all_tasks_blocked()
        # The host has read nothing yet: the writer waits on the full pipe instead of piling answers up in memory.
        assert not third_taken.is_set()
        lines = await to_thread.run_sync(_read_lines, wires.host_in, 3)
    answers = [json.loads(line) for line in lines]
    assert [a["id"] for a in answers] == [1, 2, 3]
    assert answers[1]["result"]["text"] == large


async def test_a_host_that_hangs_up_on_the_answers_ends_serving_with_a_broken_pipe(wires: Wires) -> None:
    wires.close(wires.host_in)
    with pytest.raises(BaseExceptionGroup) as raised:
        async with wires.session() as (_, write_stream):
            await write_stream.send(_answer(1, "z" * 200_000))
            await anyio.sleep_forever()
    assert raised.value.subgroup(BrokenPipeError) is not None, raised.value


def test_the_loop_serves_pipes_and_socket_pairs_and_leaves_everything_else_to_the_sdk(tmp_path: Path) -> None:
    stdin_read, stdin_write = os.pipe()
    stdout_read, stdout_write = os.pipe()
    left, right = socket.socketpair()
    regular = os.open(tmp_path / "requests.jsonl", os.O_RDWR | os.O_CREAT)
    null = os.open(os.devnull, os.O_RDWR)
    terminal, terminal_side = os.openpty()
    try:
        assert not loop_can_serve(terminal_side, terminal_side)  # someone typing at the server: the SDK's transport
        assert loop_can_serve(stdin_read, stdout_write)
        assert loop_can_serve(left.fileno(), right.fileno())  # Node hosts: one socket pair per stream
        assert not loop_can_serve(left.fileno(), left.fileno())  # one socket for both: asyncio would misread it
        assert not loop_can_serve(regular, stdout_write)
        assert not loop_can_serve(stdin_read, null)
        assert not loop_can_serve(stdin_read, 10_000)  # not open at all
    finally:
        for fd in (stdin_read, stdin_write, stdout_read, stdout_write, regular, null, terminal, terminal_side):
            os.close(fd)
        left.close()
        right.close()


async def test_a_server_cancelled_while_an_answer_waits_on_a_full_pipe_stops_instead_of_hanging(wires: Wires) -> None:
    with anyio.CancelScope() as scope:
        async with wires.session() as (_, write_stream), anyio.create_task_group() as tg:
            tg.start_soon(write_stream.send, _answer(1, "w" * 500_000))
            await anyio.wait_all_tasks_blocked()  # the writer is stuck on the full pipe: nobody reads
            scope.cancel()
    # Reaching this line is the test (a hang would never return); the host got the start of the answer only.
    assert scope.cancel_called
    assert 0 < len(os.read(wires.host_in, 1 << 20)) < 500_000
