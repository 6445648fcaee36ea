"""The one path every dispatch takes: pre-flight, a consent used once, and each dial decided once.

Reading the outside world (the agent, the balance, a lost call) happens first; everything that can
change between that reading and the claim is decided inside one ledger transaction
(`LedgerStore.decide`): the consent's state, the rules at one `now`, the claim. Only a claim sends
the one POST, in a scope cancellation cannot interrupt, and its outcome is recorded whatever
happens.
"""

from __future__ import annotations

import functools
import logging
import math
import secrets
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal, ParamSpec, TypeVar

import anyio
from pydantic import JsonValue

from outboundcalls.calls import CallSummary, NewCall
from outboundcalls.display import one_line
from outboundcalls.errors import (
    APIStatusError,
    ConnectionFailedError,
    InsufficientCreditsError,
    NotFoundError,
    OutboundCallsError,
    UpstreamError,
)
from outboundcalls.numbers import e164_or_none
from outboundcalls.pricing import MINIMUM_BALANCE_CREDITS
from outboundcalls_mcp.server import dispatch_text as text
from outboundcalls_mcp.server.dispatch_text import describe_refusals, preview_view, question_text
from outboundcalls_mcp.server.ledger import (
    BoundArgs,
    ConsentAnswer,
    ConsentDestination,
    ConsentRecord,
    Decision,
    DialedOutcome,
    DialRequest,
    FailedOutcome,
    IntentRecord,
    LedgerStateError,
    LedgerStore,
    LedgerUnavailableError,
    NewConsent,
    Outcome,
    PolicyMismatchError,
    Rules,
    UnknownOutcome,
    UsageFacts,
    new_consent_id,
)
from outboundcalls_mcp.server.policy import DEPLOYED_STATUS, DispatchPolicy
from outboundcalls_mcp.server.preflight import AgentFacts, PreflightResult
from outboundcalls_mcp.server.reconcile import Reconciler
from outboundcalls_mcp.tools.calls import call_item
from outboundcalls_mcp.tools.contracts import (
    Answer,
    ConsentTicket,
    DispatchError,
    DispatchRequest,
    DispatchResult,
    PreflightRefused,
    Prepared,
    Preview,
)
from outboundcalls_mcp.tools.errors import describe_upstream_error

if TYPE_CHECKING:
    from outboundcalls.client import OutboundCallsClient

__all__ = ["CONSENT_TTL", "FACTS_TTL", "DispatchService", "Facts", "ledger_reachable", "same_policy"]

log = logging.getLogger("outboundcalls.dispatch")

# How long a question or a preview's token can be answered: long enough for a person to read it.
CONSENT_TTL: Final = timedelta(minutes=5)
# Upstream facts (agent, balance) are reused this long, so a preview and its confirmation cost
# no second round of reads; every rule that reads the ledger is decided afresh regardless.
FACTS_TTL: Final = timedelta(seconds=60)
# A confirmation that finds its consent being dialed by another waits this long for the outcome.
WAIT_FOR_OTHER_SECONDS: Final = 30.0
_YES_WORD: Final = {"token": "token", "elicit": "answer"}
# After a POST, its outcome is recorded however briefly the database is away: about 15 s of tries.
RECORD_ATTEMPTS: Final = 5
RECORD_PAUSE_SECONDS: Final = 1.0
_P = ParamSpec("_P")
_R = TypeVar("_R")


def ledger_reachable(method: Callable[_P, Coroutine[Any, Any, _R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
    """A dispatch step that needs the ledger answers a tool error, dialing nothing, while its database is away."""

    @functools.wraps(method)
    async def checked(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await method(*args, **kwargs)
        except LedgerUnavailableError as exc:
            raise DispatchError(f"Not dialed: {exc}.") from None

    return checked


@dataclass(frozen=True)
class Facts:
    """Upstream facts for the rules (the agent, the balance), and when they were read."""

    agent: AgentFacts
    balance: float
    read_at: datetime


class DispatchService:
    """Implements tools.deps.Dispatcher over the policy, the ledger and the API client."""

    def __init__(
        self,
        *,
        api: OutboundCallsClient,
        policy: DispatchPolicy,
        ledger: LedgerStore,
        sandbox: bool,
        now: Callable[[], datetime],
    ) -> None:
        self.api = api
        self.policy = policy
        self.ledger = ledger
        self.sandbox = sandbox
        self.now = now
        self.reconciler = Reconciler(api=api, ledger=ledger, now=now)
        self._facts: dict[str, Facts] = {}

    @ledger_reachable
    async def prepare(self, args: DispatchRequest) -> Prepared:
        """Run pre-flight (always: a cap or cooldown may have just been reached); a refusal is audited."""
        now = self.now()
        if e164_or_none(args.to_number, self.policy.default_region) is None:
            # An undialable number (letters, look-alike digits, 911) is refused on its own: nothing is read for it.
            facts = Facts(
                agent=AgentFacts(agent_id=args.agent_id, exists=True, status=DEPLOYED_STATUS),
                balance=math.inf,
                read_at=now,
            )
        else:
            facts = await self.read_facts(args.agent_id, now)
        preflight = await self.evaluate(args.to_number, facts, now)
        number = preflight.number
        if not preflight.allowed or number is None:
            await self._audit_refusal(args, preflight)
            raise PreflightRefused(describe_refusals(preflight), preflight.refusals)
        bound = self.bind(args)
        assert bound is not None
        view = preview_view(bound, preflight, facts.agent, facts.balance, sandbox=self.sandbox)
        return Prepared(args=args, view=view, question=question_text(view, preflight, sandbox=self.sandbox))

    @ledger_reachable
    async def consent_for_answer(self, args: DispatchRequest, answer_key: str) -> ConsentTicket | None:
        """On an answering round: the question it answers (or already answered), if one is on record."""
        bound = self.bind(args)
        if bound is None:
            return None
        record = await self.ledger.consent_for_answer(bound.binding(), answer_key=answer_key, now=self.now())
        return None if record is None else ConsentTicket(consent_id=record.consent_id, question=record.question)

    @ledger_reachable
    async def open_question(self, prepared: Prepared, *, era: str) -> ConsentTicket:
        """Record the question about to be asked (audited once); its words are asked as recorded."""
        record = await self._open(prepared, token=None, audit={"era": era})
        return ConsentTicket(consent_id=record.consent_id, question=record.question)

    @ledger_reachable
    async def refuse(self, prepared: Prepared, reason: str) -> None:
        """Audit a refusal that is no pre-flight rule (the owner requires a question this client cannot show)."""
        view = prepared.view
        await self.ledger.append_audit(
            "refusal", at=self.now(), agent_id=view.agent_id, to_number=view.to, estimate=view.est_credits_per_min,
            detail={"reason": reason, "setting": "OUTBOUNDCALLS_CONFIRM"},
        )  # fmt: skip

    @ledger_reachable
    async def offer_token(self, prepared: Prepared) -> Preview:
        """Record the preview as a consent; its token, bound to these exact arguments, confirms it once."""
        token = secrets.token_urlsafe(24)
        record = await self._open(prepared, token=token, audit={})
        return prepared.view.model_copy(update={"confirmation_token": token, "expires_at": record.expires_at})

    @ledger_reachable
    async def answer(self, ticket: ConsentTicket, answer: Answer, *, answer_key: str | None) -> DispatchResult:
        """Use the consent with the person's answer, once: a yes dials (if the rules still allow it)."""
        consent = await self.consent(ticket.consent_id)
        use = ConsentAnswer(consent_id=consent.consent_id, binding=consent.binding, via="form", answer_key=answer_key)
        if consent.state == "used":
            return await self._first_outcome(consent, replay=use)
        if answer != "accept":
            decision = await self.ledger.answer_consent(use, answer, now=self.now())
            if decision.status == "claimed":
                return DispatchResult(status="not_dialed", message=text.NOT_A_YES[answer])
            return await self._refused_use(decision, via="answer")
        return await self._decide(consent, use, stage="answer")

    @ledger_reachable
    async def confirm_token(self, args: DispatchRequest, token: str) -> DispatchResult:
        """Use a preview's consent by its token: dial once, or return what it already did."""
        consent = await self.ledger.consent_by_token(token)
        if consent is None or consent.kind != "single":
            await self.ledger.append_audit(
                "refusal", at=self.now(), agent_id=args.agent_id, detail={"claim": "unknown_token"}
            )
            raise DispatchError(text.TOKEN_UNKNOWN)
        bound = self.bind(args)
        use = ConsentAnswer(
            consent_id=consent.consent_id,
            binding=bound.binding() if bound else "(not a number)",
            via="token",
            keep_open_if_refused=True,
        )
        if consent.state == "used":
            return await self._first_outcome(consent, replay=use)
        return await self._decide(consent, use, stage="token")

    @ledger_reachable
    async def dial_unattended(self, prepared: Prepared) -> DispatchResult:
        """Dial without asking (OUTBOUNDCALLS_CONFIRM=none), decided like any other dial."""
        target = self.bind(prepared.args)
        assert target is not None
        facts = await self.read_facts(target.agent_id, self.now())
        request = DialRequest(target=target, estimate_per_minute=prepared.view.est_credits_per_min, mode="none")
        decision = await self.decide(request, facts)
        return await self._after(decision, facts, stage="preview")

    async def record_charge(self, call: CallSummary) -> bool:
        """Audit the charge of an ended call this server dialed, once; whether it was recorded now."""
        if not call.is_terminal or call.credits_charged is None:
            return False
        return await self.ledger.record_charge(call.id, call.credits_charged, now=self.now())

    async def recover(self) -> list[IntentRecord]:
        """At start-up: mark abandoned claims unknown and reconcile every recent unknown outcome."""
        return await self.reconciler.recover()

    # The pieces the batch path shares.

    def bind(self, args: DispatchRequest) -> BoundArgs | None:
        """The arguments as a dial is bound to them (the number in E.164), or None if it is no number."""
        e164 = e164_or_none(args.to_number, self.policy.default_region)
        if e164 is None:
            return None
        return BoundArgs(
            agent_id=args.agent_id, to_number=e164, phone_number_id=args.phone_number_id, contact_id=args.contact_id
        )

    async def consent(self, consent_id: str) -> ConsentRecord:
        """A consent this server recorded, or DispatchError if the ledger has none by that id."""
        record = await self.ledger.consent(consent_id)
        if record is None:
            raise DispatchError(text.CONSENT_GONE)
        return record

    async def decide(self, request: DialRequest, facts: Facts) -> Decision:
        """One decision in the ledger; a held number is looked up first, so a found call frees it."""
        await self.release_hold(request.target.to_number)
        with same_policy():
            return await self.ledger.decide(request, self.rules(request.target, facts), clock=self.now)

    def rules(self, target: BoundArgs, facts: Facts) -> Rules:
        """Every pre-flight rule for this destination, for the ledger to evaluate inside its decision."""

        def evaluate(usage: UsageFacts, now: datetime) -> PreflightResult:
            return self.policy.evaluate(
                raw=target.to_number, now=now, agent=facts.agent, balance=facts.balance, usage=usage
            )

        return evaluate

    async def evaluate(self, raw: str, facts: Facts, now: datetime) -> PreflightResult:
        """Pre-flight as a preview shows it (the decision evaluates again, inside the ledger)."""
        e164 = e164_or_none(raw, self.policy.default_region)
        if e164 is not None:
            await self.release_hold(e164)
        usage = await self.ledger.usage(e164, now=now)
        return self.policy.evaluate(raw=raw, now=now, agent=facts.agent, balance=facts.balance, usage=usage)

    async def release_hold(self, e164: str) -> None:
        """Look up the call behind an unknown outcome on this number, so that a found call frees the number."""
        usage = await self.ledger.usage(e164, now=self.now())
        if usage.unknown_outcome_at is not None:
            await self.reconciler.reconcile_unknown(to_number=e164)

    async def read_facts(self, agent_id: str, now: datetime) -> Facts:
        """The agent and the balance (read together, reused for FACTS_TTL); an upstream failure is a DispatchError."""
        cached = self._facts.get(agent_id)
        if cached is not None and now - cached.read_at < FACTS_TTL:
            return cached
        agent = AgentFacts(agent_id=agent_id, exists=False)
        balance = 0.0
        failures: list[OutboundCallsError] = []

        async def read_agent() -> None:
            nonlocal agent
            try:
                found = await self.api.get_agent(agent_id)
            except NotFoundError:
                return
            except OutboundCallsError as exc:
                failures.append(exc)
                return
            agent = AgentFacts(agent_id=agent_id, exists=True, status=found.status, name=found.name)

        async def read_balance() -> None:
            nonlocal balance
            try:
                balance = (await self.api.get_account()).credits
            except OutboundCallsError as exc:
                failures.append(exc)

        # Each read keeps its own failure: nothing is raised inside the task group, so no exception
        # group has to be taken apart (which Python 3.11 before 3.11.4 does differently).
        async with anyio.create_task_group() as group:
            group.start_soon(read_agent)
            group.start_soon(read_balance)
        if failures:
            raise DispatchError(describe_upstream_error(failures[0]))
        facts = Facts(agent=agent, balance=balance, read_at=now)
        self._facts[agent_id] = facts
        return facts

    async def post(self, intent: IntentRecord, facts: Facts) -> DispatchResult:
        """The one POST of a claimed intent, and its outcome recorded whatever happens."""
        bound = intent.args
        body = NewCall(
            agent_id=bound.agent_id,
            to_number=bound.to_number,
            phone_number_id=bound.phone_number_id,
            contact_id=bound.contact_id,
        )
        started = self.now()
        # Shielded: once claimed, a cancelled tool call must not leave the outcome unrecorded.
        with anyio.CancelScope(shield=True):
            try:
                call = await self.api.create_call(body)
            except UpstreamError as exc:
                # A 502 is "failed" per the vendor's page, but the call may exist anyway: look once.
                found = await self.reconciler.find_call(bound, started)
                if found is not None:
                    await self.record_outcome(intent.intent_id, DialedOutcome(call_id=found.id), now=self.now())
                    return self._dialed(found, bound, note=" (the API answered 502, but the call was created)")
                await self._fail(intent, exc.status, exc.message)
                raise DispatchError(describe_upstream_error(exc) + text.NOT_PLACED) from exc
            except InsufficientCreditsError as exc:
                await self._fail(intent, 402, exc.message)
                balance = await self._current_balance(fallback=facts.balance)
                raise DispatchError(
                    f"Insufficient credits (402): the balance is {balance:g} credits and the vendor requires at "
                    f"least {MINIMUM_BALANCE_CREDITS:g} to dispatch. Nothing was dialed; top up in the OutboundCalls "
                    "dashboard."
                ) from exc
            except (APIStatusError, ConnectionFailedError) as exc:
                # A definite answer, or a request that never left: no call exists.
                await self._fail(intent, exc.status if isinstance(exc, APIStatusError) else None, str(exc)[:300])
                raise DispatchError(describe_upstream_error(exc, text.DIAL_SUBJECT) + text.NOT_PLACED) from exc
            except OutboundCallsError as exc:
                # The request left and no usable answer came back (timeout, drop, a 2xx body we cannot read).
                return await self._settle_unknown(intent, reason=f"{type(exc).__name__}: {exc}")
            await self.record_outcome(intent.intent_id, DialedOutcome(call_id=call.id), now=self.now())
        return self._dialed(call, bound)

    async def record_outcome(self, intent_id: str, outcome: Outcome, *, now: datetime) -> IntentRecord:
        """Record a claimed dial's outcome, trying again while the ledger's database is away; the POST happened."""
        for attempt in range(RECORD_ATTEMPTS):
            try:
                return await self.ledger.record_outcome(intent_id, outcome, now=now)
            except LedgerUnavailableError:
                if attempt == RECORD_ATTEMPTS - 1:
                    break
            except LedgerStateError as exc:
                if attempt > 0 and exc.state == outcome.kind:
                    return await self.ledger.intent(intent_id)  # a commit whose answer was lost: it is recorded
                if exc.state == "unknown" and isinstance(outcome, DialedOutcome):
                    # Another process took this process for gone and marked the dial unknown: the call is known now.
                    return await self.ledger.reconcile_intent(intent_id, outcome.call_id, now=now)
                raise
            # Wall-clock pauses on purpose: only a database that is away gets here, never a test's manual clock.
            await anyio.sleep(RECORD_PAUSE_SECONDS * 2**attempt)
        log.error(
            "could not record the outcome of %s (%s); its number stays held until reconciled", intent_id, outcome.kind
        )
        raise DispatchError(text.OUTCOME_NOT_RECORDED.format(kind=outcome.kind))

    async def recorded(self, intent: IntentRecord, *, word: str) -> DispatchResult:
        """What a decided dial did, returned again, never dialed again."""
        if intent.state == "dialed" and intent.call_id:
            call = await self._get_call(intent.call_id)
            return DispatchResult(
                status="dialed",
                call=call_item(call) if call else None,
                message=f"This {word} already placed call {intent.call_id}; it was not dialed again.",
            )
        if intent.state == "unknown":
            return DispatchResult(
                status="outcome_unknown",
                message=f"This {word}'s call has an unknown outcome; it is never dialed again. Check list_calls.",
            )
        if intent.state == "failed":
            raise DispatchError(
                f"This {word}'s dispatch already failed ({intent.failure_message}); it is not retried. "
                "Dispatch again for a new confirmation."
            )
        if intent.state == "refused":
            raise DispatchError(
                f"This {word} was already decided: refused by {', '.join(intent.refused_rules)}. "
                "Nothing was dialed, and it is not decided again."
            )
        raise DispatchError(
            f"This {word}'s dispatch is still in progress elsewhere; it was not dialed again. Try again shortly."
        )

    async def _open(self, prepared: Prepared, *, token: str | None, audit: dict[str, JsonValue]) -> ConsentRecord:
        bound = self.bind(prepared.args)
        assert bound is not None
        view = prepared.view
        destination = ConsentDestination(
            position=0, to_number=bound.to_number, dial=True, estimate_per_minute=view.est_credits_per_min
        )
        consent_id = new_consent_id()
        consent = NewConsent(
            consent_id=consent_id, kind="single", mode="token" if token else "elicit", agent_id=bound.agent_id,
            phone_number_id=bound.phone_number_id, contact_id=bound.contact_id, binding=bound.binding(),
            destinations=(destination,), question=text.with_reference(prepared.question, consent_id), audit=audit,
        )  # fmt: skip
        now = self.now()
        with same_policy():
            return await self.ledger.open_consent(consent, now=now, expires_at=now + CONSENT_TTL, token=token)

    async def _decide(
        self, consent: ConsentRecord, use: ConsentAnswer, *, stage: Literal["token", "answer"]
    ) -> DispatchResult:
        """A yes to a single dispatch: its consent used, the rules and the claim decided, in one transaction."""
        (agreed,) = consent.agreed
        target = BoundArgs(
            agent_id=consent.agent_id,
            to_number=agreed.to_number,
            phone_number_id=consent.phone_number_id,
            contact_id=consent.contact_id,
        )
        facts = await self.read_facts(target.agent_id, self.now())
        request = DialRequest(
            target=target,
            estimate_per_minute=agreed.estimate_per_minute,
            mode=consent.mode,
            consent_id=consent.consent_id,
            use=use,
        )
        return await self._after(await self.decide(request, facts), facts, stage=stage)

    async def _after(
        self, decision: Decision, facts: Facts, *, stage: Literal["preview", "token", "answer"]
    ) -> DispatchResult:
        """Act on a decision: POST a claim; say why anything else dialed nothing."""
        if decision.claimed:
            assert decision.intent is not None
            return await self.post(decision.intent, facts)
        if decision.status == "refused":
            assert decision.preflight is not None
            raise PreflightRefused(describe_refusals(decision.preflight, stage=stage), decision.preflight.refusals)
        return await self._refused_use(decision, via="token" if stage == "token" else "answer")

    async def _refused_use(self, decision: Decision, *, via: Literal["token", "answer"]) -> DispatchResult:
        """A consent this yes could not use: the first outcome if it was used, otherwise why not."""
        consent = decision.consent
        if decision.status == "consent_used" and consent is not None:
            return await self._first_outcome(consent)
        if decision.status == "consent_mismatched" and consent is not None:
            raise DispatchError(text.other_arguments(consent))
        if decision.status == "consent_expired":
            raise DispatchError(text.TOKEN_EXPIRED if via == "token" else text.QUESTION_EXPIRED)
        raise DispatchError(text.TOKEN_UNKNOWN if via == "token" else text.CONSENT_GONE)

    async def _first_outcome(self, consent: ConsentRecord, *, replay: ConsentAnswer | None = None) -> DispatchResult:
        """What the first answer to this consent did: reported again, never dialed again."""
        if replay is not None:
            # Audited by the ledger when the replay reached a decision; this one stopped before any.
            await self.ledger.append_audit(
                "replay",
                at=self.now(),
                agent_id=consent.agent_id,
                to_number=consent.agreed[0].to_number if consent.agreed else None,
                detail={"consent": consent.consent_id, "via": replay.via, "first_answer": consent.answer},
            )
        word = _YES_WORD[consent.mode]
        if consent.answer not in ("accept", "token"):
            return DispatchResult(
                status="not_dialed",
                message=f"This question was already answered ({consent.answer}); nothing was dialed.",
            )
        intents = await self.ledger.wait_for_consent(consent.consent_id, positions=1, timeout=WAIT_FOR_OTHER_SECONDS)
        if not intents:
            raise DispatchError(
                f"This {word} was used, but its dial was never decided; nothing was dialed. "
                "Dispatch again for a new confirmation."
            )
        return await self.recorded(intents[0], word=word)

    async def _current_balance(self, *, fallback: float) -> float:
        """The balance now (a 402 means it changed since the preview); the cached one if it cannot be read."""
        try:
            balance = (await self.api.get_account()).credits
        except OutboundCallsError:
            return fallback
        self._facts = {agent_id: Facts(f.agent, balance, f.read_at) for agent_id, f in self._facts.items()}
        return balance

    async def _fail(self, intent: IntentRecord, status: int | None, message: str) -> None:
        await self.record_outcome(intent.intent_id, FailedOutcome(status=status, message=message), now=self.now())

    async def _settle_unknown(self, intent: IntentRecord, *, reason: str) -> DispatchResult:
        """Reconcile, never retry: find the call if the vendor created it, otherwise hold the number."""
        record = await self.record_outcome(intent.intent_id, UnknownOutcome(reason=reason[:300]), now=self.now())
        settled = await self.reconciler.settle(record)
        if settled.state == "dialed" and settled.call_id:
            found = await self._get_call(settled.call_id)
            if found is not None:
                return self._dialed(found, intent.args, note=" (the API's answer was lost, but the call was found)")
        return DispatchResult(status="outcome_unknown", message=text.outcome_unknown(intent.args.to_number))

    async def _get_call(self, call_id: str) -> CallSummary | None:
        try:
            return await self.api.get_call(call_id)
        except OutboundCallsError:
            return None

    def _dialed(self, call: CallSummary, bound: BoundArgs, note: str = "") -> DispatchResult:
        where = " in the SANDBOX (simulated)" if self.sandbox else ""
        return DispatchResult(
            status="dialed",
            call=call_item(call),
            message=f"Dialed {bound.to_number}{where}{note}. Use wait_for_call with call_id {call.id}.",
        )

    async def _audit_refusal(self, args: DispatchRequest, preflight: PreflightResult) -> None:
        number = preflight.number
        await self.ledger.append_audit(
            "refusal", at=self.now(), agent_id=args.agent_id, to_number=number.e164 if number else None,
            estimate=preflight.estimated_credits_per_minute,
            detail={"rules": list(preflight.rules), "raw": one_line(args.to_number), "stage": "preview"},
        )  # fmt: skip


@contextmanager
def same_policy() -> Iterator[None]:
    """A ledger shared with a process under another policy refuses to dial, naming why."""
    try:
        yield
    except PolicyMismatchError as exc:
        raise DispatchError(f"Not dialed: {exc}") from None
