"""Batches: one consent for several destinations, each dialed through the single-dispatch service's decision.

One question (or one preview and token) lists every destination, the total estimate, and what was
refused and why. The consent records exactly which destinations were shown as "will be called":
a yes dials those and only those, each decided in its own ledger transaction (so one that became
refused meanwhile is named with its rule and not dialed), and a destination shown as refused stays
refused for that consent even if its rule lifts.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Final

from pydantic import JsonValue

from outboundcalls.display import one_line
from outboundcalls.numbers import e164_or_none
from outboundcalls_mcp.server import dispatch_text as text
from outboundcalls_mcp.server.dispatch import (
    CONSENT_TTL,
    WAIT_FOR_OTHER_SECONDS,
    DispatchService,
    Facts,
    ledger_reachable,
    same_policy,
)
from outboundcalls_mcp.server.dispatch_text import SANDBOX_PREFIX
from outboundcalls_mcp.server.ledger import (
    BoundArgs,
    ConsentAnswer,
    ConsentDestination,
    ConsentRecord,
    DialRequest,
    IntentRecord,
    NewConsent,
    binding_of,
    new_consent_id,
)
from outboundcalls_mcp.server.preflight import ESTIMATE_MINUTES_PER_CALL, estimate_per_call
from outboundcalls_mcp.tools.contracts import (
    Answer,
    BatchArgs,
    BatchPlan,
    BatchResult,
    ConsentTicket,
    Destination,
    DispatchError,
    DispatchRequest,
    DispatchResult,
    NamedRefusal,
    PreflightRefused,
    ReadyDestination,
)

__all__ = ["BatchDispatchService"]

TOKEN_UNKNOWN: Final = (
    "confirmation_token does not confirm this batch: it was not issued by this server, was altered, or was issued "
    "for a single call. Nothing was dialed. Call dispatch_calls without a token to preview again."
)


def _reason(refusals: Sequence[NamedRefusal]) -> str:
    return "; ".join(f"{r.rule}: {r.value}" for r in refusals) or "refused by pre-flight"


class BatchDispatchService:
    """Implements tools.deps.BatchDispatcher over DispatchService."""

    def __init__(self, service: DispatchService) -> None:
        self.service = service

    @ledger_reachable
    async def plan(self, args: BatchArgs) -> BatchPlan:
        """Pre-flight each destination in order; duplicates and the daily caps count the batch as a whole."""
        self._check_size(args)
        svc = self.service
        usage = await svc.ledger.usage(None, now=svc.now())
        ready: list[ReadyDestination] = []
        shown: list[Destination] = []
        seen: set[str] = set()
        spent = 0.0
        for position, raw in enumerate(args.to_numbers):
            try:
                prepared = await svc.prepare(
                    DispatchRequest(agent_id=args.agent_id, to_number=raw, phone_number_id=args.phone_number_id)
                )
            except PreflightRefused as refused:
                shown.append(Destination(to=self._shown(raw), status="refused", reason=_reason(refused.refusals)))
                continue
            view = prepared.view
            per_call = estimate_per_call(view.est_credits_per_min) or 0.0
            why = None
            if view.to in seen:
                why = f"duplicate: {view.to} is already in this batch"
            elif capped := svc.policy.refuse_caps(usage, per_call, planned_calls=len(ready), planned_credits=spent):
                why = _reason(capped[:1])
            if why is not None:
                shown.append(Destination(to=view.to, status="refused", reason=why))
                continue
            seen.add(view.to)
            spent += per_call
            ready.append(ReadyDestination(position=position, view=view))
            shown.append(
                Destination(
                    to=view.to, status="ready", est_credits_per_min=view.est_credits_per_min, local_time=view.local_time
                )
            )
        rates = [d.view.est_credits_per_min for d in ready if d.view.est_credits_per_min is not None]
        total = round(sum(rates), 2) if rates else None
        return BatchPlan(
            args=args,
            destinations=shown,
            ready=tuple(ready),
            est_credits_per_min=total,
            question=self._question(shown, ready, total),
        )

    @ledger_reachable
    async def consent_for_answer(self, args: BatchArgs, answer_key: str) -> ConsentTicket | None:
        """On an answering round: the question it answers (or already answered), if one is on record."""
        record = await self.service.ledger.consent_for_answer(
            self._binding(args), answer_key=answer_key, now=self.service.now()
        )
        return None if record is None else ConsentTicket(consent_id=record.consent_id, question=record.question)

    @ledger_reachable
    async def open_question(self, plan: BatchPlan, *, era: str) -> ConsentTicket:
        """Record the one question about the batch (audited once)."""
        record = await self._open(plan, token=None, era=era)
        return ConsentTicket(consent_id=record.consent_id, question=record.question)

    @ledger_reachable
    async def refuse(self, plan: BatchPlan, reason: str) -> None:
        """Audit a refusal that is no pre-flight rule (the owner requires a question this client cannot show)."""
        await self.service.ledger.append_audit(
            "refusal", at=self.service.now(), agent_id=plan.args.agent_id,
            detail={"reason": reason, "setting": "OUTBOUNDCALLS_CONFIRM", "destinations": len(plan.ready)},
        )  # fmt: skip

    @ledger_reachable
    async def offer_token(self, plan: BatchPlan) -> BatchResult:
        """Record the preview as one consent; one token confirms exactly the destinations shown ready."""
        token = secrets.token_urlsafe(24)
        record = await self._open(plan, token=token, era=None)
        return BatchResult(
            status="needs_confirmation",
            message=(
                f"Not dialed yet. Show this list ({len(plan.ready)} to call, the rest refused) to the person and get "
                "an explicit yes, then call dispatch_calls again with the same agent and numbers, in the same order, "
                "and this confirmation_token (valid 5 minutes)."
            ),
            destinations=plan.destinations,
            est_credits_per_min=plan.est_credits_per_min,
            confirmation_token=token,
            expires_at=record.expires_at,
        )

    @ledger_reachable
    async def answer(self, ticket: ConsentTicket, answer: Answer, *, answer_key: str | None) -> BatchResult:
        """Use the consent with the person's answer, once: a yes dials exactly the destinations agreed."""
        consent = await self.service.consent(ticket.consent_id)
        use = ConsentAnswer(consent_id=consent.consent_id, binding=consent.binding, via="form", answer_key=answer_key)
        return await self._use(consent, use, answer)

    @ledger_reachable
    async def confirm_token(self, args: BatchArgs, token: str) -> BatchResult:
        """Use a batch preview's consent by its token: each agreed destination dialed once, or what it did."""
        self._check_size(args)
        svc = self.service
        consent = await svc.ledger.consent_by_token(token)
        if consent is None or consent.kind != "batch":
            await svc.ledger.append_audit(
                "refusal",
                at=svc.now(),
                agent_id=args.agent_id,
                detail={"claim": "unknown_token", "batch": len(args.to_numbers)},
            )
            raise DispatchError(TOKEN_UNKNOWN)
        use = ConsentAnswer(consent_id=consent.consent_id, binding=self._binding(args), via="token")
        return await self._use(consent, use, "accept")

    @ledger_reachable
    async def dial_unattended(self, plan: BatchPlan) -> BatchResult:
        """Dial each ready destination without asking, each decided like any other dial."""
        svc = self.service
        results = list(plan.destinations)
        if plan.ready:
            facts = await svc.read_facts(plan.args.agent_id, svc.now())
            for item in plan.ready:
                target = BoundArgs(
                    agent_id=plan.args.agent_id, to_number=item.view.to, phone_number_id=plan.args.phone_number_id
                )
                request = DialRequest(target=target, estimate_per_minute=item.view.est_credits_per_min, mode="none")
                results[item.position] = await self._dial(request, facts, results[item.position])
        return self._report(results, plan.est_credits_per_min)

    def not_dialed(self, plan: BatchPlan, message: str) -> BatchResult:
        """The plan, with its ready destinations marked not dialed."""
        shown = [d.model_copy(update={"status": "not_dialed"}) if d.status == "ready" else d for d in plan.destinations]
        return BatchResult(
            status="not_dialed", message=message, destinations=shown, est_credits_per_min=plan.est_credits_per_min
        )

    async def _use(self, consent: ConsentRecord, use: ConsentAnswer, answer: Answer) -> BatchResult:
        """Use the consent once: a no is recorded, a yes dials each agreed destination, a replay sees the first."""
        svc = self.service
        if consent.state == "used":
            await svc.ledger.append_audit(
                "replay",
                at=svc.now(),
                agent_id=consent.agent_id,
                detail={"consent": consent.consent_id, "via": use.via, "first_answer": consent.answer},
            )
            return await self._first_outcome(consent)
        # Read before the yes is used: if the agent or the balance cannot be read, the yes stays usable.
        facts = await svc.read_facts(consent.agent_id, svc.now()) if answer == "accept" else None
        with same_policy():
            decision = await svc.ledger.answer_consent(use, "token" if use.via == "token" else answer, now=svc.now())
        if decision.status == "consent_used" and decision.consent is not None:
            return await self._first_outcome(decision.consent)
        if decision.status == "consent_mismatched" and decision.consent is not None:
            raise DispatchError(text.other_arguments(decision.consent))
        if decision.status == "consent_expired":
            raise DispatchError(text.TOKEN_EXPIRED if use.via == "token" else text.QUESTION_EXPIRED)
        if decision.status != "claimed" or decision.consent is None:
            raise DispatchError(TOKEN_UNKNOWN if use.via == "token" else text.CONSENT_GONE)
        used = decision.consent
        results = self._as_shown(used)
        if facts is None:
            return self._report(
                [self._not_dialed(d) for d in results], self._total(used), message=text.NOT_A_YES[answer]
            )
        for agreed in used.agreed:
            target = BoundArgs(agent_id=used.agent_id, to_number=agreed.to_number, phone_number_id=used.phone_number_id)
            request = DialRequest(
                target=target,
                estimate_per_minute=agreed.estimate_per_minute,
                mode=used.mode,
                consent_id=used.consent_id,
                position=agreed.position,
            )
            results[agreed.position] = await self._dial(request, facts, results[agreed.position])
        return self._report(results, self._total(used))

    async def _dial(self, request: DialRequest, facts: Facts, shown: Destination) -> Destination:
        """One destination decided, and posted if claimed; every outcome reported, none raised."""
        svc = self.service
        try:
            decision = await svc.decide(request, facts)
            if decision.status == "refused":
                assert decision.preflight is not None
                return shown.model_copy(update={"status": "refused", "reason": _reason(decision.preflight.refusals)})
            if not decision.claimed:
                assert decision.intent is not None
                return self._from_intent(shown, decision.intent)
            assert decision.intent is not None
            done = await svc.post(decision.intent, facts)
        except DispatchError as failed:
            return shown.model_copy(update={"status": "failed", "reason": str(failed)})
        return _outcome(shown, done)

    async def _first_outcome(self, consent: ConsentRecord) -> BatchResult:
        """What the first answer to this consent did, reported again; nothing is dialed."""
        results = self._as_shown(consent)
        if consent.answer not in ("accept", "token"):
            message = f"This question was already answered ({consent.answer}); nothing was dialed."
            return self._report([self._not_dialed(d) for d in results], self._total(consent), message=message)
        decided = await self.service.ledger.wait_for_consent(
            consent.consent_id, positions=len(consent.agreed), timeout=WAIT_FOR_OTHER_SECONDS
        )
        by_position = {intent.position: intent for intent in decided}
        for agreed in consent.agreed:
            intent = by_position.get(agreed.position)
            shown = results[agreed.position]
            results[agreed.position] = (
                self._from_intent(shown, intent) if intent is not None
                else shown.model_copy(update={"status": "not_dialed",
                                              "reason": "the first confirmation stopped before deciding it"})
            )  # fmt: skip
        report = self._report(results, self._total(consent))
        return report.model_copy(
            update={"message": "This confirmation was already used; nothing was dialed again. " + report.message}
        )

    def _from_intent(self, shown: Destination, intent: IntentRecord) -> Destination:
        """A destination as its recorded decision left it."""
        if intent.state == "dialed":
            return shown.model_copy(update={"status": "dialed", "call_id": intent.call_id, "reason": None})
        if intent.state == "unknown":
            return shown.model_copy(
                update={"status": "outcome_unknown", "reason": text.outcome_unknown(intent.args.to_number)}
            )
        if intent.state == "refused":
            return shown.model_copy(update={"status": "refused", "reason": ", ".join(intent.refused_rules)})
        if intent.state == "failed":
            return shown.model_copy(update={"status": "failed", "reason": intent.failure_message})
        return shown.model_copy(update={"status": "not_dialed", "reason": "still being dialed by another confirmation"})

    def _as_shown(self, consent: ConsentRecord) -> list[Destination]:
        """Every destination as the person was shown it: ready, or refused with its reason."""
        return [
            Destination(
                to=d.to_number,
                status="ready" if d.dial else "refused",
                est_credits_per_min=d.estimate_per_minute if d.dial else None,
                reason=d.reason,
            )
            for d in consent.destinations
        ]

    @staticmethod
    def _not_dialed(shown: Destination) -> Destination:
        return shown.model_copy(update={"status": "not_dialed"}) if shown.status == "ready" else shown

    @staticmethod
    def _total(consent: ConsentRecord) -> float | None:
        rates = [d.estimate_per_minute for d in consent.agreed if d.estimate_per_minute is not None]
        return round(sum(rates), 2) if rates else None

    async def _open(self, plan: BatchPlan, *, token: str | None, era: str | None) -> ConsentRecord:
        svc = self.service
        shown = [
            ConsentDestination(
                position=position,
                to_number=d.to,
                dial=d.status == "ready",
                reason=d.reason,
                estimate_per_minute=d.est_credits_per_min,
            )
            for position, d in enumerate(plan.destinations)
        ]
        audit: dict[str, JsonValue] = {} if era is None else {"era": era}
        consent_id = new_consent_id()
        consent = NewConsent(
            consent_id=consent_id, kind="batch", mode="token" if token else "elicit", agent_id=plan.args.agent_id,
            phone_number_id=plan.args.phone_number_id, binding=self._binding(plan.args), destinations=tuple(shown),
            question=text.with_reference(plan.question, consent_id), audit=audit,
        )  # fmt: skip
        now = svc.now()
        with same_policy():
            return await svc.ledger.open_consent(consent, now=now, expires_at=now + CONSENT_TTL, token=token)

    def _binding(self, args: BatchArgs) -> str:
        """The batch's exact arguments: the agent, the caller id, each destination (E.164 where it is one) in order."""
        region = self.service.policy.default_region
        numbers = [e164_or_none(raw, region) or f"raw:{raw}" for raw in args.to_numbers]
        return binding_of(
            "batch", {"agent_id": args.agent_id, "phone_number_id": args.phone_number_id, "to_numbers": numbers}
        )

    def _shown(self, raw: str) -> str:
        """A destination as the person reads it: E.164 where it is a number, else the input on one visible line."""
        return e164_or_none(raw, self.service.policy.default_region) or one_line(raw)

    def _check_size(self, args: BatchArgs) -> None:
        limit = self.service.policy.max_batch
        if len(args.to_numbers) > limit:
            raise DispatchError(
                f"to_numbers has {len(args.to_numbers)} destinations; this server takes at most {limit} per "
                "batch (OUTBOUNDCALLS_MAX_BATCH). Nothing was dialed; split the list."
            )

    def _question(self, shown: list[Destination], ready: list[ReadyDestination], total: float | None) -> str:
        """Every fact the person needs for the whole batch, in one message, from normalised values only."""
        if not ready:
            return ""
        first = ready[0].view
        agent = f'"{first.agent_name}"' if first.agent_name else first.agent_id
        lines = [f"Place {len(ready)} phone call(s) through agent {agent}?"]
        for item in ready:
            view = item.view
            rate = (
                f"about {view.est_credits_per_min:g} credits/min"
                if view.est_credits_per_min is not None
                else "rate unknown"
            )
            lines.append(
                f"- {view.to} ({view.country or '?'}, {view.number_type or '?'}; local time "
                f"{view.local_time or 'unknown'}): {rate}"
            )
        if total is not None:
            lines.append(
                f"Total: about {total:g} credits per minute of calling (an estimate, not a quote; charged on "
                f"completion), about {total * ESTIMATE_MINUTES_PER_CALL:g} credits if each call lasts "
                f"{ESTIMATE_MINUTES_PER_CALL} minutes. Balance: {first.balance:g} credits."
            )
        refused = [d for d in shown if d.status == "refused"]
        if refused:
            lines.append(
                "Not called (refused): "
                + "; ".join(f"{d.to} ({one_line(d.reason or '', limit=200)})" for d in refused)
                + "."
            )
        question = "\n".join(lines)
        return (SANDBOX_PREFIX + question) if self.service.sandbox else question

    def _report(self, results: list[Destination], total: float | None, *, message: str | None = None) -> BatchResult:
        dialed = [d for d in results if d.status == "dialed"]
        where = " in the SANDBOX (simulated)" if self.service.sandbox else ""
        others = len(results) - len(dialed)
        summary = f"Dialed {len(dialed)} of {len(results)} destination(s){where}"
        summary += f"; {others} not dialed (see each reason)." if others else "."
        if dialed:
            summary += " Use wait_for_calls with their call ids."
        return BatchResult(
            status="dialed" if dialed else "not_dialed",
            message=summary if message is None else f"{message} {summary}",
            destinations=results,
            est_credits_per_min=total,
        )


def _outcome(shown: Destination, done: DispatchResult) -> Destination:
    """One destination's result from what the single-dispatch service did."""
    if done.status == "dialed":
        return shown.model_copy(
            update={"status": "dialed", "call_id": done.call.id if done.call else None, "reason": None}
        )
    status = "outcome_unknown" if done.status == "outcome_unknown" else "not_dialed"
    return shown.model_copy(update={"status": status, "reason": done.message})
