"""dispatch_calls: one agent, several destinations, one confirmation; each destination dialed at most once."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, Resolve
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, ConfigDict, Field

from tools.deps import NO_KEY_MESSAGE, BatchDispatcher, ToolDeps, deps_of
from tools.consent import AskedOnce, NotAsked, ask_person
from tools.dispatch_models import DialConsent
from tools.inputs import AgentId, OptionalId, Token
from tools.results import ToolModel, structured

__all__ = ["MAX_BATCH_LIMIT", "BatchArgs", "BatchPlan", "BatchResult", "Destination", "dispatch_calls"]

MAX_BATCH_LIMIT = 200  # the largest OUTBOUNDCALLS_MAX_BATCH; the owner's own limit is checked on the server
DestinationStatus = Literal["ready", "refused", "dialed", "failed", "outcome_unknown", "not_dialed"]


class BatchArgs(BaseModel):
    """What a batch is bound to: one agent, the destinations in order, the caller id."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    agent_id: str
    to_numbers: tuple[str, ...]
    phone_number_id: str | None = None


class Destination(ToolModel):
    to: str
    status: DestinationStatus
    call_id: str | None = None
    est_credits_per_min: float | None = None
    local_time: str | None = None
    reason: str | None = None


class BatchResult(ToolModel):
    status: Literal["dialed", "needs_confirmation", "not_dialed"]
    message: str
    destinations: list[Destination]
    est_credits_per_min: float | None = None  # all ready calls together; an estimate
    confirmation_token: str | None = None
    expires_at: datetime | None = None


class BatchPlan(BaseModel):
    """A batch after pre-flight: what to show, the one question to ask, and the service's own record."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True, defer_build=True)

    args: BatchArgs
    destinations: list[Destination]
    est_credits_per_min: float | None
    question: str
    handle: object = None

    @property
    def ready(self) -> int:
        """How many destinations passed pre-flight."""
        return sum(1 for d in self.destinations if d.status == "ready")


def _batch(ctx: Context[ToolDeps]) -> BatchDispatcher:
    batch = deps_of(ctx).batch
    if batch is None:
        raise ToolError(NO_KEY_MESSAGE)
    return batch


async def ask_batch_consent(
    ctx: Context[ToolDeps],
    agent_id: str,
    to_numbers: list[str],
    phone_number_id: str | None = None,
    confirmation_token: str | None = None,
) -> Elicit[DialConsent] | NotAsked | AskedOnce:
    """One question for the whole batch, asked only after every destination went through pre-flight."""
    if confirmation_token is not None:
        return NotAsked(why="token")
    batch = _batch(ctx)
    plan = await batch.plan(BatchArgs(agent_id=agent_id, to_numbers=tuple(to_numbers), phone_number_id=phone_number_id))
    if plan.ready == 0:
        return NotAsked(why="nothing_to_ask")

    async def record_question(era: str) -> None:
        await batch.record_question(plan, era=era)

    async def refuse_cannot_elicit() -> None:
        await batch.record_answer(plan, "cannot_elicit")

    return await ask_person(ctx, plan.question, record_question=record_question,
                            refuse_cannot_elicit=refuse_cannot_elicit)


async def dispatch_calls(
    ctx: Context[ToolDeps],
    agent_id: AgentId,
    to_numbers: Annotated[
        list[Annotated[str, Field(max_length=64)]],
        Field(min_length=1, max_length=MAX_BATCH_LIMIT, description="Destinations; at most the owner's batch limit (20)."),
    ],
    consent: Annotated[ElicitationResult[Any], Resolve(ask_batch_consent)],
    phone_number_id: Annotated[OptionalId | None, Field(description="Caller id to use.")] = None,
    confirmation_token: Annotated[Token | None, Field(description="From the preview, once the person said yes.")] = None,
) -> BatchResult:
    """Place real calls to several numbers with one agent (costs credits) after one confirmation for all;
    refused numbers are listed with why."""
    batch = _batch(ctx)
    args = BatchArgs(agent_id=agent_id, to_numbers=tuple(to_numbers), phone_number_id=phone_number_id)
    data = consent.data if consent.action == "accept" else None
    if isinstance(data, NotAsked) and data.why == "token":
        assert confirmation_token is not None
        return structured(await batch.dial_with_token(args, confirmation_token))
    plan = await batch.plan(args)
    if isinstance(data, NotAsked):
        if data.why == "nothing_to_ask":
            return structured(batch.not_dialed(plan, "Every destination was refused. Nothing was dialed."))
        if data.why == "unattended":
            return structured(await batch.dial(plan, via="unattended"))
        return structured(await batch.offer_token(plan))
    if consent.action != "accept":
        answer, confirmed = consent.action, False
    elif isinstance(data, DialConsent):
        answer, confirmed = "accept", data.confirm is True
    elif isinstance(data, AskedOnce):
        answer, confirmed = data.action, data.confirm
    else:  # pragma: no cover - a resolver value this tool never produces
        raise ToolError("Unexpected confirmation state; nothing was dialed.")
    await batch.record_answer(plan, answer if confirmed or answer != "accept" else "accept_false")
    if not confirmed:
        why = {
            "error": "The confirmation request failed, and no answer is no consent.",
            "accept": "The person did not tick confirm.",
            "decline": "The person declined the calls.",
            "cancel": "The person cancelled the calls.",
        }[answer]
        return structured(batch.not_dialed(plan, f"{why} Nothing was dialed."))
    return structured(await batch.dial(plan, via="elicitation"))
