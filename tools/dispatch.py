"""dispatch_call: place one outbound call, never without the person's consent or the owner's rules."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from tools.consent import AskedOnce, NotAsked, ask_person
from tools.deps import Dispatcher, ToolDeps, deps_of
from tools.dispatch_models import DialConsent, DispatchArgs, DispatchResult
from tools.inputs import AgentId, OptionalId, Token
from tools.results import structured

__all__ = ["dispatch_call"]

def _dispatcher(ctx: Context[ToolDeps]) -> Dispatcher:
    deps = deps_of(ctx)
    if deps.dispatcher is None:
        from tools.deps import NO_KEY_MESSAGE

        raise ToolError(NO_KEY_MESSAGE)
    return deps.dispatcher


async def ask_consent(
    ctx: Context[ToolDeps],
    agent_id: str,
    to_number: str,
    phone_number_id: str | None = None,
    contact_id: str | None = None,
    confirmation_token: str | None = None,
) -> Elicit[DialConsent] | NotAsked | AskedOnce:
    """Decide how consent is obtained; pre-flight runs first, so a refused dispatch is never asked about."""
    if confirmation_token is not None:
        return NotAsked(why="token")
    dispatcher = _dispatcher(ctx)
    prepared = await dispatcher.prepare(DispatchArgs(agent_id=agent_id, to_number=to_number,
                                                     phone_number_id=phone_number_id, contact_id=contact_id))

    async def record_question(era: str) -> None:
        await dispatcher.record_question(prepared, era=era)

    async def refuse_cannot_elicit() -> None:
        await dispatcher.refuse(prepared, "cannot_elicit")

    return await ask_person(ctx, prepared.question, record_question=record_question,
                            refuse_cannot_elicit=refuse_cannot_elicit)


async def dispatch_call(
    ctx: Context[ToolDeps],
    agent_id: AgentId,
    to_number: Annotated[str, Field(max_length=64, description="Destination; E.164 or national form.")],
    consent: Annotated[ElicitationResult[Any], Resolve(ask_consent)],
    phone_number_id: Annotated[OptionalId | None, Field(description="Caller id to use.")] = None,
    contact_id: Annotated[OptionalId | None, Field(description="Contact to link.")] = None,
    confirmation_token: Annotated[
        Token | None, Field(description="From the preview, once the person said yes.")
    ] = None,
) -> DispatchResult:
    """Place a real call (costs credits). Without a token it asks the person, or returns a preview:
    show it, get an explicit yes, then call again with its confirmation_token."""
    dispatcher = _dispatcher(ctx)
    args = DispatchArgs(agent_id=agent_id, to_number=to_number, phone_number_id=phone_number_id, contact_id=contact_id)
    if consent.action != "accept":
        prepared = await dispatcher.prepare(args)
        await dispatcher.record_answer(prepared, consent.action)
        said = "declined" if consent.action == "decline" else "cancelled"
        return structured(_not_dialed(f"The person {said} the call. Nothing was dialed."))
    data = consent.data
    if isinstance(data, NotAsked):
        if data.why == "token":
            assert confirmation_token is not None
            return structured(await dispatcher.dial_with_token(args, confirmation_token))
        prepared = await dispatcher.prepare(args)
        if data.why == "unattended":
            return structured(await dispatcher.dial(prepared, via="unattended"))
        view = await dispatcher.offer_token(prepared)
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
    prepared = await dispatcher.prepare(args)
    if isinstance(data, DialConsent):
        answer, confirmed = "accept", data.confirm is True
    elif isinstance(data, AskedOnce):
        answer, confirmed = data.action, data.confirm
    else:  # pragma: no cover - a resolver value this tool never produces
        raise ToolError("Unexpected confirmation state; nothing was dialed.")
    await dispatcher.record_answer(prepared, answer if confirmed or answer != "accept" else "accept_false")
    if not confirmed:
        why = {
            "error": "The confirmation request failed, and no answer is no consent.",
            "accept": "The person did not tick confirm.",
            "decline": "The person declined the call.",
            "cancel": "The person cancelled the call.",
        }[answer]
        return structured(_not_dialed(f"{why} Nothing was dialed."))
    return structured(await dispatcher.dial(prepared, via="elicitation"))


def _not_dialed(message: str) -> DispatchResult:
    return DispatchResult(status="not_dialed", message=message)
