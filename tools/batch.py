"""dispatch_calls: one agent, several destinations, one confirmation; each destination dialed at most once."""

from __future__ import annotations

from typing import Annotated, Any, Final

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
from outboundcalls_mcp.tools.contracts import BatchArgs, BatchDispatcher, BatchPlan, BatchResult, DialConsent
from outboundcalls_mcp.tools.deps import ToolDeps, deps_of, no_key_error
from outboundcalls_mcp.tools.inputs import AgentId, OptionalId, Token
from outboundcalls_mcp.tools.results import structured

__all__ = ["MAX_BATCH_LIMIT", "BatchRoute", "ask_batch_consent", "batch_route", "dispatch_calls"]

MAX_BATCH_LIMIT: Final = 200  # the largest OUTBOUNDCALLS_MAX_BATCH; the owner's own limit is checked on the server
# dispatch_calls' route, with its plan (the preview) or the consent it asks about.
BatchRoute = Route[BatchPlan]


def _batch(ctx: Context[ToolDeps]) -> BatchDispatcher:
    batch = deps_of(ctx).batch
    if batch is None:
        raise no_key_error()
    return batch


def _anything_to_ask(plan: BatchPlan) -> bool:
    """A plan with no ready destination asks nothing: the body reports every refusal."""
    return bool(plan.ready)


async def batch_route(
    ctx: Context[ToolDeps],
    agent_id: str,
    to_numbers: list[str],
    phone_number_id: str | None = None,
    confirmation_token: str | None = None,
) -> BatchRoute:
    """One question for the whole batch, asked only after every destination went through pre-flight."""
    with as_tool_error():
        batch = _batch(ctx)
        args = BatchArgs(agent_id=agent_id, to_numbers=tuple(to_numbers), phone_number_id=phone_number_id)
        return await decide_route(
            ctx,
            batch,
            args,
            token_given=confirmation_token is not None,
            prepare=batch.plan,
            anything_to_ask=_anything_to_ask,
        )


async def ask_batch_consent(
    ctx: Context[ToolDeps], route: Annotated[BatchRoute, Resolve(batch_route)]
) -> Elicit[DialConsent] | AskedOnce | None:
    """Put the recorded question to the person, in its recorded words; nothing to ask on the other routes."""
    return await ask_recorded(ctx, route)


async def dispatch_calls(
    ctx: Context[ToolDeps],
    agent_id: AgentId,
    to_numbers: Annotated[
        list[Annotated[str, Field(max_length=64)]],
        Field(
            min_length=1, max_length=MAX_BATCH_LIMIT, description="Destinations; at most the owner's batch limit (20)."
        ),
    ],
    route: Annotated[BatchRoute, Resolve(batch_route)],
    answer: Annotated[ElicitationResult[Any], Resolve(ask_batch_consent)],
    phone_number_id: Annotated[OptionalId | None, Field(description="Caller id to use.")] = None,
    confirmation_token: Annotated[
        Token | None, Field(description="From the preview, once the person said yes.")
    ] = None,
) -> Annotated[CallToolResult, BatchResult]:
    """Place real calls to several numbers with one agent (costs credits) after one confirmation for all;
    refused numbers are listed with why."""
    with as_tool_error():
        batch = _batch(ctx)
        if route.kind == "token":
            assert confirmation_token is not None
            args = BatchArgs(agent_id=agent_id, to_numbers=tuple(to_numbers), phone_number_id=phone_number_id)
            return structured(await batch.confirm_token(args, confirmation_token))
        if route.ticket is not None:
            return structured(await batch.answer(route.ticket, person_answer(answer), answer_key=answering_key(ctx)))
        plan = route.prepared
        assert plan is not None
        if not plan.ready:
            return structured(batch.not_dialed(plan, "Every destination was refused. Nothing was dialed."))
        if route.kind == "unattended":
            return structured(await batch.dial_unattended(plan))
        return structured(await batch.offer_token(plan))
