"""What a tool needs from the server: `ToolDeps`, built once per lifespan by server/app.py (tools never import it)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

from outboundcalls.calls import CallDetail, CallSummary
from outboundcalls.client import OutboundCallsClient
from outboundcalls_mcp.tools.contracts import BatchDispatcher, CallEndWaiter, Dispatcher

__all__ = ["NO_KEY_MESSAGE", "OpenDeps", "ToolDeps", "api_of", "deps_of", "no_key_error"]

NO_KEY_MESSAGE: Final = (
    "No OutboundCalls API key is configured. The owner must set OUTBOUNDCALLS_API_KEY "
    "(Settings → API Keys in the OutboundCalls dashboard), or start the server with --sandbox to try it without one."
)


def no_key_error() -> ToolError:
    """The tool error of a server that has no API key (and no sandbox): what the owner must set."""
    return ToolError(NO_KEY_MESSAGE)


@dataclass(frozen=True, kw_only=True)
class ToolDeps:
    """Per-server dependencies a tool reaches through its typed Context; every field set when it is built."""

    # api, dispatcher and batch are None on a server with no API key (the last two also on a
    # read-only one): each tool then says what the owner must set (no_key_error).

    api: OutboundCallsClient | None
    dispatcher: Dispatcher | None
    batch: BatchDispatcher | None
    call_ends: CallEndWaiter
    default_region: str
    sandbox: bool
    confirm_mode: str
    now: Callable[[], datetime]
    sleep: Callable[[float], Awaitable[Any]]

    def __post_init__(self) -> None:
        if self.now().tzinfo is None:
            raise ValueError("ToolDeps.now must return timezone-aware times")

    def require_api(self) -> OutboundCallsClient:
        """The API client, or the tool error telling the owner how to configure one."""
        if self.api is None:
            raise no_key_error()
        return self.api

    async def seen(self, call: CallSummary) -> None:
        """A tool or resource read this call: if it has ended, announce its end (waiters woken, subscribers told)."""
        if call.is_terminal and isinstance(call, CallDetail):
            await self.call_ends.call_ended(call)


class OpenDeps:
    """The dependencies of the server's open lifespan, for what the SDK calls without a Context."""

    # The SDK gives static resources and the completion handler no request context; they read
    # through this, which the lifespan fills while it is open (stdio and HTTP open one per process).

    def __init__(self) -> None:
        self._open: list[ToolDeps] = []

    @contextmanager
    def serving(self, deps: ToolDeps) -> Iterator[ToolDeps]:
        """Make `deps` the open ones until the block ends."""
        self._open.append(deps)
        try:
            yield deps
        finally:
            self._open.remove(deps)

    def current(self) -> ToolDeps | None:
        """The most recently opened lifespan's dependencies still open, if any."""
        return self._open[-1] if self._open else None


def deps_of(ctx: Context[ToolDeps]) -> ToolDeps:
    """The server's dependencies for this request."""
    return ctx.request_context.lifespan_context


def api_of(ctx: Context[ToolDeps]) -> OutboundCallsClient:
    """The API client, or a tool error telling the owner how to configure one."""
    return deps_of(ctx).require_api()
