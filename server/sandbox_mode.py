"""`--sandbox`: the state directory's persistent simulated account, served in this process in real time."""

from __future__ import annotations

import sqlite3
from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Final

from pydantic import SecretStr

from outboundcalls_mcp.server.ledger import LedgerError

if TYPE_CHECKING:
    import httpx2

__all__ = ["SANDBOX_ACCOUNT_FILENAME", "SandboxAccountError", "sandbox_account_path", "start_sandbox"]

SANDBOX_ACCOUNT_FILENAME: Final = "account.sqlite3"


class SandboxAccountError(LedgerError):
    """The sandbox account file cannot be opened; a start-up error, printed as one line naming the file."""


def sandbox_account_path(state_dir: Path) -> Path:
    """Where the sandbox account lives in a (sandbox) state directory, beside its ledger."""
    return state_dir / SANDBOX_ACCOUNT_FILENAME


async def start_sandbox(stack: AsyncExitStack, state_dir: Path) -> tuple[httpx2.AsyncBaseTransport, SecretStr, str]:
    """Open the state directory's sandbox account for this server's life; returns its transport, key and base URL."""
    import anyio.to_thread

    from outboundcalls.sandbox import SANDBOX_API_KEY, SANDBOX_BASE_URL, RealClock, Sandbox
    from outboundcalls.sandbox.store import AccountStoreError

    path = sandbox_account_path(state_dir)
    try:
        # In a worker thread: opening waits while another process writes the account.
        sandbox = await anyio.to_thread.run_sync(lambda: Sandbox.persistent(path, clock=RealClock()))
    except AccountStoreError as exc:
        raise SandboxAccountError(str(exc)) from exc
    except sqlite3.DatabaseError as exc:
        raise SandboxAccountError(
            f"the sandbox account {path} cannot be read ({exc}): move it aside and a new account is made there"
        ) from exc
    stack.callback(sandbox.close)
    await stack.enter_async_context(sandbox.running())
    return sandbox.transport(), SecretStr(SANDBOX_API_KEY), SANDBOX_BASE_URL
