"""The one path every dispatch takes: pre-flight, consent bookkeeping, and an exactly-once dial."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import anyio
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import JsonValue

from outboundcalls.calls import CallSummary, NewCall
from outboundcalls.numbers import e164_or_none
from outboundcalls.errors import (
    APIStatusError,
    ConnectionFailedError,
    InsufficientCreditsError,
    NotFoundError,
    OutboundCallsError,
    UpstreamError,
)
from server import dispatch_text as text
from server.dispatch_text import RecentQuestions, describe_refusals, preview_view, question_text
from server.ledger import (
    AuditKind,
    DialedOutcome,
    FailedOutcome,
    IntentRecord,
    LedgerStore,
    PolicyMismatchError,
    RefusedOutcome,
    UnknownOutcome,
)
from server.ledger import DispatchArgs as BoundArgs
from server.policy import DEPLOYED_STATUS, DispatchPolicy
from server.preflight import AgentFacts, PreflightResult
from server.reconcile import Reconciler
from tools.calls import call_item
from tools.dispatch_models import DispatchArgs, DispatchResult, PreflightRefused, Prepared, Preview
from tools.errors import describe_upstream_error

if TYPE_CHECKING:
    from outboundcalls.client import OutboundCallsClient

__all__ = ["FACTS_TTL", "QUESTION_TTL", "TOKEN_TTL", "DispatchService"]

log = logging.getLogger("outboundcalls.dispatch")

TOKEN_TTL = timedelta(minutes=5)
# Upstream facts (agent, balance) are reused this long, so a preview and its confirmation cost
# no second round of reads.
FACTS_TTL = timedelta(seconds=60)
# A question is worded the same for this long (a modern-era answer counts only for the exact
# question asked, and a person may take minutes); the rules are evaluated afresh every time.
QUESTION_TTL = TOKEN_TTL
WAIT_FOR_OTHER_CLAIM_SECONDS = 30.0


@dataclass(frozen=True)
class _Facts:
    """Upstream facts for one pre-flight, and when they were read."""

    agent: AgentFacts
    balance: float
    read_at: datetime


@dataclass(frozen=True)
class _Handle:
    """The service's own record of a prepared dispatch."""

    bound: BoundArgs
    preflight: PreflightResult
    facts: _Facts


class DispatchService:
    """Implements tools.deps.Dispatcher over the policy, the ledger and the API client."""

    def __init__(
        self,
        *,
        api: OutboundCallsClient,
        policy: DispatchPolicy,
        ledger: LedgerStore,
        default_region: str,
        sandbox: bool,
        now: Callable[[], datetime],
    ) -> None:
        self.api = api
        self.policy = policy
        self.ledger = ledger
        self.default_region = default_region
        self.sandbox = sandbox
        self.now = now
        self.reconciler = Reconciler(api=api, ledger=ledger, now=now)
        self._facts: dict[str, _Facts] = {}
        self._questions = RecentQuestions(ttl=QUESTION_TTL)

    async def prepare(self, args: DispatchArgs) -> Prepared:
        """Run pre-flight (always: a cap or cooldown may have just been reached); a refusal is audited."""
        now = self.now()
        if e164_or_none(args.to_number, self.default_region) is None:
            # An undialable number (letters, look-alike digits, 911) is refused on its own: nothing is read for it.
            facts = _Facts(agent=AgentFacts(agent_id=args.agent_id, exists=True, status=DEPLOYED_STATUS),
                           balance=math.inf, read_at=now)
        else:
            facts = await self._read_facts(args.agent_id, now)
        preflight = await self._evaluate(args.to_number, facts, now)
        number = preflight.number
        if not preflight.allowed or number is None:
            await self._audit_refusal(args, preflight, stage="preview")
            raise PreflightRefused(describe_refusals(preflight), preflight.refusals)
        bound = BoundArgs(agent_id=args.agent_id, to_number=number.e164,
                          phone_number_id=args.phone_number_id, contact_id=args.contact_id)
        handle = _Handle(bound=bound, preflight=preflight, facts=facts)
        shown = self._questions.get(args, now)
        if shown is not None:
            # The same words as before: a modern-era answer counts only for the question as it was shown.
            return shown.model_copy(update={"handle": handle})
        view = preview_view(bound, preflight, facts.agent, facts.balance, sandbox=self.sandbox)
        prepared = Prepared(args=args, view=view, question=question_text(view, preflight, sandbox=self.sandbox),
                            handle=handle)
        self._questions.put(args, prepared, now)
        return prepared

    async def offer_token(self, prepared: Prepared, *, batch_id: str | None = None, token: str | None = None) -> Preview:
        """Record a pending intent (audited as the preview); its token, bound to these exact arguments, confirms it once."""
        handle = _handle(prepared)
        now = self.now()
        with _same_policy():
            intent = await self.ledger.create_intent(
                handle.bound, estimate_per_minute=handle.preflight.estimated_credits_per_minute,
                now=now, expires_at=now + TOKEN_TTL, mode="token", batch_id=batch_id, token=token,
            )
        return prepared.view.model_copy(update={"confirmation_token": intent.token, "expires_at": intent.expires_at})

    async def record_question(self, prepared: Prepared, *, era: str) -> None:
        """Audit the confirmation question as it is put to the person."""
        await self._audit(prepared, "question", {"question": prepared.question, "era": era})

    async def record_answer(self, prepared: Prepared, answer: str) -> None:
        """Audit the person's answer to the confirmation question."""
        await self._audit(prepared, "answer", {"answer": answer})

    async def refuse(self, prepared: Prepared, reason: str) -> None:
        """Audit a refusal that is no pre-flight rule (the owner requires a question this client cannot show)."""
        await self._audit(prepared, "refusal", {"reason": reason, "setting": "OUTBOUNDCALLS_CONFIRM"})

    async def dial(self, prepared: Prepared, *, via: str, batch_id: str | None = None) -> DispatchResult:
        """Dial a dispatch the person just confirmed (or that runs unattended): one intent, one claim, one POST."""
        handle = _handle(prepared)
        now = self.now()
        with _same_policy():
            intent = await self.ledger.create_intent(
                handle.bound, estimate_per_minute=handle.preflight.estimated_credits_per_minute,
                now=now, expires_at=now + TOKEN_TTL, mode="none" if via == "unattended" else "elicit", batch_id=batch_id,
            )
        # Pre-flight again right before the claim: the question may have taken minutes.
        preflight = await self._evaluate(prepared.args.to_number, handle.facts, self.now())
        if not preflight.allowed:
            await self.ledger.record_outcome(intent.token, RefusedOutcome(rules=list(preflight.rules)), now=self.now())
            raise PreflightRefused(describe_refusals(preflight, stage="answer" if via != "unattended" else "preview"),
                                   preflight.refusals)
        with _same_policy():
            claim = await self.ledger.claim(intent.token, handle.bound, now=self.now())
        if not claim.claimed:  # pragma: no cover - a fresh intent is only ever claimed here
            raise ToolError(f"Could not claim the new dispatch ({claim.status}); nothing was dialed.")
        return await self._post(intent.token, replace(handle, preflight=preflight))

    async def dial_with_token(self, args: DispatchArgs, token: str) -> DispatchResult:
        """Confirm by token: dial once, or return what the token already did."""
        record = await self.ledger.get_intent(token)
        e164 = e164_or_none(args.to_number, self.default_region)
        if record is None:
            await self.ledger.append_audit("refusal", at=self.now(), agent_id=args.agent_id, to_number=e164,
                                           detail={"claim": "unknown_token"})
            raise ToolError(text.TOKEN_UNKNOWN)
        if record.state != "pending":
            return await self._settled(token, record)
        bound = None if e164 is None else BoundArgs(agent_id=args.agent_id, to_number=e164,
                                                    phone_number_id=args.phone_number_id, contact_id=args.contact_id)
        if bound is None or bound.args_hash() != record.args.args_hash():
            await self.ledger.append_audit("refusal", at=self.now(), intent_id=record.intent_id, agent_id=args.agent_id,
                                           to_number=e164, detail={"claim": "mismatched"})
            raise ToolError(text.other_arguments(record.args))
        if self.now() >= record.expires_at:
            await self.ledger.append_audit("refusal", at=self.now(), intent_id=record.intent_id, agent_id=args.agent_id,
                                           to_number=e164, detail={"claim": "expired"})
            raise ToolError(text.TOKEN_EXPIRED)
        facts = await self._read_facts(args.agent_id, self.now())
        preflight = await self._evaluate(args.to_number, facts, self.now())
        if not preflight.allowed:
            current = await self.ledger.get_intent(token)
            if current is not None and current.state != "pending":
                # Refused only because a concurrent confirmation of this very token just dialed.
                return await self._settled(token, current)
            await self.ledger.record_outcome(token, RefusedOutcome(rules=list(preflight.rules)), now=self.now())
            raise PreflightRefused(describe_refusals(preflight, stage="token"), preflight.refusals)
        with _same_policy():
            claim = await self.ledger.claim(token, bound, now=self.now())
        if claim.status == "claimed":
            return await self._post(token, _Handle(bound=bound, preflight=preflight, facts=facts))
        if claim.status == "expired":
            raise ToolError(text.TOKEN_EXPIRED)
        assert claim.intent is not None
        return await self._settled(token, claim.intent)

    async def record_charge(self, call: CallSummary) -> bool:
        """Audit the charge of an ended call this server dialed, once; whether it was recorded now."""
        if not call.is_terminal or call.credits_charged is None:
            return False
        return await self.ledger.record_charge(call.id, call.credits_charged, now=self.now())

    async def recover(self) -> list[IntentRecord]:
        """At start-up: mark abandoned claims unknown and reconcile every recent unknown outcome."""
        return await self.reconciler.recover()

    async def _settled(self, token: str, record: IntentRecord) -> DispatchResult:
        """What another confirmation of this token did, waiting (bounded) if it is still dialing."""
        if record.state == "dialing":
            record = await self.ledger.wait_for_outcome(token, timeout=WAIT_FOR_OTHER_CLAIM_SECONDS) or record
        return await self._recorded(record)

    async def _evaluate(self, raw: str, facts: _Facts, now: datetime) -> PreflightResult:
        e164 = e164_or_none(raw, self.default_region)
        usage = await self.ledger.usage(e164, now=now)
        if e164 is not None and usage.unknown_outcome_at is not None:
            # The number is held by an unknown outcome: look for that call first, so a found call frees it.
            if any(r.state != "unknown" for r in await self.reconciler.reconcile_unknown(to_number=e164)):
                usage = await self.ledger.usage(e164, now=now)
        return self.policy.evaluate(
            raw=raw, default_region=self.default_region, now=now, agent=facts.agent, balance=facts.balance, usage=usage
        )

    async def _current_balance(self, *, fallback: float) -> float:
        """The balance now (a 402 means it changed since the preview); the cached one if it cannot be read."""
        try:
            balance = (await self.api.get_account()).credits
        except OutboundCallsError:
            return fallback
        for agent_id, facts in self._facts.items():
            self._facts[agent_id] = replace(facts, balance=balance)
        return balance

    async def _read_facts(self, agent_id: str, now: datetime) -> _Facts:
        cached = self._facts.get(agent_id)
        if cached is not None and now - cached.read_at < FACTS_TTL:
            return cached
        agent: AgentFacts | None = None
        balance = 0.0

        async def read_agent() -> None:
            nonlocal agent
            try:
                a = await self.api.get_agent(agent_id)
            except NotFoundError:
                agent = AgentFacts(agent_id=agent_id, exists=False)
                return
            agent = AgentFacts(agent_id=agent_id, exists=True, status=a.status, name=a.name)

        async def read_balance() -> None:
            nonlocal balance
            balance = (await self.api.get_account()).credits

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(read_agent)
                tg.start_soon(read_balance)
        except* OutboundCallsError as group:
            raise ToolError(describe_upstream_error(group.exceptions[0])) from None
        assert agent is not None
        facts = _Facts(agent=agent, balance=balance, read_at=now)
        self._facts[agent_id] = facts
        return facts

    async def _post(self, token: str, handle: _Handle) -> DispatchResult:
        """The one POST of a claimed intent, and its outcome recorded whatever happens."""
        bound = handle.bound
        body = NewCall(agent_id=bound.agent_id, to_number=bound.to_number,
                       phone_number_id=bound.phone_number_id, contact_id=bound.contact_id)
        started = self.now()
        # Shielded: once claimed, a cancelled tool call must not leave the outcome unrecorded.
        with anyio.CancelScope(shield=True):
            try:
                call = await self.api.create_call(body)
            except UpstreamError as exc:
                # A 502 is "failed" per the vendor's page, but the call may exist anyway: look once.
                found = await self.reconciler.find_call(bound, started)
                if found is not None:
                    await self.ledger.record_outcome(token, DialedOutcome(call_id=found.id), now=self.now())
                    return self._dialed(found, handle, note=" (the API answered 502, but the call was created)")
                await self._fail(token, exc.status, exc.message)
                raise ToolError(describe_upstream_error(exc) + text.NOT_PLACED) from exc
            except InsufficientCreditsError as exc:
                await self._fail(token, 402, exc.message)
                balance = await self._current_balance(fallback=handle.facts.balance)
                raise ToolError(
                    f"Insufficient credits (402): the balance is {balance:g} credits and the vendor "
                    "requires at least 25 to dispatch. Nothing was dialed; top up in the OutboundCalls dashboard."
                ) from exc
            except (APIStatusError, ConnectionFailedError) as exc:
                # A definite answer, or a request that never left: no call exists.
                await self._fail(token, exc.status if isinstance(exc, APIStatusError) else None, str(exc)[:300])
                raise ToolError(describe_upstream_error(exc, text.DIAL_SUBJECT) + text.NOT_PLACED) from exc
            except OutboundCallsError as exc:
                # The request left and no usable answer came back (timeout, drop, a 2xx body we cannot read).
                return await self._settle_unknown(token, handle, reason=f"{type(exc).__name__}: {exc}")
            await self.ledger.record_outcome(token, DialedOutcome(call_id=call.id), now=self.now())
        return self._dialed(call, handle)

    async def _fail(self, token: str, status: int | None, message: str) -> None:
        await self.ledger.record_outcome(token, FailedOutcome(status=status, message=message), now=self.now())

    async def _settle_unknown(self, token: str, handle: _Handle, *, reason: str) -> DispatchResult:
        """Reconcile, never retry: find the call if the vendor created it, otherwise hold the number."""
        record = await self.ledger.record_outcome(token, UnknownOutcome(reason=reason[:300]), now=self.now())
        settled = await self.reconciler.settle(record)
        if settled.state == "dialed" and settled.call_id:
            found = await self._get_call(settled.call_id)
            if found is not None:
                return self._dialed(found, handle, note=" (the API's answer was lost, but the call was found)")
        return DispatchResult(
            status="outcome_unknown",
            message=text.outcome_unknown(handle.bound.to_number),
            preview=preview_view(handle.bound, handle.preflight, handle.facts.agent, handle.facts.balance,
                                 sandbox=self.sandbox),
        )

    async def _get_call(self, call_id: str) -> CallSummary | None:
        try:
            return await self.api.get_call(call_id)
        except OutboundCallsError:
            return None

    async def _recorded(self, record: IntentRecord) -> DispatchResult:
        """What a token already did, returned again, never dialed again."""
        if record.state == "dialed" and record.call_id:
            call = await self._get_call(record.call_id)
            return DispatchResult(
                status="dialed", call=call_item(call) if call else None,
                message=f"This token already placed call {record.call_id}; it was not dialed again.",
            )
        if record.state == "unknown":
            return DispatchResult(status="outcome_unknown",
                                  message="This token's call has an unknown outcome; it is never dialed again. Check list_calls.")
        if record.state == "failed":
            raise ToolError(f"This token's dispatch already failed ({record.failure_message}); it is not retried. "
                            "Preview again for a new token.")
        raise ToolError("This token's dispatch is still in progress elsewhere; it was not dialed again. Try again shortly.")

    def _dialed(self, call: CallSummary, handle: _Handle, note: str = "") -> DispatchResult:
        where = " in the SANDBOX (simulated)" if self.sandbox else ""
        return DispatchResult(
            status="dialed",
            call=call_item(call),
            message=f"Dialed {handle.bound.to_number}{where}{note}. Use wait_for_call with call_id {call.id}.",
        )

    async def _audit(self, prepared: Prepared, kind: AuditKind, detail: dict[str, JsonValue]) -> None:
        handle = _handle(prepared)
        await self.ledger.append_audit(
            kind, at=self.now(), agent_id=handle.bound.agent_id, to_number=handle.bound.to_number,
            estimate=handle.preflight.estimated_credits_per_minute, detail=detail,
        )

    async def _audit_refusal(self, args: DispatchArgs, preflight: PreflightResult, *, stage: str) -> None:
        number = preflight.number
        await self.ledger.append_audit(
            "refusal", at=self.now(), agent_id=args.agent_id, to_number=number.e164 if number else None,
            estimate=preflight.estimated_credits_per_minute,
            detail={"rules": list(preflight.rules), "raw": args.to_number[:64], "stage": stage},
        )


@contextmanager
def _same_policy() -> Iterator[None]:
    """A ledger shared with a process under another policy refuses to dial, as a tool error naming why."""
    try:
        yield
    except PolicyMismatchError as exc:
        raise ToolError(f"Not dialed: {exc}") from None


def _handle(prepared: Prepared) -> _Handle:
    handle = prepared.handle
    if not isinstance(handle, _Handle):  # pragma: no cover - Prepared only comes from this service
        raise TypeError("not a prepared dispatch of this service")
    return handle
