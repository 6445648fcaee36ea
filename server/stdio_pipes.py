"""Stdio served by the event loop itself: the wire read and written with no worker thread in the way.

Why: the SDK's stdio transport reads stdin and writes stdout through anyio worker threads, a
thread hop for every line read and two for every answer written. On a 2-core machine that is
about half of a fast call's time over stdio (bench: the floor's echo, 0.88 -> 0.40 ms p50).
Hosts connect a stdio server through pipes (Python, most desktop hosts) or socket pairs (Node),
and the loop can watch both directly. Anything else on fd 0 or fd 1 (a regular file, a terminal,
the null device, one socket on both) is served by the SDK's transport, unchanged.

The contract is the SDK's `stdio_server()`:
- while serving, fd 0 reads the null device and fd 1 writes to stderr, so a handler, a library or
  a child process that touches them can neither steal a request nor corrupt an answer; both are
  restored on exit, with their blocking mode;
- one JSON-RPC message per line, UTF-8 with undecodable bytes replaced; a line that is not a
  message goes to the session as the exception (which answers it with a parse error);
- each answer is written in full, in order, before the next is taken: a host that stops reading
  holds the writer back instead of growing a buffer;
- a host that closes our stdout ends the server with BrokenPipeError, as the SDK's would.
"""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress

import anyio
import mcp_types as types
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared._context_streams import (  # the SDK's own stdio types: the session expects exactly these
    ContextReceiveStream,
    ContextSendStream,
    create_context_streams,
)
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

if sys.platform != "win32":  # Windows hosts get the SDK's transport (below): its pipes are not the loop's to watch
    import fcntl

__all__ = ["StdioStreams", "loop_can_serve", "pipe_streams", "run_stdio", "stdio_streams"]

_READ_CHUNK = 1 << 16
StdioStreams = tuple[ContextReceiveStream[SessionMessage | Exception], ContextSendStream[SessionMessage]]


def loop_can_serve(read_fd: int, write_fd: int) -> bool:
    """Whether the event loop can watch these descriptors: a pipe or a socket each, but not one socket for both."""
    try:
        read_stat, write_stat = os.fstat(read_fd), os.fstat(write_fd)
    except OSError:
        return False
    watchable = all(stat.S_ISFIFO(s.st_mode) or stat.S_ISSOCK(s.st_mode) for s in (read_stat, write_stat))
    # asyncio's write transport takes "readable" to mean the peer hung up: on a socket that also
    # carries the requests, the first request would close the answers.
    one_socket = stat.S_ISSOCK(read_stat.st_mode) and (read_stat.st_dev, read_stat.st_ino) == (
        write_stat.st_dev, write_stat.st_ino)
    return watchable and not one_socket


class _WireOut(asyncio.Protocol):
    """Flow control for the answers: writable until the pipe is full, closed when the host hangs up."""

    def __init__(self) -> None:
        self._writable = asyncio.Event()
        self._writable.set()
        self.closed = False

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._writable.set()

    async def written(self) -> None:
        """Wait until everything written so far has reached the pipe."""
        await self._writable.wait()
        if self.closed:
            raise BrokenPipeError("the host closed the server's stdout")


async def _read_lines(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """Each line as it completes (newline kept); a last line without one when the wire ends."""
    pending = bytearray()
    while chunk := await reader.read(_READ_CHUNK):
        start = 0
        scan_from = len(pending)
        pending += chunk
        # Only the new bytes are searched: a long message arriving in many chunks costs one pass.
        while (end := pending.find(b"\n", scan_from)) >= 0:
            yield bytes(pending[start : end + 1])
            start = scan_from = end + 1
        del pending[:start]
    if pending:
        yield bytes(pending)


@asynccontextmanager
async def pipe_streams(read_fd: int, write_fd: int) -> AsyncIterator[StdioStreams]:
    """The session's two streams over these descriptors, which stay the caller's to close."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=_READ_CHUNK, loop=loop)
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(read_fd, "rb", buffering=0, closefd=False)
    )
    wire_out = _WireOut()
    write_transport, _ = await loop.connect_write_pipe(
        lambda: wire_out, os.fdopen(write_fd, "wb", buffering=0, closefd=False)
    )
    # No buffering beyond the pipe's own: an answer counts as sent once the host can read all of it.
    write_transport.set_write_buffer_limits(high=0)

    read_stream_writer, read_stream = create_context_streams[SessionMessage | Exception](0)
    write_stream, write_stream_reader = create_context_streams[SessionMessage](0)

    async def stdin_reader() -> None:
        async with read_stream_writer:
            async for line in _read_lines(reader):
                try:
                    message = types.jsonrpc_message_adapter.validate_json(
                        line.decode("utf-8", errors="replace"), by_name=False
                    )
                except ValidationError as exc:  # not a message (bad JSON too): the session answers it
                    await read_stream_writer.send(exc)
                    continue
                await read_stream_writer.send(SessionMessage(message))

    async def stdout_writer() -> None:
        async with write_stream_reader:
            async for session_message in write_stream_reader:
                wire = session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
                write_transport.write(wire.encode() + b"\n")
                await wire_out.written()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(stdin_reader)
            tg.start_soon(stdout_writer)
            yield read_stream, write_stream
    finally:
        read_transport.close()
        # Left mid-answer (cancelled): drop the rest now, so the loop stops watching a descriptor
        # that the caller is about to close; otherwise everything was written already.
        if write_transport.get_write_buffer_size():
            write_transport.abort()
        else:
            write_transport.close()


def _divert(fd: int, open_diversion: Callable[[], int]) -> tuple[int, Callable[[], None]]:
    """Point fd elsewhere; return a private duplicate of the wire and how to put it back."""
    private = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)
    was_blocking = os.get_blocking(private)
    try:
        diversion = open_diversion()
        try:
            os.dup2(diversion, fd)
        finally:
            os.close(diversion)
    except OSError:
        os.close(private)
        raise

    def restore() -> None:
        # The loop made the shared file description non-blocking; whoever reads it after us must not inherit that.
        try:
            with suppress(OSError):  # a mode left non-blocking must not also leave fd diverted
                os.set_blocking(private, was_blocking)
            os.dup2(private, fd)
        finally:
            os.close(private)

    return private, restore


def _claim_wire() -> tuple[int, int, Callable[[], None]] | None:
    """Divert fd 0 and fd 1; the wire's private duplicates and how to restore both, or None if the OS refused."""
    try:
        wire_in, restore_in = _divert(0, lambda: os.open(os.devnull, os.O_RDONLY))
    except OSError:
        return None
    try:
        wire_out, restore_out = _divert(1, lambda: os.dup(2))
    except OSError:
        restore_in()
        return None

    def restore() -> None:
        try:
            restore_out()
        finally:
            restore_in()

    return wire_in, wire_out, restore


def _on_asyncio() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@asynccontextmanager
async def stdio_streams() -> AsyncIterator[StdioStreams]:
    """Serve MCP over this process's stdin and stdout: from the loop when it can, else by the SDK's transport."""
    served_by_loop = sys.platform != "win32" and _on_asyncio() and loop_can_serve(0, 1)
    claimed = _claim_wire() if served_by_loop else None
    if claimed is None:
        async with stdio_server() as streams:
            yield streams
        return
    wire_in, wire_out, restore = claimed
    try:
        async with pipe_streams(wire_in, wire_out) as streams:
            yield streams
    finally:
        restore()


def run_stdio(mcp: MCPServer) -> None:
    """What `mcp.run("stdio")` does, over `stdio_streams()` instead of the SDK's threaded transport."""

    async def serve() -> None:
        # MCPServer.run_stdio_async hard-wires the SDK's transport; this is the rest of it, verbatim.
        lowlevel = mcp._lowlevel_server
        async with stdio_streams() as (read_stream, write_stream):
            await lowlevel.run(read_stream, write_stream, lowlevel.create_initialization_options())

    anyio.run(serve)
