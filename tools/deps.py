"""What a tool needs from the server, built by the server in its lifespan (tools never import server)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError

if TYPE_CHECKING:
    from outboundcalls.calls import CallDetail, CallSummary
    from outboundcalls.client import OutboundCallsClient

    from outboundcalls_mcp.tools.dispatch_models import (
        Answer,
        BatchArgs,
        BatchPlan,
        BatchResult,
        ConsentTicket,
        DispatchRequest,
        DispatchResult,
        Prepared,
        Preview,
    )

__all__ = [
    "NO_KEY_MESSAGE", "BatchDispatcher", "CallEndWaiter", "Dispatcher", "ToolDeps", "api_of", "deps_of", "no_key_error",
]

NO_KEY_MESSAGE = (
    "No OutboundCalls API key is configured. The owner must set OUTBOUNDCALLS_API_KEY "
    "(Settings → API Keys in the OutboundCalls dashboard), or start the server with --sandbox to try it without one."
)


class Dispatcher(Protocol):
    """The one path every dispatch_call takes: pre-flight, a consent used once, a dial decided once.

    Every method raises DispatchError (tools.dispatch_models) when nothing was dialed and the
    assistant must be told why.
    """

    async def prepare(self, args: DispatchRequest) -> Prepared:
        """Run pre-flight; raise PreflightRefused naming every refusing rule (audited)."""
        ...

    async def consent_for_answer(self, args: DispatchRequest, answer_key: str) -> ConsentTicket | None:
        """On an answering round: the question it answers (or already answered), if one is on record."""
        ...

    async def open_question(self, prepared: Prepared, *, era: str) -> ConsentTicket:
        """Record the question about to be asked (audited once); its words are asked as recorded."""
        ...

    async def refuse(self, prepared: Prepared, reason: str) -> None:
        """Audit a refusal that is no pre-flight rule (a required question the client cannot show)."""
        ...

    async def offer_token(self, prepared: Prepared) -> Preview:
        """Record the preview as a consent and return it carrying its confirmation token."""
        ...

    async def answer(self, ticket: ConsentTicket, answer: Answer, *, answer_key: str | None) -> DispatchResult:
        """Use the consent with the person's answer, once: a yes dials (if the rules still allow it)."""
        ...

    async def dial_unattended(self, prepared: Prepared) -> DispatchResult:
        """Dial without asking (OUTBOUNDCALLS_CONFIRM=none), decided like any other dial."""
        ...

    async def confirm_token(self, args: DispatchRequest, token: str) -> DispatchResult:
        """Use a preview's consent by its token: dial once, or return what it already did."""
        ...

    async def record_charge(self, call: CallSummary) -> bool:
        """Audit what an ended call this server dialed was charged, once."""
        ...


class BatchDispatcher(Protocol):
    """dispatch_calls' path: every destination through the same pre-flight and ledger, one consent."""

    async def plan(self, args: BatchArgs) -> BatchPlan:
        """Pre-flight every destination; refusals are listed, never fatal (only a batch over the limit is)."""
        ...

    async def consent_for_answer(self, args: BatchArgs, answer_key: str) -> ConsentTicket | None:
        """On an answering round: the question it answers (or already answered), if one is on record."""
        ...

    async def open_question(self, plan: BatchPlan, *, era: str) -> ConsentTicket:
        """Record the one question about the batch (audited once)."""
        ...

    async def refuse(self, plan: BatchPlan, reason: str) -> None:
        """Audit a refusal that is no pre-flight rule."""
        ...

    async def offer_token(self, plan: BatchPlan) -> BatchResult:
        """Record the preview as one consent for the batch; one token confirms it."""
        ...

    async def answer(self, ticket: ConsentTicket, answer: Answer, *, answer_key: str | None) -> BatchResult:
        """Use the consent with the person's answer, once: a yes dials exactly the destinations agreed."""
        ...

    async def dial_unattended(self, plan: BatchPlan) -> BatchResult:
        """Dial each ready destination without asking, each decided like any other dial."""
        ...

    async def confirm_token(self, args: BatchArgs, token: str) -> BatchResult:
        """Use a batch preview's consent by its token: each agreed destination dialed once, or what it did."""
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


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class ToolDeps:
    """Per-server dependencies a tool reaches through its typed Context."""

    api: OutboundCallsClient | None
    default_region: str
    sandbox: bool
    confirm_mode: str
    dispatcher: Dispatcher | None = None
    now: Callable[[], datetime] = field(default=_utc_now)
    sleep: Callable[[float], Awaitable[Any]] | None = None
    call_ends: CallEndWaiter | None = None
    batch: BatchDispatcher | None = None


def deps_of(ctx: Context[ToolDeps]) -> ToolDeps:
    """The server's dependencies for this request."""
    return ctx.request_context.lifespan_context


def no_key_error() -> ToolError:
    """The tool error of a server that has no API key (and no sandbox): what the owner must set."""
    return ToolError(NO_KEY_MESSAGE)


def api_of(ctx: Context[ToolDeps]) -> OutboundCallsClient:
    """The API client, or a tool error telling the owner how to configure one."""
    api = deps_of(ctx).api
    if api is None:
        raise no_key_error()
    return api
