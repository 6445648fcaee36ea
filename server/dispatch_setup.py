"""Safe dispatch for a lifespan: the ledger joined, stopped dials reconciled, the lease kept, orphans settled."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

import anyio

from outboundcalls_mcp.server.ledger import LedgerError, LedgerStore, PolicyMismatchError

if TYPE_CHECKING:
    from outboundcalls.client import OutboundCallsClient
    from outboundcalls_mcp.server.dispatch import DispatchService
    from outboundcalls_mcp.server.policy import DispatchPolicy
    from outboundcalls_mcp.server.settings import Settings

__all__ = [
    "HEARTBEAT_SECONDS",
    "ORPHAN_SWEEP_SECONDS",
    "keep_policy_lease",
    "open_dispatcher",
    "settle_orphaned_claims",
]

log = logging.getLogger("outboundcalls.dispatch")

# Well inside the ledger's five-minute policy lease, so a live process never looks gone.
HEARTBEAT_SECONDS: Final = 60.0
# How often each process looks for claims left by a process known to be gone (killed mid-dial),
# and how old such a claim must be: a replica briefly cut off from the database is not gone.
ORPHAN_SWEEP_SECONDS: Final = 5.0
ORPHAN_GRACE: Final = timedelta(seconds=15)


async def open_dispatcher(
    settings: Settings,
    stack: AsyncExitStack,
    *,
    api: OutboundCallsClient,
    policy: DispatchPolicy,
    now: Callable[[], datetime],
) -> DispatchService:
    """Open the ledger, join it with this policy, reconcile what a stopped process left, keep the lease."""
    from outboundcalls_mcp.server.dispatch import DispatchService
    from outboundcalls_mcp.server.ledger_place import open_ledger

    ledger = await open_ledger(settings)
    stack.push_async_callback(ledger.aclose)
    await ledger.ensure_policy_fingerprint(policy.fingerprint(), policy.settings_summary(), now=now())
    service = DispatchService(api=api, policy=policy, ledger=ledger, sandbox=settings.sandbox, now=now)
    await service.recover()
    tasks = await stack.enter_async_context(anyio.create_task_group())
    stack.callback(tasks.cancel_scope.cancel)
    tasks.start_soon(keep_policy_lease, ledger, now)
    tasks.start_soon(settle_orphaned_claims, service)
    return service


async def settle_orphaned_claims(
    service: DispatchService,
    *,
    interval: float = ORPHAN_SWEEP_SECONDS,
    sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
) -> None:
    """Until cancelled: claims of a process known to be gone become unknown, and are reconciled with the API here."""
    # Wall-clock sleep on purpose, as for the lease: a test's injected sleep advances a manual clock.
    while True:
        await sleep(interval)
        try:
            abandoned = await service.ledger.abandon_orphaned_claims(now=service.now(), older_than=ORPHAN_GRACE)
            for record in abandoned:
                log.warning("a dial left by a stopped process is being reconciled (%s)", record.intent_id)
                await service.reconciler.settle(record)
        except LedgerError as exc:
            log.warning("could not look for dials left by stopped processes: %s", type(exc).__name__)


async def keep_policy_lease(
    ledger: LedgerStore,
    now: Callable[[], datetime],
    *,
    interval: float = HEARTBEAT_SECONDS,
    sleep: Callable[[float], Awaitable[Any]] = anyio.sleep,
) -> None:
    """Renew this process's policy lease until cancelled; a failed renewal is logged, never fatal."""
    # Wall-clock sleep on purpose: a test's injected sleep advances a manual clock instead.
    while True:
        await sleep(interval)
        try:
            await ledger.heartbeat(now=now())
        except PolicyMismatchError as exc:
            log.error("policy lease lost: %s", exc)
        except Exception:
            log.exception("could not renew the policy lease")
