"""What a tool needs from the server, built by the server in its lifespan (tools never import server)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

if TYPE_CHECKING:
    from outboundcalls.calls import CallDetail, CallSummary
    from outboundcalls.client import OutboundCallsClient

    from tools.batch import BatchArgs, BatchPlan, BatchResult
    from tools.dispatch_models import DispatchArgs, DispatchResult, Prepared, Preview

__all__ = ["NO_KEY_MESSAGE", "BatchDispatcher", "CallEndWaiter", "Dispatcher", "ToolDeps", "api_of", "deps_of"]

NO_KEY_MESSAGE = (
    "No OutboundCalls API key is configured. The owner must set OUTBOUNDCALLS_API_KEY "
    "(Settings → API Keys in the OutboundCalls dashboard), or start the server with --sandbox to try it without one."
)


class Dispatcher(Protocol):
    """The one path every dispatch takes: pre-flight, consent bookkeeping, exactly-once dial."""

    async def prepare(self, args: DispatchArgs) -> Prepared:
        """Run pre-flight (cached briefly per args); raise ToolError naming every refusing rule."""
        ...

    async def offer_token(self, prepared: Prepared) -> Preview:
        """Record the intent and return the preview carrying its confirmation token."""
        ...

    async def record_question(self, prepared: Prepared, *, era: str) -> None:
        """Audit the confirmation question as it is put to the person."""
        ...

    async def record_answer(self, prepared: Prepared, answer: str) -> None:
        """Audit what the person answered (accept, decline, cancel, error)."""
        ...

    async def refuse(self, prepared: Prepared, reason: str) -> None:
        """Audit a refusal that is no pre-flight rule (a required question the client cannot show)."""
        ...

    async def dial(self, prepared: Prepared, *, via: str) -> DispatchResult:
        """Place the call once, through the ledger."""
        ...

    async def dial_with_token(self, args: DispatchArgs, token: str) -> DispatchResult:
        """Confirm a previewed dispatch by its token: dial once, or return the recorded outcome."""
        ...

    async def record_charge(self, call: CallSummary) -> bool:
        """Audit what an ended call this server dialed was charged, once."""
        ...


class BatchDispatcher(Protocol):
    """dispatch_calls' path: every destination through the same pre-flight and ledger, one confirmation."""

    async def plan(self, args: BatchArgs) -> BatchPlan:
        """Pre-flight every destination; refusals are listed, never fatal (only a batch over the limit is)."""
        ...

    async def record_question(self, plan: BatchPlan, *, era: str) -> None:
        """Audit the one question as it is put to the person."""
        ...

    async def record_answer(self, plan: BatchPlan, answer: str) -> None:
        """Audit what the person answered, for every ready destination."""
        ...

    async def offer_token(self, plan: BatchPlan) -> BatchResult:
        """Record pending intents for the ready destinations; one token confirms them all."""
        ...

    async def dial(self, plan: BatchPlan, *, via: str) -> BatchResult:
        """Dial each ready destination once, in order, through the ledger."""
        ...

    async def dial_with_token(self, args: BatchArgs, token: str) -> BatchResult:
        """Confirm a previewed batch by its token: each destination dialed once, or its recorded outcome."""
        ...

    def not_dialed(self, plan: BatchPlan, message: str) -> BatchResult:
        """The plan reported with nothing dialed."""
        ...


class CallEndWaiter(Protocol):
    """Call ends known without polling (webhooks) or seen by a tool: waited on, and announced."""

    async def wait(self, call_ids: Sequence[str], timeout: float) -> dict[str, CallDetail]:
        """Return once one of these calls is known to have ended, or after timeout; the ended ones known."""
        ...

    async def call_ended(self, call: CallDetail) -> None:
        """Announce a call seen in a terminal status: wakes its waiters, notifies subscribers once."""
        ...


@dataclass
class ToolDeps:
    """Per-server dependencies a tool reaches through its typed Context."""

    api: OutboundCallsClient | None
    default_region: str
    sandbox: bool
    confirm_mode: str
    dispatcher: Dispatcher | None = None
    now: Callable[[], datetime] = field(default=datetime.now)
    sleep: Callable[[float], Awaitable[Any]] | None = None
    call_ends: CallEndWaiter | None = None
    batch: BatchDispatcher | None = None


def deps_of(ctx: Context[ToolDeps]) -> ToolDeps:
    """The server's dependencies for this request."""
    return ctx.request_context.lifespan_context


def api_of(ctx: Context[ToolDeps]) -> OutboundCallsClient:
    """The API client, or a tool error telling the owner how to configure one."""
    api = deps_of(ctx).api
    if api is None:
        raise ToolError(NO_KEY_MESSAGE)
    return api
