"""How a person is asked before any call is placed: one path for dispatch_call and dispatch_calls."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from mcp.server.mcpserver import Context, Elicit
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel

from tools.deps import ToolDeps, deps_of
from tools.dispatch_models import DialConsent

__all__ = ["CANNOT_ELICIT", "AskedOnce", "NotAsked", "ask_person", "can_elicit_form"]

log = logging.getLogger("outboundcalls.dispatch")

CANNOT_ELICIT = (
    "This client cannot show a confirmation form, and the owner requires one (OUTBOUNDCALLS_CONFIRM=elicit). "
    "Nothing was dialed. Use a client that supports elicitation, or ask the owner to allow the token flow."
)


class NotAsked(BaseModel):
    """Why no question was put to the person on this request."""

    why: Literal["token", "token_mode", "cannot_elicit", "unattended", "nothing_to_ask"]


class AskedOnce(BaseModel):
    """A handshake-era answer, or the failure to get one (never consent)."""

    action: Literal["accept", "decline", "cancel", "error"]
    confirm: bool = False


def can_elicit_form(ctx: Context[Any]) -> bool:
    """Whether a form elicitation can reach the person on this request (either protocol era)."""
    caps = ctx.client_capabilities
    el = caps.elicitation if caps else None
    if el is None or (el.form is None and el.url is not None):
        return False
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return True
    return bool(ctx.session.can_send_request)


async def ask_person(
    ctx: Context[ToolDeps],
    question: str,
    *,
    record_question: Callable[[str], Awaitable[None]],
    refuse_cannot_elicit: Callable[[], Awaitable[None]],
) -> Elicit[DialConsent] | NotAsked | AskedOnce:
    """Ask by the owner's mode and what the client can do; call only after pre-flight passed."""
    mode = deps_of(ctx).confirm_mode
    if mode == "none":
        return NotAsked(why="unattended")
    if mode == "token":
        return NotAsked(why="token_mode")
    if not can_elicit_form(ctx):
        if mode == "elicit":
            await refuse_cannot_elicit()
            raise ToolError(CANNOT_ELICIT)
        return NotAsked(why="cannot_elicit")
    era = str(ctx.protocol_version)
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        # The resolver runs again on the round that carries the answer; the question was asked once.
        if not ctx.input_responses:
            await record_question(era)
        return Elicit(question, DialConsent)
    # Handshake era: ask here so that a failed question is a refusal, never a protocol error and never consent.
    await record_question(era)
    try:
        answer = await ctx.elicit(question, DialConsent)
    except Exception as exc:  # noqa: BLE001 - any failure to get an answer means no consent
        log.info("confirmation request failed: %s", type(exc).__name__)
        return AskedOnce(action="error")
    if answer.action == "accept":
        return AskedOnce(action="accept", confirm=answer.data.confirm is True)
    return AskedOnce(action=answer.action)
