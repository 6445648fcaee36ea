"""dispatch_call: place one outbound call, never without the person's consent or the owner's rules."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, Resolve
from mcp_types import CallToolResult
from pydantic import Field

from outboundcalls_mcp.tools.consent import (
    AskedOnce,
    Route,
    answering_key,
    as_tool_error,
    ask_recorded,
    decide_route,
    person_answer,
)
from outboundcalls_mcp.tools.contracts import DialConsent, Dispatcher, DispatchRequest, DispatchResult, Prepared
from outboundcalls_mcp.tools.deps import ToolDeps, deps_of, no_key_error
from outboundcalls_mcp.tools.inputs import AgentId, OptionalId, Token
from outboundcalls_mcp.tools.results import structured

__all__ = ["CallRoute", "ask_consent", "consent_route", "dispatch_call"]

# dispatch_call's route, with what it prepared (a preview) or the consent it asks about.
CallRoute = Route[Prepared]


def _dispatcher(ctx: Context[ToolDeps]) -> Dispatcher:
    dispatcher = deps_of(ctx).dispatcher
    if dispatcher is None:
        raise no_key_error()
    return dispatcher


async def consent_route(
    ctx: Context[ToolDeps],
    agent_id: str,
    to_number: str,
    phone_number_id: str | None = None,
    contact_id: str | None = None,
    confirmation_token: str | None = None,
) -> CallRoute:
    """Decide how consent is obtained; pre-flight runs first, so a refused dispatch is never asked about."""
    with as_tool_error():
        dispatcher = _dispatcher(ctx)
        args = DispatchRequest(
            agent_id=agent_id, to_number=to_number, phone_number_id=phone_number_id, contact_id=contact_id
        )
        return await decide_route(
            ctx, dispatcher, args, token_given=confirmation_token is not None, prepare=dispatcher.prepare
        )


async def ask_consent(
    ctx: Context[ToolDeps], route: Annotated[CallRoute, Resolve(consent_route)]
) -> Elicit[DialConsent] | AskedOnce | None:
    """Put the recorded question to the person, in its recorded words; nothing to ask on the other routes."""
    return await ask_recorded(ctx, route)


async def dispatch_call(
    ctx: Context[ToolDeps],
    agent_id: AgentId,
    to_number: Annotated[str, Field(max_length=64, description="Destination; E.164 or national form.")],
    route: Annotated[CallRoute, Resolve(consent_route)],
    answer: Annotated[ElicitationResult[Any], Resolve(ask_consent)],
    phone_number_id: Annotated[OptionalId | None, Field(description="Caller id to use.")] = None,
    contact_id: Annotated[OptionalId | None, Field(description="Contact to link.")] = None,
    confirmation_token: Annotated[
        Token | None, Field(description="From the preview, once the person said yes.")
    ] = None,
) -> Annotated[CallToolResult, DispatchResult]:
    """Place a real call (costs credits). Without a token it asks the person, or returns a preview:
    show it, get an explicit yes, then call again with its confirmation_token."""
    with as_tool_error():
        dispatcher = _dispatcher(ctx)
        if route.kind == "token":
            assert confirmation_token is not None
            args = DispatchRequest(
                agent_id=agent_id, to_number=to_number, phone_number_id=phone_number_id, contact_id=contact_id
            )
            return structured(await dispatcher.confirm_token(args, confirmation_token))
        if route.ticket is not None:
            return structured(
                await dispatcher.answer(route.ticket, person_answer(answer), answer_key=answering_key(ctx))
            )
        assert route.prepared is not None
        if route.kind == "unattended":
            return structured(await dispatcher.dial_unattended(route.prepared))
        view = await dispatcher.offer_token(route.prepared)
        return structured(
            DispatchResult(
                status="needs_confirmation",
                message=(
                    "Not dialed yet. Show this preview to the person and get an explicit yes, then call "
                    "dispatch_call again with the same arguments and confirmation_token (valid 5 minutes)."
                ),
                preview=view,
            )
        )
