"""Reconciling dials whose outcome is unknown: look the call up with GET /calls, never dial again."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Final

from outboundcalls.errors import OutboundCallsError
from outboundcalls_mcp.server.ledger import USAGE_WINDOW, BoundArgs, IntentRecord, LedgerStateError, LedgerStore

if TYPE_CHECKING:
    from outboundcalls.calls import CallSummary
    from outboundcalls.client import OutboundCallsClient

__all__ = ["LOOKUP_LIMIT", "RECONCILE_SKEW", "RECONCILE_WINDOW", "STALE_CLAIM_AFTER", "Reconciler"]

log = logging.getLogger("outboundcalls.dispatch")

# How far before the intent a vendor's createdAt may lie and still be this dispatch (clock skew).
RECONCILE_SKEW: Final = timedelta(minutes=2)
# Older unknowns are not looked up again: the agent's recent calls would no longer include them.
RECONCILE_WINDOW: Final = USAGE_WINDOW
# The agent's most recent calls searched for the lost one (the API's list is newest first).
LOOKUP_LIMIT: Final = 100
# A claim this old without an outcome belongs to a process that stopped mid-dial: no POST waits
# that long (the request timeout is at most 120 s), so it is marked unknown and reconciled.
STALE_CLAIM_AFTER: Final = timedelta(minutes=10)


class Reconciler:
    """Finds the call behind an unknown outcome and records it; a call is never attached to two intents."""

    def __init__(self, *, api: OutboundCallsClient, ledger: LedgerStore, now: Callable[[], datetime]) -> None:
        self.api = api
        self.ledger = ledger
        self.now = now

    async def find_call(self, args: BoundArgs, since: datetime) -> CallSummary | None:
        """The agent's call to this number created after `since` (less the skew) that no intent has recorded."""
        try:
            calls = await self.api.list_calls(agent_id=args.agent_id, limit=LOOKUP_LIMIT)
        except OutboundCallsError as exc:
            log.warning("could not look up calls to reconcile a dial: %s", type(exc).__name__)
            return None
        for call in calls:
            # A call without a creation time cannot be shown to be this one; holding the number is the safe side.
            if call.to_number != args.to_number or call.created_at is None or call.created_at < since - RECONCILE_SKEW:
                continue
            if await self.ledger.intent_for_call(call.id) is not None:
                continue
            return call
        return None

    async def settle(self, record: IntentRecord) -> IntentRecord:
        """Look for one unknown intent's call and record what was found (or that nothing was)."""
        found = await self.find_call(record.args, record.decided_at)
        return await self.ledger.reconcile_intent(record.intent_id, found.id if found else None, now=self.now())

    async def reconcile_unknown(self, *, to_number: str | None = None) -> list[IntentRecord]:
        """Reconcile every recent unknown outcome (or only those to one number); the records as they now stand."""
        now = self.now()
        settled = []
        for record in await self.ledger.unreconciled():
            if to_number is not None and record.args.to_number != to_number:
                continue
            if record.decided_at < now - RECONCILE_WINDOW:
                continue
            try:
                settled.append(await self.settle(record))
            except LedgerStateError:
                continue  # another process reconciled it meanwhile
        return settled

    async def recover(self, *, stale_after: timedelta = STALE_CLAIM_AFTER) -> list[IntentRecord]:
        """At start-up: claims left by a stopped process become unknown, then every recent unknown is reconciled."""
        abandoned = await self.ledger.abandon_stale_claims(now=self.now(), older_than=stale_after)
        if abandoned:
            log.warning("%d dial(s) were left without an outcome by a stopped process; reconciling", len(abandoned))
        return await self.reconcile_unknown()
