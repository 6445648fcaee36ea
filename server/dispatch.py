"""The one path every dispatch takes: pre-flight, consent bookkeeping, and an exactly-once dial."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import anyio
from mcp.server.mcpserver.exceptions import ToolError

from outboundcalls.calls import CallSummary, NewCall
from outboundcalls.errors import (
    APIStatusError,
    ConnectionFailedError,
    InsufficientCreditsError,
    NotFoundError,
    OutboundCallsError,
    OutcomeUnknownError,
    ResponseValidationError,
    UpstreamError,
)
from server.dispatch_text import describe_refusals, preview_view, question_text
from server.ledger import (
    ConfirmMode,
    DialedOutcome,
    FailedOutcome,
    IntentRecord,
    LedgerStore,
    RefusedOutcome,
    UnknownOutcome,
)
from server.ledger import DispatchArgs as BoundArgs
from server.policy import DispatchPolicy
from server.preflight import AgentFacts, PreflightResult
from tools.calls import call_item
from tools.dispatch_models import DispatchArgs, DispatchResult, Prepared, Preview
from tools.errors import describe_upstream_error

if TYPE_CHECKING:
    from outboundcalls.client import OutboundCallsClient
    from server.settings import Settings

__all__ = ["DispatchService", "TOKEN_TTL", "open_dispatcher"]

log = logging.getLogger("outboundcalls.dispatch")

TOKEN_TTL = timedelta(minutes=5)
# Upstream facts (agent, balance) are reused this long, so a preview and its confirmation cost
# no second round of reads, and a modern-era question is rendered identically on every round.
FACTS_TTL = timedelta(seconds=60)
# How far before the intent a vendor's createdAt may lie and still be this dispatch (clock skew).
RECONCILE_SKEW = timedelta(minutes=2)
WAIT_FOR_OTHER_CLAIM_SECONDS = 30.0
NOT_PLACED = " The call was not placed. Once that is resolved, call dispatch_call again: it needs a new confirmation."
# A 404 to POST /calls names none of the ids it was given, so all of them are suspects.
DIAL_SUBJECT = "The agent, the caller id (phone_number_id) or the contact"


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
        self._facts: dict[str, _Facts] = {}
        self._prepared: dict[DispatchArgs, Prepared] = {}

    async def prepare(self, args: DispatchArgs) -> Prepared:
        """Run pre-flight; a refusal is a tool error naming every rule, and is audited."""
        now = self.now()
        cached = self._prepared.get(args)
        if cached is not None and isinstance(cached.handle, _Handle) and now - cached.handle.facts.read_at < FACTS_TTL:
            return cached
        facts = await self._read_facts(args.agent_id, now)
        preflight = await self._evaluate(args.to_number, facts, now)
        number = preflight.number
        if not preflight.allowed or number is None:
            await self.ledger.append_audit(
                "refusal", at=now, agent_id=args.agent_id, to_number=number.e164 if number else None,
                estimate=preflight.estimated_credits_per_minute,
                detail={"rules": list(preflight.rules), "raw": args.to_number[:64], "stage": "preview"},
            )
            raise ToolError(describe_refusals(preflight))
        bound = BoundArgs(agent_id=args.agent_id, to_number=number.e164,
                          phone_number_id=args.phone_number_id, contact_id=args.contact_id)
        view = preview_view(bound, preflight, facts.agent, facts.balance, sandbox=self.sandbox)
        prepared = Prepared(args=args, view=view, question=question_text(view, preflight, sandbox=self.sandbox),
                            handle=_Handle(bound=bound, preflight=preflight, facts=facts))
        await self.ledger.append_audit(
            "preview", at=now, agent_id=bound.agent_id, to_number=bound.to_number,
            estimate=preflight.estimated_credits_per_minute, detail={"balance": facts.balance},
        )
        self._prepared = {k: v for k, v in self._prepared.items() if now - _handle(v).facts.read_at < FACTS_TTL}
        self._prepared[args] = prepared
        return prepared

    async def offer_token(self, prepared: Prepared) -> Preview:
        """Record a pending intent; its token, bound to these exact arguments, confirms it once."""
        handle = _handle(prepared)
        now = self.now()
        intent = await self.ledger.create_intent(
            handle.bound, estimate_per_minute=handle.preflight.estimated_credits_per_minute,
            now=now, expires_at=now + TOKEN_TTL, mode="token",
        )
        return prepared.view.model_copy(update={"confirmation_token": intent.token, "expires_at": intent.expires_at})

    async def record_answer(self, prepared: Prepared, answer: str) -> None:
        """Audit the person's answer to the confirmation question."""
        handle = _handle(prepared)
        await self.ledger.append_audit(
            "answer", at=self.now(), agent_id=handle.bound.agent_id, to_number=handle.bound.to_number,
            detail={"answer": answer},
        )

    async def dial(self, prepared: Prepared, *, via: str) -> DispatchResult:
        """Dial a dispatch the person just confirmed (or that runs unattended): one intent, one claim, one POST."""
        handle = _handle(prepared)
        now = self.now()
        mode: ConfirmMode = "none" if via == "unattended" else "elicit"
        await self.ledger.append_audit(
            "question" if via != "unattended" else "preview", at=now, agent_id=handle.bound.agent_id,
            to_number=handle.bound.to_number, detail={"via": via},
        )
        intent = await self.ledger.create_intent(
            handle.bound, estimate_per_minute=handle.preflight.estimated_credits_per_minute,
            now=now, expires_at=now + TOKEN_TTL, mode=mode,
        )
        # Caps and cooldown are read again right before the claim: the question may have taken minutes.
        await self._recheck(intent.token, handle, prepared.args)
        claim = await self.ledger.claim(intent.token, handle.bound, now=self.now())
        if not claim.claimed:  # pragma: no cover - a fresh intent is only ever claimed here
            raise ToolError(f"Could not claim the new dispatch ({claim.status}); nothing was dialed.")
        return await self._post(intent.token, handle)

    async def dial_with_token(self, args: DispatchArgs, token: str) -> DispatchResult:
        """Confirm by token: dial once, or return what the token already did."""
        record = await self.ledger.get_intent(token)
        if record is None:
            raise ToolError(
                "confirmation_token is not one this server issued (or it was altered). Nothing was dialed. "
                "Call dispatch_call without a token to get a new preview."
            )
        if record.state != "pending":
            return await self._recorded(token, record)
        prepared = await self.prepare(args)
        handle = _handle(prepared)
        if handle.bound.args_hash() != record.args.args_hash():
            raise ToolError(
                "This confirmation_token was issued for other arguments "
                f"(agent {record.args.agent_id}, to {record.args.to_number}); it confirms nothing here and stays "
                "valid for its own arguments. Nothing was dialed."
            )
        if self.now() >= record.expires_at:
            raise ToolError("This confirmation_token has expired (tokens last 5 minutes). Nothing was dialed. "
                            "Call dispatch_call without a token to preview again.")
        await self._recheck(token, handle, args)
        claim = await self.ledger.claim(token, handle.bound, now=self.now())
        if claim.status == "claimed":
            return await self._post(token, handle)
        if claim.status == "expired":
            raise ToolError("This confirmation_token has expired. Nothing was dialed; preview again.")
        if claim.status == "in_progress":
            settled = await self.ledger.wait_for_outcome(token, timeout=WAIT_FOR_OTHER_CLAIM_SECONDS)
            return await self._recorded(token, settled or record)
        assert claim.intent is not None
        return await self._recorded(token, claim.intent)

    async def _recheck(self, token: str, handle: _Handle, args: DispatchArgs) -> None:
        """Pre-flight again at confirmation (hours, caps, cooldown may have changed); refusal keeps the token."""
        preflight = await self._evaluate(args.to_number, handle.facts, self.now())
        if not preflight.allowed:
            await self.ledger.record_outcome(token, RefusedOutcome(rules=list(preflight.rules)), now=self.now())
            raise ToolError(describe_refusals(preflight, at_confirmation=True))

    async def _evaluate(self, raw: str, facts: _Facts, now: datetime) -> PreflightResult:
        e164 = _e164_or_none(raw, self.default_region)
        usage = await self.ledger.usage(e164, now=now)
        return self.policy.evaluate(
            raw=raw, default_region=self.default_region, now=now, agent=facts.agent, balance=facts.balance, usage=usage
        )

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
        bound = handle.bound
        body = NewCall(agent_id=bound.agent_id, to_number=bound.to_number,
                       phone_number_id=bound.phone_number_id, contact_id=bound.contact_id)
        started = self.now()
        await self.ledger.append_audit("dial", at=started, agent_id=bound.agent_id, to_number=bound.to_number,
                                       estimate=handle.preflight.estimated_credits_per_minute)
        try:
            call = await self.api.create_call(body)
        except OutcomeUnknownError as exc:
            return await self._settle_unknown(token, handle, started, reason=str(exc))
        except ResponseValidationError as exc:
            # A 2xx whose body is unreadable: the vendor took the call, so find it and never resend.
            return await self._settle_unknown(token, handle, started, reason=str(exc))
        except UpstreamError as exc:
            # A 502 is "failed" per the vendor's page, but the call may exist anyway: look once.
            found = await self._find_call(bound, started)
            if found is not None:
                await self.ledger.record_outcome(token, DialedOutcome(call_id=found.id), now=self.now())
                return self._dialed(found, handle, note=" (the API answered 502, but the call was created)")
            await self.ledger.record_outcome(token, FailedOutcome(status=exc.status, message=exc.message), now=self.now())
            raise ToolError(describe_upstream_error(exc) + NOT_PLACED) from exc
        except InsufficientCreditsError as exc:
            await self.ledger.record_outcome(token, FailedOutcome(status=402, message=exc.message), now=self.now())
            raise ToolError(
                f"Insufficient credits (402): the balance is {handle.facts.balance:g} credits and the vendor requires at "
                "least 25 to dispatch. Nothing was dialed; top up in the OutboundCalls dashboard."
            ) from exc
        except (APIStatusError, ConnectionFailedError) as exc:
            status = exc.status if isinstance(exc, APIStatusError) else None
            await self.ledger.record_outcome(token, FailedOutcome(status=status, message=str(exc)[:300]), now=self.now())
            raise ToolError(describe_upstream_error(exc, DIAL_SUBJECT) + NOT_PLACED) from exc
        await self.ledger.record_outcome(token, DialedOutcome(call_id=call.id), now=self.now())
        return self._dialed(call, handle)

    async def _settle_unknown(self, token: str, handle: _Handle, started: datetime, *, reason: str) -> DispatchResult:
        """Reconcile, never retry: find the call if the vendor created it, otherwise hold the number."""
        await self.ledger.record_outcome(token, UnknownOutcome(reason=reason[:300]), now=self.now())
        found = await self._find_call(handle.bound, started)
        await self.ledger.reconcile(token, found.id if found else None, now=self.now())
        if found is not None:
            return self._dialed(found, handle, note=" (the API's answer was lost, but the call was found)")
        return DispatchResult(
            status="outcome_unknown",
            message=(
                f"The request to call {handle.bound.to_number} left, but no usable answer came back, and no matching call "
                "was found yet. The call may or may not have been placed. Nothing was retried; the number is held "
                "until this is reconciled or the redial cooldown ends. Check list_calls in a minute."
            ),
            preview=handle_view(handle, self.sandbox),
        )

    async def _find_call(self, bound: BoundArgs, since: datetime) -> CallSummary | None:
        try:
            calls = await self.api.list_calls(agent_id=bound.agent_id, limit=50)
        except OutboundCallsError:
            return None
        for call in calls:
            created = call.created_at
            if call.to_number == bound.to_number and (created is None or created >= since - RECONCILE_SKEW):
                return call
        return None

    async def _recorded(self, token: str, record: IntentRecord) -> DispatchResult:
        """What a token already did, returned again, never dialed again."""
        if record.state == "dialed" and record.call_id:
            try:
                call: CallSummary = await self.api.get_call(record.call_id)
                item = call_item(call)
            except OutboundCallsError:
                item = None
            return DispatchResult(
                status="dialed", call=item,
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


def handle_view(handle: _Handle, sandbox: bool) -> Preview:
    """The preview of a handled dispatch, for results that report on it."""
    return preview_view(handle.bound, handle.preflight, handle.facts.agent, handle.facts.balance, sandbox=sandbox)


def _handle(prepared: Prepared) -> _Handle:
    handle = prepared.handle
    if not isinstance(handle, _Handle):  # pragma: no cover - Prepared only comes from this service
        raise TypeError("not a prepared dispatch of this service")
    return handle


def _e164_or_none(raw: str, region: str) -> str | None:
    from outboundcalls.numbers import InvalidPhoneNumberError, parse_phone

    try:
        return parse_phone(raw, region).e164
    except InvalidPhoneNumberError:
        return None


def build_policy(settings: Settings) -> DispatchPolicy:
    """The owner's policy from settings; raises PolicyError naming a bad setting."""
    return DispatchPolicy.from_values(
        allowed_countries=settings.allowed_countries,
        allowed_number_types=settings.allowed_number_types,
        max_credits_per_minute=settings.max_credits_per_minute,
        calling_hours=settings.calling_hours,
        do_not_call_file=settings.do_not_call_file,
        default_region=settings.default_region,
        max_calls_per_day=settings.max_calls_per_day,
        max_credits_per_day=settings.max_credits_per_day,
        redial_cooldown_minutes=settings.redial_cooldown_minutes,
    )


async def open_dispatcher(
    settings: Settings,
    stack: AsyncExitStack,
    *,
    api: OutboundCallsClient,
    policy: DispatchPolicy,
    now: Callable[[], datetime],
) -> DispatchService:
    """Open the ledger in the state directory, join it with this policy, and build the service."""
    from server.ledger_sqlite import SqliteLedger
    from server.state_dir import resolve_state_dir

    ledger = SqliteLedger(resolve_state_dir(settings))
    stack.push_async_callback(ledger.aclose)
    await ledger.ensure_policy_fingerprint(policy.fingerprint(), policy.settings_summary(), now=now())
    return DispatchService(api=api, policy=policy, ledger=ledger, default_region=settings.default_region,
                           sandbox=settings.sandbox, now=now)
