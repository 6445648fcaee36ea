"""Batches: each destination through the single-dispatch service (same pre-flight, same ledger), one confirmation.

One question lists every destination, the total estimate and what was refused and why. In token
mode one token covers the batch: each destination's intent carries a token derived from it, so the
ledger's exactly-once claim applies per destination exactly as for dispatch_call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver.exceptions import ToolError

from server.dispatch import DispatchService
from server.dispatch_text import SANDBOX_PREFIX
from server.preflight import ESTIMATE_MINUTES_PER_CALL, estimate_per_call
from tools.batch import BatchArgs, BatchPlan, BatchResult, Destination
from tools.dispatch_models import DispatchArgs, DispatchResult, NamedRefusal, PreflightRefused, Prepared

if TYPE_CHECKING:
    from server.settings import Settings
    from tools.deps import Dispatcher

__all__ = ["BatchDispatchService", "batch_token_for", "open_batch_dispatcher"]

TOKEN_UNKNOWN = (
    "confirmation_token does not confirm this batch: it was not issued by this server, was altered, or the numbers "
    "are not the ones previewed, in the same order. Nothing was dialed. Call dispatch_calls without a token to "
    "preview again."
)
OTHER_ARGUMENTS = (
    "This confirmation_token was issued for another agent, caller id or list of numbers; it confirms nothing here. "
    "Nothing was dialed. Use exactly the previewed agent and numbers, in the same order."
)


@dataclass(frozen=True)
class _Ready:
    """A destination that passed pre-flight, at its position in the batch."""

    index: int
    prepared: Prepared


def batch_token_for(batch_token: str, index: int) -> str:
    """The token of the destination at `index`, derived from the batch's token (never shown to anyone)."""
    digest = hmac.new(batch_token.encode(), f"outboundcalls-batch:{index}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _reason(refusals: Sequence[NamedRefusal]) -> str:
    return "; ".join(f"{r.rule}: {r.value}" for r in refusals) or "refused by pre-flight"


class BatchDispatchService:
    """Implements tools.deps.BatchDispatcher over DispatchService."""

    def __init__(self, service: DispatchService, *, max_batch: int) -> None:
        self.service = service
        self.max_batch = max_batch

    async def plan(self, args: BatchArgs) -> BatchPlan:
        """Pre-flight each destination in order; duplicates and the daily caps count the batch as a whole."""
        self._check_size(args)
        svc = self.service
        usage = await svc.ledger.usage(None, now=svc.now())
        ready: list[_Ready] = []
        shown: list[Destination] = []
        seen: set[str] = set()
        spent = 0.0
        for index, raw in enumerate(args.to_numbers):
            try:
                prepared = await svc.prepare(DispatchArgs(agent_id=args.agent_id, to_number=raw,
                                                          phone_number_id=args.phone_number_id))
            except PreflightRefused as refused:
                shown.append(Destination(to=raw, status="refused", reason=_reason(refused.refusals)))
                continue
            view = prepared.view
            per_call = estimate_per_call(view.est_credits_per_min) or 0.0
            why = None
            if view.to in seen:
                why = f"duplicate: {view.to} is already in this batch"
            elif usage.calls_last_24h + len(ready) >= svc.policy.max_calls_per_day:
                why = f"daily_calls: the batch would pass the cap of {svc.policy.max_calls_per_day} calls per 24 hours"
            elif usage.credits_last_24h + spent + per_call > svc.policy.max_credits_per_day:
                why = f"daily_credits: the batch would pass the cap of {svc.policy.max_credits_per_day:g} estimated credits"
            if why is not None:
                shown.append(Destination(to=view.to, status="refused", reason=why))
                continue
            seen.add(view.to)
            spent += per_call
            ready.append(_Ready(index, prepared))
            shown.append(Destination(to=view.to, status="ready", est_credits_per_min=view.est_credits_per_min,
                                     local_time=view.local_time))
        rates = [d.est_credits_per_min for d in shown if d.status == "ready" and d.est_credits_per_min is not None]
        total = round(sum(rates), 2) if rates else None
        plan = BatchPlan(args=args, destinations=shown, est_credits_per_min=total, question="", handle=tuple(ready))
        return plan.model_copy(update={"question": self._question(plan, ready)})

    async def record_question(self, plan: BatchPlan, *, era: str) -> None:
        """Audit the one question for every destination it covers."""
        for item in _ready(plan):
            view = item.prepared.view
            await self.service.ledger.append_audit(
                "question", at=self.service.now(), agent_id=view.agent_id, to_number=view.to,
                estimate=view.est_credits_per_min, detail={"question": plan.question, "era": era, "batch": plan.ready},
            )

    async def record_answer(self, plan: BatchPlan, answer: str) -> None:
        """Audit the answer for every destination it covers."""
        for item in _ready(plan):
            await self.service.record_answer(item.prepared, answer)

    async def offer_token(self, plan: BatchPlan) -> BatchResult:
        """Pending intents for the ready destinations, each with a token derived from the one batch token."""
        batch_token = secrets.token_urlsafe(24)
        batch_id = "b_" + hashlib.sha256(batch_token.encode()).hexdigest()[:14]
        expires: list[datetime] = []
        for item in _ready(plan):
            view = await self.service.offer_token(item.prepared, batch_id=batch_id,
                                                  token=batch_token_for(batch_token, item.index))
            if view.expires_at is not None:
                expires.append(view.expires_at)
        return BatchResult(
            status="needs_confirmation",
            message=(
                f"Not dialed yet. Show this list ({plan.ready} to call, the rest refused) to the person and get an "
                "explicit yes, then call dispatch_calls again with the same agent and numbers, in the same order, "
                "and this confirmation_token (valid 5 minutes)."
            ),
            destinations=plan.destinations,
            est_credits_per_min=plan.est_credits_per_min,
            confirmation_token=batch_token,
            expires_at=min(expires) if expires else None,
        )

    async def dial(self, plan: BatchPlan, *, via: str) -> BatchResult:
        """Dial each ready destination once, in order; a failure or a late refusal is reported, never retried."""
        batch_id = "b_" + secrets.token_hex(7)
        results = list(plan.destinations)
        for item in _ready(plan):
            before = results[item.index]
            try:
                done = await self.service.dial(item.prepared, via=via, batch_id=batch_id)
            except PreflightRefused as refused:
                results[item.index] = before.model_copy(update={"status": "refused", "reason": _reason(refused.refusals)})
            except ToolError as failed:
                results[item.index] = before.model_copy(update={"status": "failed", "reason": str(failed)})
            else:
                results[item.index] = _outcome(before, done)
        return self._report(results, plan.est_credits_per_min)

    async def dial_with_token(self, args: BatchArgs, token: str) -> BatchResult:
        """Confirm by the batch token: every destination checked against its intent first, then each dialed once."""
        self._check_size(args)
        svc = self.service
        tokens = [batch_token_for(token, index) for index in range(len(args.to_numbers))]
        records = [await svc.ledger.get_intent(t) for t in tokens]
        if all(record is None for record in records):
            await svc.ledger.append_audit("refusal", at=svc.now(), agent_id=args.agent_id,
                                          detail={"claim": "unknown_token", "batch": len(tokens)})
            raise ToolError(TOKEN_UNKNOWN)
        for raw, record in zip(args.to_numbers, records, strict=True):
            if record is not None and (
                record.args.agent_id != args.agent_id or record.args.phone_number_id != args.phone_number_id
                or record.args.to_number != self._e164(raw)
            ):
                await svc.ledger.append_audit("refusal", at=svc.now(), intent_id=record.intent_id,
                                              agent_id=args.agent_id, detail={"claim": "mismatched", "batch": True})
                raise ToolError(OTHER_ARGUMENTS)
        results: list[Destination] = []
        for raw, record, one in zip(args.to_numbers, records, tokens, strict=True):
            if record is None:
                results.append(Destination(to=raw, status="refused", reason="refused in the preview, so not confirmed"))
                continue
            shown = Destination(to=record.args.to_number, status="ready",
                                est_credits_per_min=record.estimated_credits_per_minute)
            try:
                done = await svc.dial_with_token(
                    DispatchArgs(agent_id=args.agent_id, to_number=raw, phone_number_id=args.phone_number_id), one
                )
            except PreflightRefused as refused:
                results.append(shown.model_copy(update={"status": "refused", "reason": _reason(refused.refusals)}))
            except ToolError as failed:
                results.append(shown.model_copy(update={"status": "failed", "reason": str(failed)}))
            else:
                results.append(_outcome(shown, done))
        rates = [d.est_credits_per_min for d in results if d.est_credits_per_min is not None]
        return self._report(results, round(sum(rates), 2) if rates else None)

    def not_dialed(self, plan: BatchPlan, message: str) -> BatchResult:
        """The plan, with its ready destinations marked not dialed."""
        shown = [d.model_copy(update={"status": "not_dialed"}) if d.status == "ready" else d for d in plan.destinations]
        return BatchResult(status="not_dialed", message=message, destinations=shown,
                           est_credits_per_min=plan.est_credits_per_min)

    def _check_size(self, args: BatchArgs) -> None:
        if len(args.to_numbers) > self.max_batch:
            raise ToolError(
                f"to_numbers has {len(args.to_numbers)} destinations; this server takes at most {self.max_batch} per "
                "batch (OUTBOUNDCALLS_MAX_BATCH). Nothing was dialed; split the list."
            )

    def _e164(self, raw: str) -> str | None:
        from outboundcalls.numbers import InvalidPhoneNumberError, parse_phone

        try:
            return parse_phone(raw, self.service.default_region).e164
        except InvalidPhoneNumberError:
            return None

    def _question(self, plan: BatchPlan, ready: list[_Ready]) -> str:
        """Every fact the person needs for the whole batch, in one message."""
        if not ready:
            return ""
        first = ready[0].prepared.view
        agent = f'"{first.agent_name}"' if first.agent_name else first.agent_id
        lines = [f"Place {len(ready)} phone call(s) through agent {agent}?"]
        for item in ready:
            view = item.prepared.view
            rate = f"about {view.est_credits_per_min:g} credits/min" if view.est_credits_per_min is not None else "rate unknown"
            lines.append(f"- {view.to} ({view.country or '?'}, {view.number_type or '?'}; local time "
                         f"{view.local_time or 'unknown'}): {rate}")
        total = plan.est_credits_per_min
        if total is not None:
            lines.append(f"Total: about {total:g} credits per minute of calling (an estimate, not a quote; charged on "
                         f"completion), about {total * ESTIMATE_MINUTES_PER_CALL:g} credits if each call lasts "
                         f"{ESTIMATE_MINUTES_PER_CALL} minutes. Balance: {first.balance:g} credits.")
        refused = [d for d in plan.destinations if d.status == "refused"]
        if refused:
            lines.append("Not called (refused): " + "; ".join(f"{d.to} ({d.reason})" for d in refused) + ".")
        text = "\n".join(lines)
        return (SANDBOX_PREFIX + text) if self.service.sandbox else text

    def _report(self, results: list[Destination], total: float | None) -> BatchResult:
        dialed = [d for d in results if d.status == "dialed"]
        where = " in the SANDBOX (simulated)" if self.service.sandbox else ""
        others = len(results) - len(dialed)
        message = f"Dialed {len(dialed)} of {len(results)} destination(s){where}"
        message += f"; {others} not dialed (see each reason)." if others else "."
        if dialed:
            message += " Use wait_for_calls with their call ids."
        return BatchResult(status="dialed" if dialed else "not_dialed", message=message, destinations=results,
                           est_credits_per_min=total)


def _ready(plan: BatchPlan) -> tuple[_Ready, ...]:
    handle: Any = plan.handle
    if not isinstance(handle, tuple) or not all(isinstance(item, _Ready) for item in handle):
        raise TypeError("not a plan of this service")  # pragma: no cover - plans only come from plan()
    return handle


def _outcome(shown: Destination, done: DispatchResult) -> Destination:
    """One destination's result from what the single-dispatch service did."""
    if done.status == "dialed":
        return shown.model_copy(update={"status": "dialed", "call_id": done.call.id if done.call else None,
                                        "reason": None})
    status = "outcome_unknown" if done.status == "outcome_unknown" else "not_dialed"
    return shown.model_copy(update={"status": status, "reason": done.message})


def open_batch_dispatcher(dispatcher: Dispatcher | None, settings: Settings) -> BatchDispatchService | None:
    """The batch path over this server's dispatch service (none in read-only mode or without a key)."""
    if not isinstance(dispatcher, DispatchService):
        return None
    return BatchDispatchService(dispatcher, max_batch=settings.max_batch)
