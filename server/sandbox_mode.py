"""`--sandbox`: the state directory's persistent simulated account, served in this process in real time."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Final

from pydantic import SecretStr

if TYPE_CHECKING:
    import httpx2

__all__ = ["SANDBOX_ACCOUNT_FILENAME", "sandbox_account_path", "start_sandbox"]

SANDBOX_ACCOUNT_FILENAME: Final = "account.sqlite3"


def sandbox_account_path(state_dir: Path) -> Path:
    """Where the sandbox account lives in a (sandbox) state directory, beside its ledger."""
    return state_dir / SANDBOX_ACCOUNT_FILENAME


async def start_sandbox(stack: AsyncExitStack, state_dir: Path) -> tuple[httpx2.AsyncBaseTransport, SecretStr, str]:
    """Open the state directory's sandbox account for this server's life; returns its transport, key and base URL."""
    import anyio.to_thread

    from outboundcalls.sandbox import SANDBOX_API_KEY, SANDBOX_BASE_URL, RealClock, Sandbox

    # In a worker thread: opening waits while another process writes the account.
    sandbox = await anyio.to_thread.run_sync(
        lambda: Sandbox.persistent(sandbox_account_path(state_dir), clock=RealClock())
    )
    stack.callback(sandbox.close)
    await stack.enter_async_context(sandbox.running())
    return sandbox.transport(), SecretStr(SANDBOX_API_KEY), SANDBOX_BASE_URL
