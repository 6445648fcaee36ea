"""How a person is asked before any call is placed, and how their answer reads: one path for both dispatch tools.

The owner's mode (OUTBOUNDCALLS_CONFIRM) and what the client can show decide the route. A
question is put in the handshake era over the live back-channel, and in the 2026-07-28 era as an
input request whose answer arrives on a later round of the same call; that round carries the
sealed request state it answers, and `answering_key` names it, so that a round sent again finds
the consent it already used instead of using another.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, Literal, Protocol, TypeVar

from mcp.server.mcpserver import Context, Elicit, ElicitationResult
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ConfigDict

from outboundcalls_mcp.tools.contracts import Answer, ConsentTicket, DialConsent, DispatchError
from outboundcalls_mcp.tools.deps import deps_of

__all__ = [
    "CANNOT_ELICIT",
    "TOKENS_NOT_ACCEPTED",
    "AskedOnce",
    "ConsentService",
    "Route",
    "answering_key",
    "as_tool_error",
    "ask_person",
    "ask_recorded",
    "can_elicit_form",
    "decide_route",
    "person_answer",
    "route_for",
]

log = logging.getLogger("outboundcalls.dispatch")

CANNOT_ELICIT = (
    "This client cannot show a confirmation form, and the owner requires one (OUTBOUNDCALLS_CONFIRM=elicit). "
    "Nothing was dialed. Use a client that supports elicitation, or ask the owner to allow the token flow."
)
TOKENS_NOT_ACCEPTED = {
    "elicit": (
        "confirmation_token is not accepted here: the owner requires the person to answer a confirmation form "
        "(OUTBOUNDCALLS_CONFIRM=elicit). Nothing was dialed. Call again without confirmation_token."
    ),
    "none": (
        "confirmation_token is not accepted here: this server dials without confirmations "
        "(OUTBOUNDCALLS_CONFIRM=none). Nothing was dialed. Call again without confirmation_token."
    ),
}
RouteKind = Literal["token", "offer_token", "unattended", "ask"]
ArgsT = TypeVar("ArgsT", contravariant=True)
PlanT = TypeVar("PlanT")
PreparedT = TypeVar("PreparedT", contravariant=True)


class ConsentService(Protocol[ArgsT, PreparedT]):
    """What deciding a route needs of a dispatch service (tools.contracts' Dispatcher and BatchDispatcher)."""

    async def consent_for_answer(self, args: ArgsT, answer_key: str) -> ConsentTicket | None: ...

    async def open_question(self, prepared: PreparedT, *, era: str) -> ConsentTicket: ...

    async def refuse(self, prepared: PreparedT, reason: str) -> None: ...


class Route(BaseModel, Generic[PlanT]):
    """How this call's consent is obtained (token, preview to confirm, nobody, question), with what was prepared."""

    model_config = ConfigDict(frozen=True)

    kind: RouteKind
    prepared: PlanT | None = None
    ticket: ConsentTicket | None = None


class AskedOnce(BaseModel):
    """A handshake-era answer, or the failure to get one (never consent)."""

    model_config = ConfigDict(frozen=True)

    answer: Answer


@contextmanager
def as_tool_error() -> Iterator[None]:
    """A dispatch that did not happen reaches the assistant as a tool error with the service's words."""
    try:
        yield
    except DispatchError as exc:
        raise ToolError(str(exc)) from None


def can_elicit_form(ctx: Context[Any]) -> bool:
    """Whether a form elicitation can reach the person on this request (either protocol era)."""
    caps = ctx.client_capabilities
    el = caps.elicitation if caps else None
    if el is None or (el.form is None and el.url is not None):
        return False
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return True
    return bool(ctx.session.can_send_request)


def route_for(
    ctx: Context[Any], *, token_given: bool
) -> Literal["token", "offer_token", "unattended", "ask", "cannot_ask"]:
    """The route the owner's mode and this client allow; raises DispatchError for a token the mode refuses."""
    mode = deps_of(ctx).confirm_mode
    if token_given:
        if mode in TOKENS_NOT_ACCEPTED:
            raise DispatchError(TOKENS_NOT_ACCEPTED[mode])
        return "token"
    if mode == "none":
        return "unattended"
    if mode == "token":
        return "offer_token"
    if can_elicit_form(ctx):
        return "ask"
    return "cannot_ask" if mode == "elicit" else "offer_token"


async def decide_route(
    ctx: Context[Any],
    service: ConsentService[ArgsT, PlanT],
    args: ArgsT,
    *,
    token_given: bool,
    prepare: Callable[[ArgsT], Awaitable[PlanT]],
    anything_to_ask: Callable[[PlanT], bool] = lambda _: True,
) -> Route[PlanT]:
    """The route for one dispatch tool call; pre-flight (`prepare`) first, so nobody is asked about a refused one."""
    route = route_for(ctx, token_given=token_given)
    if route == "token":
        return Route(kind="token")
    # On the round that carries an answer, the question it answers is on record (or the round was
    # sent before, and the consent it used reports what it did): nothing is prepared again.
    key = answering_key(ctx)
    if key is not None:
        ticket = await service.consent_for_answer(args, key)
        if ticket is not None:
            return Route(kind="ask", ticket=ticket)
    prepared = await prepare(args)
    if not anything_to_ask(prepared):
        return Route(kind="unattended" if route == "unattended" else "offer_token", prepared=prepared)
    if route == "cannot_ask":
        await service.refuse(prepared, "cannot_elicit")
        raise DispatchError(CANNOT_ELICIT)
    if route == "ask":
        return Route(kind="ask", ticket=await service.open_question(prepared, era=str(ctx.protocol_version)))
    return Route(kind=route, prepared=prepared)


async def ask_recorded(ctx: Context[Any], route: Route[Any]) -> Elicit[DialConsent] | AskedOnce | None:
    """Put the recorded question to the person, in its recorded words; nothing to ask on the other routes."""
    if route.ticket is None:
        return None
    return await ask_person(ctx, route.ticket.question)


def answering_key(ctx: Context[Any]) -> str | None:
    """On a 2026-07-28 round that carries answers, a digest of the request state it answers; otherwise None."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS or not ctx.input_responses:
        return None
    # The state is sealed and verified by the SDK before we see it: the same round sent again
    # carries the same state, and a state names the exact question it answers.
    state = ctx.request_state or ""
    return hashlib.sha256(state.encode("utf-8", "surrogatepass")).hexdigest()


async def ask_person(ctx: Context[Any], question: str) -> Elicit[DialConsent] | AskedOnce:
    """Put the question: as an input request (2026-07-28), or over the back-channel, where a failure is a no."""
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return Elicit(question, DialConsent)
    try:
        answer = await ctx.elicit(question, DialConsent)
    except Exception as exc:
        log.info("confirmation request failed: %s", type(exc).__name__)
        return AskedOnce(answer="error")
    if answer.action == "accept":
        return AskedOnce(answer="accept" if answer.data.confirm is True else "accept_false")
    return AskedOnce(answer=answer.action)


def person_answer(outcome: ElicitationResult[Any]) -> Answer:
    """What the person answered, in either era; only a ticked confirm (JSON true) is a yes."""
    if outcome.action != "accept":
        return outcome.action
    data = outcome.data
    if isinstance(data, AskedOnce):
        return data.answer
    if isinstance(data, DialConsent):
        return "accept" if data.confirm is True else "accept_false"
    return "error"
