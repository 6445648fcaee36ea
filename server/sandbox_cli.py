"""`outboundcalls-mcp sandbox status|reset`: where the sandbox account lives, what it holds; starting it afresh."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

from pydantic import BaseModel, ConfigDict

from outboundcalls.calls import CallSummary
from outboundcalls.sandbox.store import AccountStoreError

if TYPE_CHECKING:
    from outboundcalls_mcp.server.settings import Settings

__all__ = ["LATEST_CALLS_SHOWN", "SandboxStatus", "format_status", "print_status", "read_status", "run_reset"]

LATEST_CALLS_SHOWN: Final = 5
_YES: Final = ("y", "yes")
# What a damaged or too-new file in the sandbox state directory raises on opening.
_UNREADABLE: Final = (AccountStoreError, sqlite3.DatabaseError)


class SandboxStatus(BaseModel):
    """What `sandbox status` shows: where the account lives, its balance, and the calls dialed on it."""

    model_config = ConfigDict(frozen=True)

    path: Path
    credits: float
    calls_dialed: int
    latest_calls: list[CallSummary]  # newest first
    server_seen_at: datetime | None  # a live server's last lease renewal


async def read_status(state_dir: Path, *, now: datetime) -> SandboxStatus | None:
    """The account in a sandbox state directory, its calls brought up to now; None if none was made yet."""
    from outboundcalls.sandbox import Sandbox
    from outboundcalls_mcp.server.sandbox_mode import sandbox_account_path
    from outboundcalls_mcp.server.sandbox_reset import live_server_seen_at

    path = sandbox_account_path(state_dir)
    if not path.exists():
        return None
    sandbox = Sandbox.persistent(path)
    try:
        await sandbox.tick()  # as any request would: calls that ended since are ended and charged
        dialed = sandbox.dialed_calls()
        return SandboxStatus(
            path=path,
            credits=sandbox.credits,
            calls_dialed=len(dialed),
            latest_calls=dialed[:LATEST_CALLS_SHOWN],
            server_seen_at=live_server_seen_at(state_dir, now=now),
        )
    finally:
        sandbox.close()


def format_status(status: SandboxStatus) -> str:
    """The status for a person, one fact a line, one call a line (id, number, status)."""
    lines = [
        f"Sandbox account: {status.path}",
        f"Balance: {status.credits:.2f} credits (simulated)",  # :g would round a balance of 12345.67
        f"Calls dialed: {status.calls_dialed}" + (" (newest first)" if status.latest_calls else ""),
    ]
    lines += [f"  {call.id}  {call.to_number or '-'}  {call.status}" for call in status.latest_calls]
    if status.calls_dialed > len(status.latest_calls):
        lines.append(f"  ... and {status.calls_dialed - len(status.latest_calls)} more")
    if status.server_seen_at is not None:
        lines.append(f"In use by a running server (last seen {status.server_seen_at:%Y-%m-%d %H:%M:%S} UTC).")
    return "\n".join(lines)


def print_status(settings: Settings, *, out: TextIO | None = None, now: datetime | None = None) -> int:
    """`sandbox status`; the exit status."""
    import anyio

    from outboundcalls_mcp.server.sandbox_mode import sandbox_account_path
    from outboundcalls_mcp.server.state_dir import resolve_state_dir

    stream = out or sys.stdout
    state_dir = resolve_state_dir(settings)
    try:
        status = anyio.run(lambda: read_status(state_dir, now=now or datetime.now(UTC)))
    except _UNREADABLE as exc:
        print(_unreadable(state_dir, exc), file=sys.stderr)
        return 1
    if status is None:
        stream.write(
            f"No sandbox account yet: `outboundcalls-mcp --sandbox` makes one in "
            f"{sandbox_account_path(state_dir)} when it first serves.\n"
        )
        return 0
    stream.write(format_status(status) + "\n")
    return 0


def run_reset(
    settings: Settings,
    *,
    yes: bool,
    ask: Callable[[str], str] | None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    now: datetime | None = None,
) -> int:
    """`sandbox reset`: asks first (unless `yes`; `ask` is None without a terminal), refuses under a live server."""
    import anyio

    from outboundcalls_mcp.server.sandbox_mode import sandbox_account_path
    from outboundcalls_mcp.server.sandbox_reset import SandboxInUseError, live_server_seen_at, reset_sandbox
    from outboundcalls_mcp.server.state_dir import resolve_state_dir

    stream, errors = out or sys.stdout, err or sys.stderr
    if settings.database_url is not None:
        from outboundcalls_mcp.server.ledger_place import describe_ledger

        # The sandbox's dials are then in PostgreSQL, shared with other replicas: not this command's to empty.
        errors.write(
            f"outboundcalls-mcp: with OUTBOUNDCALLS_DATABASE_URL the sandbox ledger is {describe_ledger(settings)}; "
            "`sandbox reset` empties only a state directory's ledger: unset OUTBOUNDCALLS_DATABASE_URL, or drop "
            "that schema with the database's own tools.\n"
        )
        return 2
    state_dir = resolve_state_dir(settings)
    at = now or datetime.now(UTC)
    # Asked again under the ledger's lock when resetting; asked here so nobody confirms a reset that cannot happen.
    try:
        seen_at = live_server_seen_at(state_dir, now=at)
    except _UNREADABLE as exc:
        errors.write(_unreadable(state_dir, exc) + "\n")
        return 1
    if seen_at is not None:
        errors.write(f"outboundcalls-mcp: {SandboxInUseError(state_dir, seen_at)}\n")
        return 1
    if not yes:
        if ask is None:
            errors.write(
                "outboundcalls-mcp: sandbox reset asks before it deletes anything and there is no terminal "
                "to ask on: add --yes to reset from a script.\n"
            )
            return 2
        try:
            answer = ask(
                f"Start the sandbox in {state_dir} afresh? Its dialed calls, balance and audit trail "
                "will be gone. [y/N] "
            )
        except EOFError:
            answer = ""
        if answer.strip().lower() not in _YES:
            stream.write("Nothing was reset.\n")
            return 1
    try:
        anyio.run(lambda: reset_sandbox(state_dir, account=sandbox_account_path(state_dir), now=at))
    except SandboxInUseError as exc:
        errors.write(f"outboundcalls-mcp: {exc}\n")
        return 1
    except _UNREADABLE as exc:
        errors.write(_unreadable(state_dir, exc) + "\n")
        return 1
    stream.write(f"The sandbox in {state_dir} starts afresh: no calls dialed, no audit trail, the starting balance.\n")
    return 0


def _unreadable(state_dir: Path, exc: Exception) -> str:
    """One line for a file in the sandbox state directory that cannot be opened, and what to do."""
    return (
        f"outboundcalls-mcp: the sandbox state in {state_dir} cannot be read ({exc}): move the directory aside, "
        "and the next `outboundcalls-mcp --sandbox` starts a new account there."
    )
