"""What must hold before the server serves: the owner's policy parses, and the ledger accepts it.

A policy that is silently ignored fails open, so each of these stops start-up with a message
naming the setting (or the other process's differing settings). Nothing here imports the MCP SDK:
the CLI checks before paying for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from outboundcalls_mcp.server.do_not_call import DoNotCallFileError
from outboundcalls_mcp.server.ledger import LedgerError, PolicyMismatchError
from outboundcalls_mcp.server.policy import DispatchPolicy, PolicyError

if TYPE_CHECKING:
    from outboundcalls_mcp.server.settings import Settings

__all__ = ["STARTUP_ERRORS", "build_policy", "check_startup", "find_startup_error"]

# Each names what the owner must change; the CLI prints them without a traceback.
STARTUP_ERRORS: Final = (PolicyError, DoNotCallFileError, PolicyMismatchError, LedgerError)


def build_policy(settings: Settings) -> DispatchPolicy:
    """The owner's policy from settings; raises PolicyError or DoNotCallFileError naming a bad setting."""
    return DispatchPolicy.from_values(
        confirm_mode=settings.confirm,
        max_batch=settings.max_batch,
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


def check_startup(settings: Settings, *, join_ledger: bool = True) -> None:
    """Parse the policy and (unless join_ledger is False) try it against the shared ledger, then leave.

    Raises one of STARTUP_ERRORS. Over stdio the lifespan joins the ledger before the first answer
    anyway, so the CLI skips joining it twice.
    """
    if settings.read_only:
        return
    policy = build_policy(settings)
    if not join_ledger or (settings.api_key is None and not settings.sandbox):
        return  # no dispatch without a key: the ledger is never opened
    from datetime import UTC, datetime

    import anyio

    from outboundcalls_mcp.server.ledger_place import open_ledger

    async def join() -> None:
        ledger = await open_ledger(settings)
        try:
            await ledger.ensure_policy_fingerprint(
                policy.fingerprint(), policy.settings_summary(), now=datetime.now(UTC)
            )
        finally:
            await ledger.aclose()

    anyio.run(join)


def find_startup_error(exc: BaseException, _depth: int = 0) -> BaseException | None:
    """The start-up error inside exc (a lifespan's failure arrives wrapped in exception groups), if any."""
    if isinstance(exc, STARTUP_ERRORS):
        return exc
    if _depth > 20:
        return None
    inner: list[BaseException] = list(exc.exceptions) if isinstance(exc, BaseExceptionGroup) else []
    inner += [e for e in (exc.__cause__, exc.__context__) if e is not None and e is not exc]
    for candidate in inner:
        found = find_startup_error(candidate, _depth + 1)
        if found is not None:
            return found
    return None
